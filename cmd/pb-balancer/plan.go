package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/proxbalance/proxbalance/internal/history"
	"github.com/proxbalance/proxbalance/internal/logging"
	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/planinput"
	"github.com/proxbalance/proxbalance/internal/pve"
)

// planOptions are the plan command's flags, parsed.
type planOptions struct {
	pve         pve.Config
	promURL     string
	history     history.Config
	request     placement.Request
	policy      placement.Policy
	maintenance map[string]bool
	explain     string
	output      string
	timeout     time.Duration
	logLevel    string
}

// inventoryParts are the parts of the Inventory the planner reads.
const inventoryParts = pve.PartClusterStatus | pve.PartHA | pve.PartTasks | pve.PartStorage | pve.PartConfigs

func parsePlanFlags(args []string, stderr io.Writer) (planOptions, error) {
	var o planOptions
	fs := flag.NewFlagSet("pb-balancer plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.pve.URL, "pve.url", "", "URL of any PVE node, e.g. https://pve1.example.org:8006 (required)")
	fs.StringVar(&o.pve.TokenID, "pve.token-id", "", "API token id USER@REALM!TOKENID; the secret comes from -pve.token-file or $"+pve.DefaultTokenSecretEnv)
	fs.StringVar(&o.pve.TokenSecretFile, "pve.token-file", "", "file holding the API token secret")
	fs.StringVar(&o.pve.CAFile, "pve.ca-file", "", "PEM file of the CA that signs the PVE certificate (/etc/pve/pve-root-ca.pem)")
	fs.BoolVar(&o.pve.InsecureSkipVerify, "pve.insecure-skip-verify", false, "do not verify the PVE certificate (labs only)")
	fs.StringVar(&o.promURL, "prometheus.url", "http://127.0.0.1:9090", "Prometheus base URL")
	selector := fs.String("prometheus.selector", "", "labels that select the cluster's series, e.g. job=pve,instance=pve-a.example.org:9221")
	windows := fs.String("history.windows", "1h,24h,7d", "history windows; the longest is fetched")
	resolution := fs.Duration("history.resolution", history.DefaultResolution, "smallest history step")
	action := fs.String("action", string(placement.ActionRebalance), "rebalance, relieve, evacuate, repair-anti-affinity or distribute")
	fs.StringVar(&o.request.Node, "node", "", "node to relieve or evacuate")
	maintenance := fs.String("maintenance", "", "comma-separated nodes to treat as in maintenance")
	policyFile := fs.String("policy.file", "", "YAML placement policy; its fields override the defaults")
	fs.StringVar(&o.explain, "explain", "", "explain the decision about one guest (id such as qemu/100, or its VMID)")
	fs.StringVar(&o.output, "output", "table", "table or json")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "bound on reading PVE and Prometheus")
	fs.StringVar(&o.logLevel, "log.level", "warn", "debug, info, warn or error (logfmt on stderr)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if o.pve.URL == "" {
		errs = append(errs, errors.New("-pve.url: missing"))
	} else if err := o.pve.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("pve: %w", err))
	}
	sel, err := parseSelector(*selector)
	if err != nil {
		errs = append(errs, fmt.Errorf("-prometheus.selector: %w", err))
	}
	ws, err := parseWindows(*windows)
	if err != nil {
		errs = append(errs, fmt.Errorf("-history.windows: %w", err))
	}
	o.history = history.Config{Selector: sel, Windows: ws, Resolution: *resolution}
	if err == nil {
		if err := o.history.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	o.request.Action = placement.Action(*action)
	o.request.Trigger = "cli"
	switch o.request.Action {
	case placement.ActionRebalance, placement.ActionRepairAntiAffinity, placement.ActionDistribute:
		if o.request.Node != "" {
			errs = append(errs, fmt.Errorf("-node: action %s works on the whole cluster", o.request.Action))
		}
	case placement.ActionRelieve, placement.ActionEvacuate:
		if o.request.Node == "" {
			errs = append(errs, fmt.Errorf("-node: action %s needs a node", o.request.Action))
		}
	default:
		errs = append(errs, fmt.Errorf("-action %q: want rebalance, relieve, evacuate, repair-anti-affinity or distribute", *action))
	}
	o.maintenance = map[string]bool{}
	for _, n := range splitList(*maintenance) {
		o.maintenance[n] = true
	}
	if o.request.Action == placement.ActionEvacuate {
		o.maintenance[o.request.Node] = true // an evacuated node accepts no guests
	}
	if o.policy, err = loadPolicy(*policyFile); err != nil {
		errs = append(errs, fmt.Errorf("-policy.file: %w", err))
	}
	if o.output != "table" && o.output != "json" {
		errs = append(errs, fmt.Errorf("-output %q: want table or json", o.output))
	}
	if _, err := parseLevel(o.logLevel); err != nil {
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}

// parseSelector reads "name=value,name=value". Values cannot contain commas; label names are checked by
// history.Config.Validate.
func parseSelector(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range splitList(s) {
		name, value, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("%q: want name=value", part)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("label %q given twice", name)
		}
		// Quotes are optional (instance="a" reads like PromQL); surrounding blanks and quotes go in one pass, so
		// parsing is idempotent.
		out[name] = strings.Trim(value, " \t\r\n\"")
	}
	return out, nil
}

func parseWindows(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range splitList(s) {
		d, err := model.ParseDuration(part)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		out = append(out, time.Duration(d))
	}
	if len(out) == 0 {
		return nil, errors.New("empty")
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseLevel is logging.ParseLevel with the flag named in its error.
func parseLevel(s string) (level.Option, error) {
	allow, err := logging.ParseLevel(s)
	if err != nil {
		return nil, fmt.Errorf("-log.level %w", err)
	}
	return allow, nil
}

// planSources are where the plan command reads the present and the past.
type planSources struct {
	inventory func(ctx context.Context) (*pve.Inventory, error)
	history   history.QueryAPI
	now       func() time.Time
}

// planResult is everything the plan command prints.
type planResult struct {
	Plan     placement.Plan    `json:"plan"`
	Notes    []string          `json:"notes,omitempty"`
	History  historyReport     `json:"history"`
	snapshot *history.Snapshot // for -explain
	guests   map[string]string // guest id → node, for -explain
}

type historyReport struct {
	Start     time.Time          `json:"start"`
	End       time.Time          `json:"end"`
	Step      string             `json:"step"`
	Coverage  float64            `json:"coverage"`
	Queries   int                `json:"queries"`
	Fallbacks []history.Fallback `json:"fallbacks,omitempty"`
	Warnings  []string           `json:"warnings,omitempty"`
}

// computePlan reads both sources and plans. A failure of either source fails the command: a plan on partial
// inputs is worse than none.
func computePlan(ctx context.Context, o planOptions, src planSources, logger log.Logger) (planResult, error) {
	hc, err := history.New(src.history, o.history, logger)
	if err != nil {
		return planResult{}, err
	}
	inv, err := src.inventory(ctx)
	if err != nil {
		return planResult{}, fmt.Errorf("reading the PVE inventory: %w", err)
	}
	for _, p := range inv.Partial {
		level.Warn(logger).Log("msg", "part of the inventory could not be read", "endpoint", p.Endpoint, "node", p.Node, "err", p.Err)
	}
	snap, err := hc.Fetch(ctx, src.now())
	if err != nil {
		return planResult{}, fmt.Errorf("reading history from Prometheus: %w", err)
	}
	st, notes, err := planinput.Build(inv, snap, planinput.Options{Maintenance: o.maintenance})
	if err != nil {
		return planResult{}, err
	}
	plan, err := placement.Compute(st, o.policy, o.request)
	if err != nil {
		return planResult{}, fmt.Errorf("planning: %w", err)
	}
	guests := make(map[string]string, len(st.Guests))
	for _, g := range st.Guests {
		guests[g.ID] = g.Node
	}
	return planResult{
		Plan:  plan,
		Notes: notes,
		History: historyReport{
			Start: snap.Grid.Start, End: snap.Grid.End(), Step: snap.Grid.Step.String(), Coverage: snap.Coverage(),
			Queries: len(snap.Queries), Fallbacks: snap.Fallbacks, Warnings: snap.Warnings,
		},
		snapshot: snap,
		guests:   guests,
	}, nil
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parsePlanFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pb-balancer plan: %v\n", err)
		return 2
	}
	lvl, _ := parseLevel(o.logLevel)
	logger := logging.New(stderr, lvl)

	client, err := pve.New(o.pve, pve.WithLogger(logger))
	if err != nil {
		fmt.Fprintf(stderr, "pb-balancer plan: %v\n", err)
		return 1
	}
	defer client.Close()
	promClient, err := api.NewClient(api.Config{Address: o.promURL})
	if err != nil {
		fmt.Fprintf(stderr, "pb-balancer plan: -prometheus.url: %v\n", err)
		return 2
	}
	src := planSources{
		inventory: func(ctx context.Context) (*pve.Inventory, error) {
			return client.Inventory(ctx, pve.InventoryOptions{Parts: inventoryParts})
		},
		history: promv1.NewAPI(promClient),
		now:     time.Now,
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := computePlan(ctx, o, src, logger)
	if err != nil {
		fmt.Fprintf(stderr, "pb-balancer plan: %v\n", err)
		return 1
	}
	if err := render(stdout, o, res); err != nil {
		fmt.Fprintf(stderr, "pb-balancer plan: %v\n", err)
		return 1
	}
	return 0
}

// guestID resolves -explain: a full id ("qemu/100") or a bare VMID, against the guests of the inventory.
func guestID(arg string, guests map[string]string) (string, error) {
	if _, ok := guests[arg]; ok {
		return arg, nil
	}
	var found []string
	for id := range guests {
		if _, num, _ := strings.Cut(id, "/"); num == arg {
			found = append(found, id)
		}
	}
	slices.Sort(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("-explain %s: no such guest in the inventory", arg)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("-explain %s: ambiguous, use one of %s", arg, strings.Join(found, ", "))
}
