// Command pve-exporter exports Proxmox VE metrics to Prometheus: a drop-in replacement for
// prometheus-pve-exporter (same /pve?target= endpoint, metric names, pve.yml and PVE_* variables, port 9221)
// that adds placement facts, per-collector success and never fails a whole scrape.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/proxbalance/proxbalance/internal/exporter"
	"github.com/proxbalance/proxbalance/internal/logging"
	"github.com/proxbalance/proxbalance/internal/pve"
)

// SourceFactoryBuilder builds the exporter's inventory sources; the PVE client reports each API request to
// observer.
type SourceFactoryBuilder func(o *options, observer exporter.RequestObserver, logger log.Logger) exporter.SourceFactory

// defaultGCPercent trades some CPU for a smaller heap. A scrape of a large cluster allocates several times its
// live data (the exposition text of every family is built before it is written), and with Go's default of 100
// the RSS settles near twice the live heap: on 64 nodes × 5,000 guests, 66 MB with 100 and 55 MB with 50, at the
// same median scrape time. GOGC (or GOMEMLIMIT) in the environment still wins.
const defaultGCPercent = 50

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr, os.LookupEnv, pveSources))
}

// pveSources reads targets through the PVE API: one client and caching snapshotter per target and module,
// reused across scrapes.
func pveSources(o *options, observer exporter.RequestObserver, logger log.Logger) exporter.SourceFactory {
	return exporter.NewPVESources(exporter.PVESourceOpts{
		Observer:    observer,
		Logger:      logger,
		Snapshotter: pve.SnapshotterConfig{MaxAge: o.cacheMaxAge},
	}).Source
}

// options are the parsed command line.
type options struct {
	configFile     string
	configCheck    bool
	listen         []string
	webConfigFile  string
	systemdSocket  bool
	telemetryPath  string
	timeoutOffset  time.Duration
	cacheMaxAge    time.Duration
	logLevel       *promslog.Level
	collectors     map[string]*bool
	compatGroups   map[string]*bool
	ignoredToggles map[string]*bool
}

// parseFlags reads the command line. Collector toggles follow prometheus-pve-exporter: --collector.<name>
// and --no-collector.<name>, the last one given winning.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("pve-exporter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{
		logLevel:       promslog.NewLevel(),
		collectors:     make(map[string]*bool),
		compatGroups:   make(map[string]*bool),
		ignoredToggles: make(map[string]*bool),
	}
	fs.StringVar(&o.configFile, "config.file", "pve.yml", "Path to the modules file (pve.yml). Ignored when PVE_USER is set: the module then comes from PVE_* variables.")
	fs.BoolVar(&o.configCheck, "config.check", false, "Check the configuration and exit.")
	listen := &stringList{}
	fs.Var(listen, "web.listen-address", "Address to listen on; repeatable. (default :9221)")
	fs.StringVar(&o.webConfigFile, "web.config.file", "", "Path to an exporter-toolkit web configuration file (TLS, basic auth).")
	fs.BoolVar(&o.systemdSocket, "web.systemd-socket", false, "Use systemd socket activation listeners instead of port listeners.")
	fs.StringVar(&o.telemetryPath, "web.telemetry-path", "/metrics", "Path of the exporter's own metrics.")
	fs.DurationVar(&o.timeoutOffset, "scrape.timeout-offset", exporter.DefaultTimeoutOffset, "Kept from the scrape timeout Prometheus announces.")
	fs.DurationVar(&o.cacheMaxAge, "pve.cache-max-age", exporter.DefaultCacheMaxAge, "Scrapes of a target within this age of its last inventory share it instead of calling the PVE API again (0: only concurrent scrapes share).")
	fs.Var(o.logLevel, "log.level", "Only log messages with the given severity or above: debug, info, warn, error.")
	for _, spec := range exporter.Collectors() {
		o.collectors[spec.Name] = toggle(fs, spec.Name, spec.Default, fmt.Sprintf("%s (%s collector).", spec.Help, spec.Scope))
	}
	for name := range exporter.CompatFamilyGroups() {
		help := "prometheus-pve-exporter's collector of the same name: --no-collector." + name + " removes its families."
		o.compatGroups[name] = toggle(fs, name, true, help)
	}
	// prometheus-pve-exporter's opt-in self metrics: always on here (/metrics), accepted so command lines keep working.
	for _, name := range []string{"pve-api-metrics", "target-metrics"} {
		o.ignoredToggles[name] = toggle(fs, name, false, "Accepted for compatibility; the exporter's own metrics are always on "+"/metrics.")
	}
	for _, name := range []string{"server.keyfile", "server.certfile"} {
		fs.Func(name, "Not supported: configure TLS in --web.config.file.", func(string) error {
			return errors.New("TLS is configured with --web.config.file (exporter-toolkit), not --server.keyfile/--server.certfile")
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	o.listen = *listen
	if len(o.listen) == 0 {
		o.listen = []string{":9221"}
	}
	return o, nil
}

// enabled returns the collectors switched on and the families the compatibility toggles switched off.
func (o *options) enabled() ([]exporter.CollectorSpec, []*prometheus.Desc) {
	var specs []exporter.CollectorSpec
	for _, spec := range exporter.Collectors() {
		if *o.collectors[spec.Name] {
			specs = append(specs, spec)
		}
	}
	var drop []*prometheus.Desc
	for name, descs := range exporter.CompatFamilyGroups() {
		if !*o.compatGroups[name] {
			drop = append(drop, descs...)
		}
	}
	return specs, drop
}

func run(ctx context.Context, args []string, stderr io.Writer, lookupEnv func(string) (string, bool), sources SourceFactoryBuilder) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "pve-exporter:", err)
		return 2
	}
	logger, bridged := newLogger(stderr, o.logLevel)

	cfg, source, err := loadConfig(o.configFile, lookupEnv)
	if err != nil {
		level.Error(logger).Log("msg", "invalid configuration", "err", err)
		return 1
	}
	level.Info(logger).Log("msg", "loaded configuration", "source", source, "modules", strings.Join(cfg.ModuleNames(), ","))
	level.Debug(logger).Log("msg", "effective configuration", "config", cfg.Redacted())
	if o.configCheck {
		return 0
	}

	handler, _ := newServer(o, cfg, logger, sources)
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	flags := &web.FlagConfig{WebListenAddresses: &o.listen, WebSystemdSocket: &o.systemdSocket, WebConfigFile: &o.webConfigFile}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(server, flags, newSlogLogger(bridged)) }()
	select {
	case err := <-errc:
		level.Error(logger).Log("msg", "serving failed", "err", err)
		return 1
	case <-ctx.Done():
		level.Info(logger).Log("msg", "shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := server.Shutdown(shutdownCtx); err != nil {
			level.Error(logger).Log("msg", "shutdown", "err", err)
			return 1
		}
		return 0
	}
}

// loadConfig takes the module from PVE_* variables when PVE_USER is set (as prometheus-pve-exporter does),
// else from the config file.
func loadConfig(path string, lookupEnv func(string) (string, bool)) (*exporter.Config, string, error) {
	cfg, fromEnv, err := exporter.ConfigFromEnv(lookupEnv, os.ReadFile)
	if fromEnv {
		return cfg, "environment", err
	}
	cfg, err = exporter.LoadConfigFile(path)
	return cfg, path, err
}

// newServer wires the endpoints: the landing page, /pve and the exporter's own metrics.
func newServer(o *options, cfg *exporter.Config, logger log.Logger, sources SourceFactoryBuilder) (http.Handler, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := exporter.NewMetrics(reg, cfg.ModuleNames())
	specs, drop := o.enabled()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	level.Info(logger).Log("msg", "enabled collectors", "collectors", strings.Join(names, ","))

	mux := http.NewServeMux()
	mux.Handle("/pve", exporter.NewHandler(exporter.HandlerOpts{
		Config:        func() *exporter.Config { return cfg },
		NewSource:     sources(o, metrics, logger),
		Collectors:    specs,
		DropFamilies:  drop,
		Metrics:       metrics,
		Logger:        logger,
		TimeoutOffset: o.timeoutOffset,
	}))
	mux.Handle(o.telemetryPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          exporter.NewPromHTTPLogger(level.Error(logger)),
		EnableOpenMetrics: true,
	}))
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "PVE Exporter",
		Description: "Prometheus exporter for Proxmox VE, compatible with prometheus-pve-exporter",
		RoutePrefix: "/",
		Form: web.LandingForm{Action: "/pve", Inputs: []web.LandingFormInput{
			{Label: "Target", Type: "text", Name: "target", Placeholder: "X.X.X.X:8006", Value: exporter.DefaultTarget},
			{Label: "Module", Type: "text", Name: "module", Placeholder: "module", Value: exporter.DefaultModule},
			{Label: "Debug", Type: "checkbox", Name: "debug", Value: "true"},
		}},
		Links: []web.LandingLinks{{Address: o.telemetryPath, Text: "Metrics", Description: "The exporter's own metrics"}},
	})
	if err != nil {
		// The landing page template is embedded in exporter-toolkit; failing to render it is a programming error.
		panic(fmt.Sprintf("rendering landing page: %v", err))
	}
	mux.Handle("/", landing)
	return mux, reg
}

// newLogger returns the leveled logfmt logger and the same without the caller key, for the slog bridge (whose
// records carry their own call site).
func newLogger(w io.Writer, lvl *promslog.Level) (logger, noCaller log.Logger) {
	allow, err := logging.ParseLevel(lvl.String())
	if err != nil { // promslog.Level only holds the four names ParseLevel knows; "" is its unset default, info.
		allow = level.AllowInfo()
	}
	noCaller = logging.New(w, allow)
	// The caller valuer is bound outside the level filter, so that it counts frames from the call site.
	return log.With(noCaller, "caller", log.DefaultCaller), noCaller
}

// toggle defines --collector.<name> and --no-collector.<name> on one bool.
func toggle(fs *flag.FlagSet, name string, def bool, help string) *bool {
	v := def
	fs.Var(boolToggle{&v, false}, "collector."+name, help)
	fs.Var(boolToggle{&v, true}, "no-collector."+name, "Disable --collector."+name+".")
	return &v
}

type boolToggle struct {
	v      *bool
	invert bool
}

func (b boolToggle) IsBoolFlag() bool { return true }

func (b boolToggle) String() string {
	if b.v == nil {
		return ""
	}
	return fmt.Sprint(*b.v != b.invert)
}

func (b boolToggle) Set(s string) error {
	on, err := parseBool(s)
	if err != nil {
		return err
	}
	*b.v = on != b.invert
	return nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "t", "true":
		return true, nil
	case "0", "f", "false":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q", s)
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
