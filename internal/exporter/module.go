package exporter

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/proxbalance/proxbalance/internal/pve"
)

// DefaultModule is the module a /pve request uses when it names none, as in prometheus-pve-exporter.
const DefaultModule = "default"

// TLSVerify is prometheus-pve-exporter's verify_ssl: a boolean, or (as requests accepts it) the path of a CA
// bundle to verify the PVE certificate against.
type TLSVerify struct {
	Verify bool
	CAFile string
}

// UnmarshalYAML accepts true/false or a CA bundle path.
func (v *TLSVerify) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: verify_ssl must be true, false or the path of a CA bundle", node.Line)
	}
	var b bool
	if node.Tag == "!!bool" && node.Decode(&b) == nil {
		*v = TLSVerify{Verify: b}
		return nil
	}
	// PyYAML (YAML 1.1) also reads yes/no/on/off as booleans, and quoted or numeric forms are common in the
	// wild; no CA bundle has such a name.
	switch strings.ToLower(node.Value) {
	case "true", "yes", "on", "1":
		*v = TLSVerify{Verify: true}
		return nil
	case "false", "no", "off", "0":
		*v = TLSVerify{Verify: false}
		return nil
	}
	if node.Value == "" {
		return fmt.Errorf("line %d: verify_ssl must be true, false or the path of a CA bundle, not empty", node.Line)
	}
	*v = TLSVerify{Verify: true, CAFile: node.Value}
	return nil
}

// MarshalYAML renders the bool or the CA path.
func (v TLSVerify) MarshalYAML() (any, error) {
	if v.CAFile != "" {
		return v.CAFile, nil
	}
	return v.Verify, nil
}

// Module is one entry of pve.yml: how to reach and authenticate to a PVE API. The keys are
// prometheus-pve-exporter's (they are proxmoxer's ProxmoxAPI arguments); token_value_file is ours.
type Module struct {
	User       string     `yaml:"user"`
	Password   pve.Secret `yaml:"password,omitempty"`
	TokenName  string     `yaml:"token_name,omitempty"`
	TokenValue pve.Secret `yaml:"token_value,omitempty"`
	// TokenValueFile names a file holding the token value (trailing newline ignored); it is read when the
	// configuration is loaded and fills TokenValue.
	TokenValueFile string    `yaml:"token_value_file,omitempty"`
	VerifySSL      TLSVerify `yaml:"verify_ssl"`
	// Port of the API when the target names none (proxmoxer: 8006).
	Port int `yaml:"port,omitempty"`
	// Timeout of each API request in seconds (proxmoxer: 5).
	Timeout float64 `yaml:"timeout,omitempty"`
	// Backend is proxmoxer's transport; only "https" (the default) can be served by this exporter.
	Backend string `yaml:"backend,omitempty"`
	// Service is proxmoxer's service; only "PVE" is meaningful here.
	Service string `yaml:"service,omitempty"`
	// PathPrefix is put before /api2/json, for PVE behind a reverse proxy.
	PathPrefix string `yaml:"path_prefix,omitempty"`
}

// Defaults of proxmoxer's ProxmoxAPI that prometheus-pve-exporter users rely on.
const (
	defaultPort    = 8006
	defaultTimeout = 5 * time.Second
)

func defaultModule() Module {
	return Module{VerifySSL: TLSVerify{Verify: true}, Port: defaultPort, Timeout: defaultTimeout.Seconds(), Backend: "https", Service: "PVE"}
}

// UnmarshalYAML applies defaults, then decodes strictly through a plain alias.
func (m *Module) UnmarshalYAML(node *yaml.Node) error {
	*m = defaultModule()
	type plain Module
	if node.Kind == yaml.MappingNode && len(node.Content) == 0 {
		return fmt.Errorf("line %d: empty module: no pve API parameters specified", node.Line)
	}
	if err := decodeStrict(node, (*plain)(m)); err != nil {
		return err
	}
	return nil
}

// RequestTimeout is Timeout as a duration.
func (m Module) RequestTimeout() time.Duration {
	return time.Duration(m.Timeout * float64(time.Second))
}

// Validate checks the combinations proxmoxer would reject or silently misuse.
func (m Module) Validate() error {
	switch {
	case m.User == "":
		return errors.New("user is required")
	case m.Backend != "https":
		return fmt.Errorf("backend %q is not supported: only https (the PVE API over the network) is", m.Backend)
	case m.Service != "" && !strings.EqualFold(m.Service, "PVE"):
		return fmt.Errorf("service %q is not supported: only PVE is", m.Service)
	case m.TokenName != "" && m.TokenValue == "" && m.TokenValueFile == "":
		return errors.New("token_name is set but neither token_value nor token_value_file is")
	case m.TokenName == "" && (m.TokenValue != "" || m.TokenValueFile != ""):
		return errors.New("token_value is set but token_name is not")
	case m.TokenName != "" && m.Password != "":
		return errors.New("password and token_name are mutually exclusive: use one way to authenticate")
	case m.TokenName == "" && m.Password == "":
		return errors.New("no credentials: set token_name and token_value (or token_value_file), or password")
	case m.Port < 0 || m.Port > 65535:
		return fmt.Errorf("port %d is out of range", m.Port)
	case m.Timeout < 0:
		return fmt.Errorf("timeout %v must not be negative", m.Timeout)
	}
	return nil
}

// Config is the set of modules of pve.yml, by name.
type Config struct {
	Modules map[string]Module
}

// Module returns the named module.
func (c *Config) Module(name string) (Module, bool) {
	m, ok := c.Modules[name]
	return m, ok
}

// ModuleNames returns the module names, sorted.
func (c *Config) ModuleNames() []string {
	names := make([]string, 0, len(c.Modules))
	for n := range c.Modules {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Redacted renders the configuration as YAML with every secret shown as <secret>.
func (c *Config) Redacted() string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	_ = enc.Encode(c.Modules) // pve.Secret and TLSVerify marshal without error; a map of them cannot fail.
	return b.String()
}

// LoadConfigFile reads and checks a pve.yml file.
func LoadConfigFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	// token_value_file is relative to the configuration file, as file paths in Prometheus configurations are.
	readRelative := func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(path), name)
		}
		return os.ReadFile(name)
	}
	cfg, err := ParseConfig(data, readRelative)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes pve.yml: a mapping of module names to modules. Unknown keys are errors; errors name the
// line, the module and the field.
func ParseConfig(data []byte, readFile func(string) ([]byte, error)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	if root.Kind == 0 || (root.Kind == yaml.DocumentNode && len(root.Content) == 0) {
		return nil, errors.New("empty configuration: no modules specified")
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: not a mapping of module names to modules", doc.Line)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty configuration: no modules specified")
	}
	cfg := &Config{Modules: make(map[string]Module, len(doc.Content)/2)}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		key, value := doc.Content[i], doc.Content[i+1]
		if key.Kind != yaml.ScalarNode || key.Value == "" {
			return nil, fmt.Errorf("line %d: module names must be non-empty strings", key.Line)
		}
		name := key.Value
		if _, dup := cfg.Modules[name]; dup {
			return nil, fmt.Errorf("line %d: module %q is defined twice", key.Line, name)
		}
		if value.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("line %d: module %q: not a mapping of parameters", value.Line, name)
		}
		var m Module
		if err := value.Decode(&m); err != nil {
			return nil, fmt.Errorf("module %q: %w", name, err) // decoding errors name their line
		}
		if err := m.resolveTokenFile(readFile); err != nil {
			return nil, fmt.Errorf("line %d: module %q: %w", value.Line, name, err)
		}
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("line %d: module %q: %w", value.Line, name, err)
		}
		cfg.Modules[name] = m
	}
	return cfg, nil
}

func (m *Module) resolveTokenFile(readFile func(string) ([]byte, error)) error {
	if m.TokenValueFile == "" {
		return nil
	}
	if m.TokenValue != "" {
		return errors.New("token_value and token_value_file are mutually exclusive")
	}
	data, err := readFile(m.TokenValueFile)
	if err != nil {
		return fmt.Errorf("reading token_value_file: %w", err)
	}
	value := strings.TrimRight(string(data), "\r\n")
	if value == "" {
		return fmt.Errorf("token_value_file %s is empty", m.TokenValueFile)
	}
	m.TokenValue = pve.Secret(value)
	return nil
}

// Environment variables of prometheus-pve-exporter, plus PVE_TOKEN_VALUE_FILE (ours).
const (
	EnvUser           = "PVE_USER"
	EnvPassword       = "PVE_PASSWORD"
	EnvTokenName      = "PVE_TOKEN_NAME"
	EnvTokenValue     = "PVE_TOKEN_VALUE"
	EnvTokenValueFile = "PVE_TOKEN_VALUE_FILE"
	EnvVerifySSL      = "PVE_VERIFY_SSL"
	EnvModule         = "PVE_MODULE"
)

// ConfigFromEnv builds a one-module configuration from the environment when PVE_USER is set, as
// prometheus-pve-exporter does (the config file is then not read); ok is false when PVE_USER is unset.
// PVE_VERIFY_SSL is false for "false" or "0" (any case), true otherwise; PVE_MODULE names the module
// (default "default").
func ConfigFromEnv(lookup func(string) (string, bool), readFile func(string) ([]byte, error)) (cfg *Config, ok bool, err error) {
	user, ok := lookup(EnvUser)
	if !ok {
		return nil, false, nil
	}
	m := defaultModule()
	m.User = user
	if v, ok := lookup(EnvPassword); ok {
		m.Password = pve.Secret(v)
	}
	if v, ok := lookup(EnvTokenName); ok {
		m.TokenName = v
	}
	if v, ok := lookup(EnvTokenValue); ok {
		m.TokenValue = pve.Secret(v)
	}
	if v, ok := lookup(EnvTokenValueFile); ok {
		m.TokenValueFile = v
	}
	if v, ok := lookup(EnvVerifySSL); ok {
		m.VerifySSL = TLSVerify{Verify: !slices.Contains([]string{"false", "0"}, strings.ToLower(v))}
	}
	name := DefaultModule
	if v, ok := lookup(EnvModule); ok && v != "" {
		name = v
	}
	if err := m.resolveTokenFile(readFile); err != nil {
		return nil, true, fmt.Errorf("environment: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, true, fmt.Errorf("environment: %w", err)
	}
	return &Config{Modules: map[string]Module{name: m}}, true, nil
}

// moduleKeys are the keys a module may have: Module's yaml tags.
func moduleKeys() map[string]bool {
	t := reflect.TypeFor[Module]()
	keys := make(map[string]bool, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		keys[name] = true
	}
	return keys
}

// decodeStrict decodes a mapping node into out, rejecting unknown and duplicate keys with their line (yaml.v3
// applies KnownFields only through a Decoder, which would lose the node's position in the file).
func decodeStrict(node *yaml.Node, out any) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: not a mapping of parameters", node.Line)
	}
	known := moduleKeys()
	seen := make(map[string]bool, len(node.Content)/2)
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i]
		if !known[k.Value] {
			return fmt.Errorf("line %d: unknown field %q (known: %s)", k.Line, k.Value, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
		}
		if seen[k.Value] {
			return fmt.Errorf("line %d: field %q is set twice", k.Line, k.Value)
		}
		seen[k.Value] = true
	}
	return node.Decode(out)
}
