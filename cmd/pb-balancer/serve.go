package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/proxbalance/proxbalance/internal/config"
	"github.com/proxbalance/proxbalance/internal/executor"
	"github.com/proxbalance/proxbalance/internal/history"
	"github.com/proxbalance/proxbalance/internal/logging"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/server"
	"github.com/proxbalance/proxbalance/internal/store"
)

type serveOptions struct {
	configFile string
	check      bool
	logLevel   string
}

func parseServeFlags(args []string, stderr io.Writer) (serveOptions, error) {
	var o serveOptions
	fs := flag.NewFlagSet("pb-balancer serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configFile, "config.file", "pb-balancer.yml", "balancer configuration file")
	fs.BoolVar(&o.check, "config.check", false, "validate the configuration (and read its secrets), print it with secrets redacted, and exit")
	fs.StringVar(&o.logLevel, "log.level", "info", "debug, info, warn or error (logfmt on stderr)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if _, err := parseLevel(o.logLevel); err != nil {
		return o, err
	}
	return o, nil
}

// serverSettings are the reloadable parts of a loaded config.
func serverSettings(r *config.Resolved) server.Settings {
	return server.Settings{
		Gates: r.PolicyGates, Placement: r.Placement, APIToken: string(r.APIToken), WebhookToken: string(r.WebhookToken),
		PlanTTL: r.Plans.TTL, MaxBodyBytes: r.Web.MaxBodyBytes, Retention: time.Duration(r.Store.Retention),
	}
}

// restartOnly reports the settings a reload cannot change (connections, the store, the listener).
func restartOnly(old, cur *config.Resolved) []string {
	var out []string
	if old.PVE != cur.PVE || old.PVETokenSecret != cur.PVETokenSecret {
		out = append(out, "pve")
	}
	if old.Prometheus.URL != cur.Prometheus.URL || fmt.Sprint(old.Prometheus.Selector) != fmt.Sprint(cur.Prometheus.Selector) {
		out = append(out, "prometheus")
	}
	if fmt.Sprint(old.History) != fmt.Sprint(cur.History) {
		out = append(out, "history")
	}
	if old.Store.Path != cur.Store.Path {
		out = append(out, "store.path")
	}
	if old.Web.ListenAddress != cur.Web.ListenAddress {
		out = append(out, "web.listen_address")
	}
	if old.Plans.Interval != cur.Plans.Interval {
		out = append(out, "plans.interval")
	}
	return out
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseServeFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pb-balancer serve: %v\n", err)
		return 2
	}
	lvl, _ := parseLevel(o.logLevel)
	logger := log.With(logging.New(stderr, lvl), "caller", log.DefaultCaller)

	env := config.OSEnv()
	cfg, err := config.LoadFile(o.configFile, env)
	if err != nil {
		fmt.Fprintf(stderr, "pb-balancer serve: %v\n", err)
		return 1
	}
	if o.check {
		fmt.Fprintf(stdout, "%s: valid\n%s", o.configFile, cfg.Redacted())
		return 0
	}
	if err := serve(ctx, o.configFile, cfg, env, realExecutor, logger); err != nil {
		level.Error(logger).Log("msg", "balancer stopped", "err", err)
		return 1
	}
	return 0
}

// balancerExecutor is what serve needs of the executor: the server's Executor plus start-up reconciliation.
type balancerExecutor interface {
	server.Executor
	Reconcile(ctx context.Context) (executor.ReconcileReport, error)
	Collectors() []prometheus.Collector
}

// executorFactory builds the executor; tests substitute one that needs no real migrations.
type executorFactory func(executor.Config) (balancerExecutor, error)

func realExecutor(cfg executor.Config) (balancerExecutor, error) { return executor.New(cfg) }

// serve wires the parts together and runs until ctx ends.
func serve(ctx context.Context, configFile string, cfg *config.Resolved, env config.Env, newExecutor executorFactory, logger log.Logger) error {
	db, err := store.Open(cfg.Store.Path, store.Options{})
	if err != nil {
		return fmt.Errorf("opening the state store: %w", err)
	}
	defer db.Close()
	client, err := pve.New(cfg.PVEConfig(), pve.WithLogger(logger))
	if err != nil {
		return err
	}
	defer client.Close()
	promClient, err := api.NewClient(api.Config{Address: cfg.Prometheus.URL})
	if err != nil {
		return fmt.Errorf("prometheus.url: %w", err)
	}
	prom := promv1.NewAPI(promClient)
	hist, err := history.New(prom, cfg.HistoryConfig(), logger)
	if err != nil {
		return err
	}
	exec, err := newExecutor(executor.Config{
		PVE: client, Store: db, DryRun: cfg.Mode == policy.ModeDryRun, MaxConcurrent: cfg.Gates.MaxConcurrentMigrations,
		Logger: log.With(logger, "component", "executor"),
	})
	if err != nil {
		return fmt.Errorf("starting the executor: %w", err)
	}
	// Before anything new starts: no journaled migration is repeated or forgotten.
	report, err := exec.Reconcile(ctx)
	if err != nil {
		return fmt.Errorf("reconciling the migration journal with /cluster/tasks: %w", err)
	}
	level.Info(logger).Log("msg", "journal reconciled", "adopted", len(report.Adopted), "not_started", len(report.NotStarted),
		"closed", len(report.Closed), "followed", len(report.Followed), "unknown", len(report.Unknown))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(exec.Collectors()...)
	live := cfg
	srv, err := server.New(server.Options{
		Planner: &server.LivePlanner{
			PVE: client, History: hist, Now: time.Now, Horizon: time.Duration(cfg.History.Horizon),
			HistoryTimeout: cfg.Prometheus.Timeout,
			PrometheusReady: func(ctx context.Context) error {
				_, err := prom.Buildinfo(ctx)
				return err
			},
		},
		Executor: exec, Store: db, Settings: serverSettings(cfg), Logger: log.With(logger, "component", "server"),
		Departures: &server.PrometheusDepartures{API: prom, Selector: cfg.Prometheus.Selector},
		Registry:   reg, PlanningInterval: cfg.Plans.Interval,
		Reload: func(context.Context) (server.Settings, error) {
			next, err := config.LoadFile(configFile, env)
			if err != nil {
				return server.Settings{}, err
			}
			if changed := restartOnly(live, next); len(changed) > 0 {
				level.Warn(logger).Log("msg", "these settings take effect after a restart", "sections", fmt.Sprint(changed))
			}
			if next.Mode != live.Mode {
				level.Info(logger).Log("msg", "mode changed", "from", live.Mode, "to", next.Mode)
			}
			live = next // only the reload goroutine touches live
			return serverSettings(next), nil
		},
	})
	if err != nil {
		return err
	}
	if cfg.Mode == policy.ModeDryRun {
		level.Info(logger).Log("msg", "dry-run mode: plans are made and recorded, nothing migrates")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := srv.Reload(ctx); err != nil {
					level.Error(logger).Log("msg", "SIGHUP reload failed", "err", err)
				}
			}
		}
	}()

	ln, err := net.Listen("tcp", cfg.Web.ListenAddress)
	if err != nil {
		return fmt.Errorf("web.listen_address: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	runDone := make(chan struct{})
	go func() { srv.Run(ctx); close(runDone) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	level.Info(logger).Log("msg", "listening", "address", ln.Addr().String(), "mode", cfg.Mode)
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stop()
	_ = hs.Shutdown(shutdownCtx) // best effort: the process is stopping
	cancel()
	<-runDone
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
