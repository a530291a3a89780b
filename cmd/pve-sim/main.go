// Command pve-sim serves a simulated Proxmox VE cluster on the PVE API (/api2/json), for the demo, tests and
// benchmarks. See docs/pve-sim.md.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/proxbalance/proxbalance/internal/logging"
	"github.com/proxbalance/proxbalance/internal/pvesim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pve-sim:", err)
		os.Exit(1)
	}
}

type config struct {
	listen      string
	scenario    string
	builtin     string
	speed       float64
	seed        int64
	tokenFile   string
	auditFile   string
	plainHTTP   bool
	logLevel    string
	authDelay   time.Duration
	pveVersion  string
	startAtTime string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("pve-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "web.listen-address", "127.0.0.1:8006", "address to serve the PVE API on")
	fs.StringVar(&c.scenario, "scenario", "", "scenario YAML file (overrides --scenario.builtin)")
	fs.StringVar(&c.builtin, "scenario.builtin", "default", "built-in scenario: "+strings.Join(pvesim.BuiltinNames, ", "))
	fs.Float64Var(&c.speed, "speed", 1, "simulated seconds per wall-clock second; 0 stops the clock (advance it with POST /_sim/clock)")
	fs.Int64Var(&c.seed, "seed", 0, "override the scenario's seed")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the admin token secret (else $PVESIM_TOKEN_SECRET, else random)")
	fs.StringVar(&c.auditFile, "audit-token-file", "", "file holding the read-only token secret (else $PVESIM_AUDIT_TOKEN_SECRET, else random)")
	fs.BoolVar(&c.plainHTTP, "plain-http", false, "serve plain HTTP instead of HTTPS")
	fs.StringVar(&c.logLevel, "log.level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&c.authDelay, "auth-failure-delay", 0, "delay before a 401, as real PVE waits 3s")
	fs.StringVar(&c.pveVersion, "pve-version", "", "override the scenario's PVE version (e.g. 8.4.14)")
	fs.StringVar(&c.startAtTime, "start", "", "override the scenario's start time (RFC 3339)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, nil
}

// run serves until ctx ends; it prints the URL and tokens to stdout once it is listening.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	scn, err := loadScenario(c)
	if err != nil {
		return err
	}
	admin, err := secret(c.tokenFile, "PVESIM_TOKEN_SECRET")
	if err != nil {
		return err
	}
	audit, err := secret(c.auditFile, "PVESIM_AUDIT_TOKEN_SECRET")
	if err != nil {
		return err
	}
	opts := pvesim.Options{TokenSecret: admin, AuditTokenSecret: audit, AuthFailureDelay: c.authDelay, Logger: logger}
	start := scn.StartTime()
	if start.IsZero() {
		start = time.Now().Truncate(time.Second)
	}
	if c.speed == 0 {
		opts.Clock = pvesim.NewManualClock(start)
	} else {
		opts.Clock = pvesim.NewScaledClock(start, c.speed)
	}
	sim, err := pvesim.New(scn, opts)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", c.listen, err)
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if !c.plainHTTP {
		cert, err := selfSignedCert()
		if err != nil {
			return err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	host := ln.Addr().String()
	base := fmt.Sprintf("%s://%s/api2/json", scheme, host)
	fmt.Fprintf(stdout, "pve-sim: cluster %q (PVE %s, %d nodes, %d guests) at %s\n", scn.Name, scn.PVEVersion, len(scn.Nodes), len(scn.Guests), base)
	fmt.Fprintf(stdout, "API token:      %s=%s\n", pvesim.AdminTokenID, sim.TokenSecret())
	fmt.Fprintf(stdout, "read-only token: %s=%s\n", pvesim.AuditTokenID, sim.AuditTokenSecret())
	k := ""
	if !c.plainHTTP {
		k = "-k "
	}
	fmt.Fprintf(stdout, "try: curl %s-H 'Authorization: PVEAPIToken=%s=%s' %s/nodes\n", k, pvesim.AdminTokenID, sim.TokenSecret(), base)
	fmt.Fprintf(stdout, "admin: %s://%s/_sim/state, /_sim/faults, /_sim/clock\n", scheme, host)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving: %w", err)
		}
	case <-ctx.Done():
		level.Info(logger).Log("msg", "shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
	return nil
}

func loadScenario(c config) (*pvesim.Scenario, error) {
	var scn *pvesim.Scenario
	var err error
	if c.scenario != "" {
		scn, err = pvesim.LoadScenario(c.scenario)
	} else {
		scn, err = pvesim.Builtin(c.builtin)
	}
	if err != nil {
		return nil, err
	}
	if c.seed != 0 {
		scn.Seed = c.seed
	}
	if c.pveVersion != "" || c.startAtTime != "" {
		if c.pveVersion != "" {
			scn.PVEVersion = c.pveVersion
		}
		if c.startAtTime != "" {
			scn.Start = c.startAtTime
		}
		if err := scn.Revalidate(); err != nil {
			return nil, err
		}
	}
	return scn, nil
}

// secret reads a token secret from a file, else from an environment variable; empty means "random".
func secret(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading token file: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("token file %s is empty", file)
		}
		return s, nil
	}
	return os.Getenv(env), nil
}

func newLogger(w io.Writer, lvl string) (log.Logger, error) {
	allow, err := logging.ParseLevel(lvl)
	if err != nil {
		return nil, fmt.Errorf("-log.level %w", err)
	}
	return log.With(logging.New(w, allow), "caller", log.DefaultCaller), nil
}

// selfSignedCert makes an ECDSA P-256 certificate for 127.0.0.1 and localhost, valid for a year, like the
// self-signed certificate a fresh PVE node serves.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "pve-sim", Organization: []string{"PVE Cluster Node"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
