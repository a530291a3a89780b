// Package pvesimtest runs a pvesim simulator behind an httptest server for other packages' tests: one call
// gives a PVE API URL, token, a client that trusts the server, and the Simulator and its manual clock to set
// faults and move time.
//
//	srv := pvesimtest.Start(t)
//	c := proxmox.NewClient(srv.URL, proxmox.WithAPIToken(srv.TokenID, srv.TokenSecret), proxmox.WithHTTPClient(srv.Client))
//	srv.Clock.Advance(time.Minute)
package pvesimtest

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/pvesim"
)

// Fixed secrets, so failing tests print reproducible requests.
const (
	TokenSecret      = "00000000-0000-4000-8000-00000000a0a0"
	AuditTokenSecret = "00000000-0000-4000-8000-00000000a0d1"
)

// DefaultStart is the simulated time a test server starts at unless WithStart says otherwise.
var DefaultStart = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// Server is a running simulator.
type Server struct {
	// URL is the API base, "https://127.0.0.1:port/api2/json" (http:// with WithPlainHTTP).
	URL string
	// BaseURL is scheme://host:port, where /_sim/ lives.
	BaseURL string
	// TokenID/TokenSecret are the admin token; AuditTokenID/AuditTokenSecret the read-only PVEAuditor token.
	TokenID, TokenSecret           string
	AuditTokenID, AuditTokenSecret string
	Sim                            *pvesim.Simulator
	Clock                          *pvesim.ManualClock
	// Client trusts the server's certificate; CAPool holds it.
	Client *http.Client
	CAPool *x509.CertPool

	cert *x509.Certificate
}

type config struct {
	scenario *pvesim.Scenario
	builtin  string
	version  string
	plain    bool
	start    time.Time
	opts     pvesim.Options
}

// Option changes how Start builds the server.
type Option func(*config)

// WithScenario runs the given scenario instead of the built-in default.
func WithScenario(s *pvesim.Scenario) Option { return func(c *config) { c.scenario = s } }

// WithBuiltin runs a built-in scenario by name ("default", "large").
func WithBuiltin(name string) Option { return func(c *config) { c.builtin = name } }

// WithPVEVersion runs the scenario under another PVE version profile, e.g. "8.4.14" (no PSI, memhost or
// memory.available; 70-row RRD hours).
func WithPVEVersion(v string) Option { return func(c *config) { c.version = v } }

// WithPlainHTTP serves HTTP instead of HTTPS.
func WithPlainHTTP() Option { return func(c *config) { c.plain = true } }

// WithStart sets the simulated start time.
func WithStart(t time.Time) Option { return func(c *config) { c.start = t } }

// WithAuthFailureDelay makes 401s wait, like real PVE.
func WithAuthFailureDelay(d time.Duration) Option {
	return func(c *config) { c.opts.AuthFailureDelay = d }
}

// Start runs a simulator on 127.0.0.1 with a manual clock; it stops when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config{builtin: "default", start: DefaultStart}
	for _, o := range opts {
		o(&cfg)
	}
	scn := cfg.scenario
	if scn == nil {
		var err error
		if scn, err = pvesim.Builtin(cfg.builtin); err != nil {
			t.Fatalf("pvesimtest: %v", err)
		}
	}
	if cfg.version != "" {
		copied := *scn
		copied.PVEVersion = cfg.version
		if err := copied.Revalidate(); err != nil {
			t.Fatalf("pvesimtest: %v", err)
		}
		scn = &copied
	}
	clock := pvesim.NewManualClock(cfg.start)
	o := cfg.opts
	o.Clock, o.TokenSecret, o.AuditTokenSecret = clock, TokenSecret, AuditTokenSecret
	sim, err := pvesim.New(scn, o)
	if err != nil {
		t.Fatalf("pvesimtest: %v", err)
	}
	hs := httptest.NewUnstartedServer(sim.Handler())
	if cfg.plain {
		hs.Start()
	} else {
		hs.StartTLS()
	}
	t.Cleanup(hs.Close)
	srv := &Server{
		URL: hs.URL + "/api2/json", BaseURL: hs.URL,
		TokenID: pvesim.AdminTokenID, TokenSecret: TokenSecret,
		AuditTokenID: pvesim.AuditTokenID, AuditTokenSecret: AuditTokenSecret,
		Sim: sim, Clock: clock, Client: hs.Client(),
	}
	if !cfg.plain {
		srv.CAPool = x509.NewCertPool()
		srv.CAPool.AddCert(hs.Certificate())
		srv.cert = hs.Certificate()
	}
	return srv
}

// CAFile writes the server's certificate as a PEM file in a temp dir and returns its path, for clients that
// take a CA file (as a real PVE client takes /etc/pve/pve-root-ca.pem). It fails the test for a plain-HTTP server.
func (s *Server) CAFile(t testing.TB) string {
	t.Helper()
	if s.cert == nil {
		t.Fatal("pvesimtest: CAFile on a plain-HTTP server")
	}
	path := filepath.Join(t.TempDir(), "pve-root-ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("pvesimtest: writing CA file: %v", err)
	}
	return path
}

// AuthHeader is the Authorization header value of the admin token.
func (s *Server) AuthHeader() string { return "PVEAPIToken=" + s.TokenID + "=" + s.TokenSecret }

// AuditAuthHeader is the Authorization header value of the read-only token.
func (s *Server) AuditAuthHeader() string {
	return "PVEAPIToken=" + s.AuditTokenID + "=" + s.AuditTokenSecret
}

// Do sends a request with the admin token to path (relative to URL, e.g. "/nodes") and returns the status
// and body. A non-empty form is sent as a form-encoded body.
func (s *Server) Do(t testing.TB, method, path, form string) (int, []byte) {
	t.Helper()
	return s.DoAuth(t, s.AuthHeader(), method, path, form)
}

// DoAuth is Do with an explicit Authorization header ("" sends none).
func (s *Server) DoAuth(t testing.TB, auth, method, path, form string) (int, []byte) {
	t.Helper()
	var body io.Reader
	if form != "" {
		body = strings.NewReader(form)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, body)
	if err != nil {
		t.Fatalf("pvesimtest: %v", err)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("pvesimtest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("pvesimtest: reading %s %s: %v", method, path, err)
	}
	return resp.StatusCode, b
}
