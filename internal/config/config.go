// Package config loads and validates pb-balancer's YAML configuration: where PVE and Prometheus are, the mode,
// the planner's thresholds and weights, the policy gates and windows, the state store, the listen address and
// the API tokens. Loading is strict (an unknown field is an error naming its line), defaults are applied before
// decoding, and cross-field validation names the field and line at fault. Secrets come from files or
// environment variables only and print as <secret>.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/proxbalance/proxbalance/internal/history"
	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/planinput"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/pve"
)

// Defaults.
const (
	DefaultListenAddress    = "127.0.0.1:9876"
	DefaultPrometheusURL    = "http://127.0.0.1:9090"
	DefaultStorePath        = "pb-balancer.db"
	DefaultPlanTTL          = time.Hour
	DefaultRetention        = 90 * 24 * time.Hour
	DefaultPlanningInterval = 15 * time.Minute
	DefaultPVETokenEnv      = "PB_PVE_TOKEN_SECRET"
	DefaultAPITokenEnv      = "PB_API_TOKEN"
	DefaultWebhookTokenEnv  = "PB_WEBHOOK_TOKEN"
)

// MinRetention is the shortest store.retention: a week of plans and migrations stays whatever the gates need.
const MinRetention = 7 * 24 * time.Hour

// Config is the whole file.
type Config struct {
	PVE        PVE              `yaml:"pve"`
	Prometheus Prometheus       `yaml:"prometheus"`
	History    History          `yaml:"history"`
	Mode       policy.Mode      `yaml:"mode"`
	Placement  placement.Policy `yaml:"placement"`
	Gates      Gates            `yaml:"gates"`
	Store      Store            `yaml:"store"`
	Web        Web              `yaml:"web"`
	Auth       Auth             `yaml:"auth"`
	Plans      Plans            `yaml:"plans"`

	// lines maps a field path ("gates.rollback_window") to its line in the file, for error messages.
	lines map[string]int
}

// PVE says how to reach the cluster. The token secret comes from TokenSecretFile or the environment variable
// TokenSecretEnv (default PB_PVE_TOKEN_SECRET), never from the file itself.
type PVE struct {
	URL                string `yaml:"url"`
	TokenID            string `yaml:"token_id"`
	TokenSecretFile    string `yaml:"token_secret_file"`
	TokenSecretEnv     string `yaml:"token_secret_env"`
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	// Timeout bounds each PVE HTTP call.
	Timeout time.Duration `yaml:"timeout"`
}

// Prometheus says where history lives and which series are this cluster's.
type Prometheus struct {
	URL string `yaml:"url"`
	// Selector holds exact label matchers selecting the cluster's series, e.g. {cluster: lab}.
	Selector map[string]string `yaml:"selector"`
	Timeout  time.Duration     `yaml:"timeout"`
}

// Duration is a duration in Prometheus' notation ("90s", "7d", "1h30m").
type Duration time.Duration

// UnmarshalYAML parses the notation; errors carry the line.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML renders the notation.
func (d Duration) MarshalYAML() (any, error) { return model.Duration(d).String(), nil }

// String renders the notation.
func (d Duration) String() string { return model.Duration(d).String() }

// History says how much of the past the planner reads.
type History struct {
	// Windows are the planner's views (default 1h, 24h, 7d); the longest is fetched.
	Windows []Duration `yaml:"windows"`
	// Resolution is the smallest step (default 5m, the recording rules' window).
	Resolution Duration `yaml:"resolution"`
	// Horizon is the span of history the planner expects (default 7d): a shorter history lowers data coverage.
	Horizon Duration `yaml:"horizon"`
}

// HistoryConfig is the history client's config.
func (c *Config) HistoryConfig() history.Config {
	hc := history.Config{Selector: c.Prometheus.Selector, Resolution: time.Duration(c.History.Resolution)}
	for _, w := range c.History.Windows {
		hc.Windows = append(hc.Windows, time.Duration(w))
	}
	return hc
}

// Gates configures internal/policy; see policy.Gates.
type Gates struct {
	Cooldown                time.Duration `yaml:"cooldown"`
	FailureCooldown         time.Duration `yaml:"failure_cooldown"`
	RollbackWindow          time.Duration `yaml:"rollback_window"`
	MaxMigrationsPerRun     int           `yaml:"max_migrations_per_run"`
	MaxConcurrentMigrations int           `yaml:"max_concurrent_migrations"`
	MinConfidence           int           `yaml:"min_confidence"`
	MinImprovement          float64       `yaml:"min_improvement"`
	RequireQuorum           bool          `yaml:"require_quorum"`
	Whitelist               bool          `yaml:"whitelist"`
	Windows                 []Window      `yaml:"windows"`
	Blackouts               []Window      `yaml:"blackouts"`
}

// Window is a weekly period: days it opens on (empty: every day), start and end as HH:MM wall-clock times in
// TimeZone (an IANA name; default UTC). End before start spans midnight.
type Window struct {
	Days     []string `yaml:"days"`
	Start    string   `yaml:"start"`
	End      string   `yaml:"end"`
	TimeZone string   `yaml:"time_zone"`
}

// Store is the state file.
type Store struct {
	Path string `yaml:"path"`
	// Retention is how long final plans (with their approvals) and ended journal entries are kept; open plans
	// and unfinished migrations are kept whatever their age. It must cover the rollback window and the failure
	// cooldown, whose gates read the journal.
	Retention Duration `yaml:"retention"`
}

// Web is the HTTP listener.
type Web struct {
	ListenAddress string `yaml:"listen_address"`
	// MaxBodyBytes bounds request bodies (webhook payloads); larger ones get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Auth holds the API tokens' sources. The bearer token guards every mutating endpoint; the webhook token is
// the one Alertmanager sends via http_config.authorization (it defaults to the bearer token).
type Auth struct {
	TokenFile        string `yaml:"token_file"`
	TokenEnv         string `yaml:"token_env"`
	WebhookTokenFile string `yaml:"webhook_token_file"`
	WebhookTokenEnv  string `yaml:"webhook_token_env"`
}

// Plans configures plan lifetime and periodic planning.
type Plans struct {
	// TTL is how long an unapproved plan stays approvable.
	TTL time.Duration `yaml:"ttl"`
	// Interval between scheduled rebalance plans; 0 plans only on alerts and requests.
	Interval time.Duration `yaml:"interval"`
}

// Resolved is what loading produces: the config, its secrets, and the derived typed values.
type Resolved struct {
	*Config
	PVETokenSecret pve.Secret
	APIToken       pve.Secret
	WebhookToken   pve.Secret
	// PolicyGates is Gates and Mode as the policy package takes them.
	PolicyGates policy.Gates
}

// Default returns the config with every default applied.
func Default() Config {
	g := policy.DefaultGates()
	return Config{
		PVE:        PVE{TokenSecretEnv: DefaultPVETokenEnv, Timeout: 10 * time.Second},
		Prometheus: Prometheus{URL: DefaultPrometheusURL, Timeout: 30 * time.Second},
		History: History{
			Windows:    []Duration{Duration(time.Hour), Duration(24 * time.Hour), Duration(7 * 24 * time.Hour)},
			Resolution: Duration(history.DefaultResolution), Horizon: Duration(planinput.DefaultHorizon),
		},
		Mode:      policy.ModeDryRun,
		Placement: placement.DefaultPolicy(),
		Gates: Gates{
			Cooldown: g.Cooldown, FailureCooldown: g.FailureCooldown, RollbackWindow: g.RollbackWindow,
			MaxMigrationsPerRun: g.MaxPerRun, MaxConcurrentMigrations: g.MaxConcurrent, RequireQuorum: g.RequireQuorum,
		},
		Store: Store{Path: DefaultStorePath, Retention: Duration(DefaultRetention)},
		Web:   Web{ListenAddress: DefaultListenAddress, MaxBodyBytes: 1 << 20},
		Auth:  Auth{TokenEnv: DefaultAPITokenEnv, WebhookTokenEnv: DefaultWebhookTokenEnv},
		Plans: Plans{TTL: DefaultPlanTTL, Interval: DefaultPlanningInterval},
	}
}

// UnmarshalYAML applies the defaults, then decodes through a plain alias (which has no UnmarshalYAML of its
// own), so fields absent from the file keep their defaults.
func (c *Config) UnmarshalYAML(node *yaml.Node) error {
	*c = Default()
	type plain Config
	return node.Decode((*plain)(c))
}

// Env reads environment variables and files; tests pass fakes.
type Env struct {
	LookupEnv func(string) (string, bool)
	ReadFile  func(string) ([]byte, error)
}

// OSEnv is the process environment and file system.
func OSEnv() Env { return Env{LookupEnv: os.LookupEnv, ReadFile: os.ReadFile} }

// LoadFile reads, parses, validates and resolves the file at path.
func LoadFile(path string, env Env) (*Resolved, error) {
	data, err := env.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	r, err := Load(data, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Load parses, validates and resolves a config. Errors start with "line N:" when they concern one place.
func Load(data []byte, env Env) (*Resolved, error) {
	c, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return c.resolve(env)
}

// Parse decodes and validates a config without reading any secret.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty config")
		}
		return nil, cleanYAMLError(err)
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the config must be a mapping", doc.Line)
	}
	lines := map[string]int{}
	if err := checkFields(doc, reflect.TypeFor[Config](), "", lines); err != nil {
		return nil, err
	}
	var c Config
	if err := doc.Decode(&c); err != nil {
		return nil, nameFields(cleanYAMLError(err), lines)
	}
	c.lines = lines
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// cleanYAMLError drops yaml.v3's "yaml: unmarshal errors:" preamble, keeping its "line N: ..." details.
func cleanYAMLError(err error) error {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:\n")
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return errors.New(strings.Join(parts, "; "))
}

// nameFields adds the field path to yaml.v3's type errors, which give only a line ("line 8: cannot unmarshal
// !!str `three` into int").
func nameFields(err error, lines map[string]int) error {
	var parts []string
	for _, p := range strings.Split(err.Error(), "; ") {
		var n int
		if _, scanErr := fmt.Sscanf(p, "line %d:", &n); scanErr == nil {
			var paths []string
			for path, l := range lines {
				if l == n && !strings.HasSuffix(path, "]") {
					paths = append(paths, path)
				}
			}
			if len(paths) > 0 {
				// The deepest path is the scalar's own field.
				slices.SortFunc(paths, func(a, b string) int { return len(b) - len(a) })
				prefix := fmt.Sprintf("line %d:", n)
				p = prefix + " " + paths[0] + ":" + strings.TrimPrefix(p, prefix)
			}
		}
		parts = append(parts, p)
	}
	return errors.New(strings.Join(parts, "; "))
}

// checkFields walks node against t and fails on the first key that t does not declare, so a typo anywhere in
// the tree is caught with its line (yaml.v3 forgets KnownFields inside custom unmarshalers). It records the line
// of every key it meets.
func checkFields(node *yaml.Node, t reflect.Type, path string, lines map[string]int) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			if node.Tag == "!!null" {
				return nil
			}
			return fmt.Errorf("line %d: %s: want a mapping", node.Line, orTop(path))
		}
		fields := map[string]reflect.Type{}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if f.IsExported() && name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("line %d: %s: unknown field %q (known: %s)", k.Line, orTop(path), k.Value, strings.Join(slices.Sorted(mapKeys(fields)), ", "))
			}
			p := join(path, k.Value)
			lines[p] = k.Line
			if err := checkFields(v, ft, p, lines); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if node.Kind == yaml.SequenceNode {
			for i, item := range node.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				lines[p] = item.Line
				if err := checkFields(item, t.Elem(), p, lines); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		if node.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(node.Content); i += 2 {
				p := join(path, node.Content[i].Value)
				lines[p] = node.Content[i].Line
				if err := checkFields(node.Content[i+1], t.Elem(), p, lines); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

// fieldErr formats an error about the field at path, with its line when the file set it (a default has none).
func (c *Config) fieldErr(path, format string, args ...any) error {
	return c.lineOf(path, path+": "+fmt.Sprintf(format, args...))
}

// lineOf prefixes msg with the line of path, or of its closest ancestor the file sets.
func (c *Config) lineOf(path, msg string) error {
	for p := path; p != ""; {
		if l, ok := c.lines[p]; ok {
			return fmt.Errorf("line %d: %s", l, msg)
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return errors.New(msg)
}

// Validate checks every field and the fields' relations, naming each field at fault with its line.
func (c *Config) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) { errs = append(errs, c.fieldErr(path, format, args...)) }

	switch {
	case c.PVE.URL == "":
		bad("pve.url", "missing")
	case c.PVE.TokenID == "":
		bad("pve.token_id", "missing")
	default:
		if err := c.pveConfig().Validate(); err != nil {
			// The pve package's messages start with the field they concern.
			for _, e := range splitJoined(err) {
				field, _, _ := strings.Cut(e, " ")
				errs = append(errs, c.lineOf("pve."+strings.TrimSuffix(field, ":"), "pve."+e))
			}
		}
	}
	if c.PVE.Timeout <= 0 {
		bad("pve.timeout", "%v must be positive", c.PVE.Timeout)
	}
	if u, err := url.Parse(c.Prometheus.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("prometheus.url", "%q is not an http(s) URL", c.Prometheus.URL)
	}
	for name := range c.Prometheus.Selector {
		if !validLabelName(name) {
			bad("prometheus.selector."+name, "%q is not a valid label name", name)
		}
	}
	if c.Prometheus.Timeout <= 0 {
		bad("prometheus.timeout", "%v must be positive", c.Prometheus.Timeout)
	}
	hc := c.HistoryConfig()
	hc.Selector = nil // validated above as prometheus.selector
	if err := hc.Validate(); err != nil {
		// The history package's messages start with the field ("history resolution 500ms: ...").
		msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "history"), " ")
		field, _, _ := strings.Cut(msg, " ")
		errs = append(errs, c.lineOf("history."+strings.TrimSuffix(field, ":"), "history: "+msg))
	}
	if c.History.Horizon <= 0 {
		bad("history.horizon", "%v must be positive", c.History.Horizon)
	}
	if _, err := policy.ParseMode(string(c.Mode)); err != nil {
		bad("mode", "%q: want dry-run, manual or auto", c.Mode)
	}
	if err := c.Placement.Validate(); err != nil {
		for _, e := range splitJoined(err) {
			field, rest, _ := strings.Cut(e, ": ")
			bad("placement."+field, "%s", rest)
		}
	}
	g := c.Gates
	switch {
	case g.RollbackWindow < policy.MinRollbackWindow || g.RollbackWindow > policy.MaxRollbackWindow:
		bad("gates.rollback_window", "%v is outside [1h, 168h]", g.RollbackWindow)
	}
	if g.Cooldown < 0 {
		bad("gates.cooldown", "%v must not be negative", g.Cooldown)
	}
	if g.FailureCooldown < g.Cooldown {
		bad("gates.failure_cooldown", "%v is shorter than gates.cooldown %v", g.FailureCooldown, g.Cooldown)
	}
	if g.MaxMigrationsPerRun < 1 {
		bad("gates.max_migrations_per_run", "%d must be at least 1", g.MaxMigrationsPerRun)
	}
	if g.MaxConcurrentMigrations < 1 {
		bad("gates.max_concurrent_migrations", "%d must be at least 1", g.MaxConcurrentMigrations)
	}
	if g.MinConfidence < 0 || g.MinConfidence > 100 {
		bad("gates.min_confidence", "%d is outside [0, 100]", g.MinConfidence)
	}
	if g.MinImprovement < 0 || g.MinImprovement > 100 {
		bad("gates.min_improvement", "%v is outside [0, 100]", g.MinImprovement)
	}
	for i, w := range g.Windows {
		if _, err := w.policyWindow(); err != nil {
			field, msg, _ := strings.Cut(err.Error(), ": ")
			bad(fmt.Sprintf("gates.windows[%d].%s", i, field), "%s", msg)
		}
	}
	for i, w := range g.Blackouts {
		if _, err := w.policyWindow(); err != nil {
			field, msg, _ := strings.Cut(err.Error(), ": ")
			bad(fmt.Sprintf("gates.blackouts[%d].%s", i, field), "%s", msg)
		}
	}
	if c.Store.Path == "" {
		bad("store.path", "missing")
	}
	switch r := time.Duration(c.Store.Retention); {
	case r < MinRetention:
		bad("store.retention", "%v is shorter than %v", c.Store.Retention, Duration(MinRetention))
	case r < g.RollbackWindow:
		bad("store.retention", "%v is shorter than gates.rollback_window %v: the rollback gate reads departures from the journal", c.Store.Retention, g.RollbackWindow)
	case r < g.FailureCooldown:
		bad("store.retention", "%v is shorter than gates.failure_cooldown %v: the cooldown gates read the last attempt from the journal", c.Store.Retention, g.FailureCooldown)
	}
	if _, _, err := net.SplitHostPort(c.Web.ListenAddress); err != nil {
		bad("web.listen_address", "%q: want host:port", c.Web.ListenAddress)
	}
	if c.Web.MaxBodyBytes < 1024 || c.Web.MaxBodyBytes > 64<<20 {
		bad("web.max_body_bytes", "%d is outside [1024, 67108864]", c.Web.MaxBodyBytes)
	}
	if c.Auth.TokenFile == "" && c.Auth.TokenEnv == "" {
		bad("auth", "set token_file or token_env: mutating endpoints need a bearer token")
	}
	if c.Plans.TTL < time.Minute {
		bad("plans.ttl", "%v is shorter than 1m", c.Plans.TTL)
	}
	if c.Plans.Interval != 0 && c.Plans.Interval < time.Minute {
		bad("plans.interval", "%v is shorter than 1m (0 disables scheduled planning)", c.Plans.Interval)
	}
	if c.Mode != policy.ModeDryRun && c.Plans.Interval != 0 && c.Plans.TTL > c.Plans.Interval*24 {
		bad("plans.ttl", "%v outlives 24 planning intervals (%v): approvals would act on stale plans", c.Plans.TTL, c.Plans.Interval)
	}
	return errors.Join(errs...)
}

func splitJoined(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func (w Window) policyWindow() (policy.Window, error) {
	var pw policy.Window
	var err error
	if pw.Start, err = policy.ParseClock(w.Start); err != nil {
		return pw, fmt.Errorf("start: %w", err)
	}
	if pw.End, err = policy.ParseClock(w.End); err != nil {
		return pw, fmt.Errorf("end: %w", err)
	}
	for _, d := range w.Days {
		wd, err := policy.ParseDay(d)
		if err != nil {
			return pw, fmt.Errorf("days: %w", err)
		}
		pw.Days = append(pw.Days, wd)
	}
	if w.TimeZone != "" {
		// Local would make the window depend on the host; an IANA name is explicit.
		if w.TimeZone == "Local" {
			return pw, errors.New(`time_zone: "Local" depends on the host; name an IANA zone such as Europe/Berlin`)
		}
		if pw.Location, err = time.LoadLocation(w.TimeZone); err != nil {
			return pw, fmt.Errorf("time_zone: %q is not a known IANA time zone", w.TimeZone)
		}
	}
	return pw, nil
}

// pveConfig maps the PVE section onto the pve client's config.
func (c *Config) pveConfig() pve.Config {
	return pve.Config{
		URL: c.PVE.URL, TokenID: c.PVE.TokenID, TokenSecretFile: c.PVE.TokenSecretFile, TokenSecretEnv: c.PVE.TokenSecretEnv,
		CAFile: c.PVE.CAFile, InsecureSkipVerify: c.PVE.InsecureSkipVerify, Timeout: c.PVE.Timeout,
	}
}

// PVEConfig is the pve client's config with the resolved secret.
func (r *Resolved) PVEConfig() pve.Config {
	pc := r.pveConfig()
	pc.TokenSecretFile = ""
	pc.TokenSecret = pve.Secret(r.PVETokenSecret)
	return pc
}

// resolve reads the secrets and builds the derived values; any failure names the field.
func (c *Config) resolve(env Env) (*Resolved, error) {
	r := &Resolved{Config: c}
	var errs []error
	read := func(fileField, file, envField, envName string, out *pve.Secret) {
		s, err := readSecret(env, file, envName)
		switch {
		case err != nil && file != "":
			errs = append(errs, c.fieldErr(fileField, "%v", err))
		case err != nil:
			errs = append(errs, c.fieldErr(envField, "%v", err))
		default:
			*out = s
		}
	}
	read("pve.token_secret_file", c.PVE.TokenSecretFile, "pve.token_secret_env", c.PVE.TokenSecretEnv, &r.PVETokenSecret)
	read("auth.token_file", c.Auth.TokenFile, "auth.token_env", c.Auth.TokenEnv, &r.APIToken)
	if c.Auth.WebhookTokenFile == "" {
		if s, ok := env.LookupEnv(c.Auth.WebhookTokenEnv); ok && strings.TrimSpace(s) != "" {
			r.WebhookToken = pve.Secret(strings.TrimSpace(s))
		} else {
			r.WebhookToken = r.APIToken
		}
	} else {
		read("auth.webhook_token_file", c.Auth.WebhookTokenFile, "auth.webhook_token_env", "", &r.WebhookToken)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	g := c.Gates
	r.PolicyGates = policy.Gates{
		Mode: c.Mode, Cooldown: g.Cooldown, FailureCooldown: g.FailureCooldown, RollbackWindow: g.RollbackWindow,
		MaxPerRun: g.MaxMigrationsPerRun, MaxConcurrent: g.MaxConcurrentMigrations, MinConfidence: g.MinConfidence,
		MinImprovement: g.MinImprovement, RequireQuorum: g.RequireQuorum, Whitelist: g.Whitelist,
	}
	for _, w := range g.Windows {
		pw, _ := w.policyWindow() // validated
		r.PolicyGates.Windows = append(r.PolicyGates.Windows, pw)
	}
	for _, w := range g.Blackouts {
		pw, _ := w.policyWindow()
		r.PolicyGates.Blackouts = append(r.PolicyGates.Blackouts, pw)
	}
	return r, nil
}

// readSecret reads file when set, else the environment variable envName.
func readSecret(env Env, file, envName string) (pve.Secret, error) {
	if file != "" {
		b, err := env.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading secret: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("secret file %s is empty", file)
		}
		return pve.Secret(s), nil
	}
	if envName == "" {
		return "", errors.New("no secret source")
	}
	s, ok := env.LookupEnv(envName)
	if !ok || strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("$%s is not set", envName)
	}
	return pve.Secret(strings.TrimSpace(s)), nil
}

// Redacted renders the effective config as YAML; it holds no secret (they live in Resolved and in files).
func (c *Config) Redacted() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("<unrenderable config: %v>", err)
	}
	return string(b)
}
