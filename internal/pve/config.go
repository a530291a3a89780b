package pve

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// DefaultTokenSecretEnv is the environment variable that holds the API token secret when neither TokenSecret nor
// TokenSecretFile is set.
const DefaultTokenSecretEnv = "PVE_TOKEN_SECRET"

// Default client settings.
const (
	DefaultTimeout            = 10 * time.Second
	DefaultRetries            = 2
	DefaultPerNodeConcurrency = 4
	DefaultMaxConcurrency     = 16
)

// Secret is a credential that never shows itself in logs, fmt output or marshalled config (JSON, YAML, logfmt):
// all of them render it as <secret>. Value returns the credential itself, for the code that authenticates.
// The exporter's modules and the balancer's configuration use it too.
type Secret string

const redacted = "<secret>"

// Value returns the secret in clear text.
func (s Secret) Value() string { return string(s) }

// String hides the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString hides the secret from %#v.
func (s Secret) GoString() string { return `pve.Secret("` + s.String() + `")` }

// MarshalText hides the secret from JSON and YAML encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Config says how to reach and authenticate against one PVE cluster. Authenticate either with an API token
// (TokenID plus a secret from TokenSecret, TokenSecretFile or the environment) or with Username and Password.
type Config struct {
	// URL of any cluster node, e.g. "https://pve1.example.com:8006". "/api2/json" is appended when missing.
	URL string `yaml:"url"`

	// TokenID is "USER@REALM!TOKENID", e.g. "prometheus@pve!exporter".
	TokenID         string `yaml:"token_id,omitempty"`
	TokenSecret     Secret `yaml:"token_secret,omitempty"`
	TokenSecretFile string `yaml:"token_secret_file,omitempty"`
	// TokenSecretEnv names the environment variable read when no other secret source is set
	// (default PVE_TOKEN_SECRET).
	TokenSecretEnv string `yaml:"token_secret_env,omitempty"`

	// Username ("USER@REALM") and Password authenticate with a ticket, as prometheus-pve-exporter allows.
	Username     string `yaml:"username,omitempty"`
	Password     Secret `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`

	// CAFile is a PEM bundle that signs the cluster's certificate (PVE's /etc/pve/pve-root-ca.pem).
	CAFile string `yaml:"ca_file,omitempty"`
	// InsecureSkipVerify disables certificate verification. An explicit opt-in for labs only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`

	// Timeout bounds each HTTP attempt (default 10s); the caller's context bounds the whole call.
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// Retries is how many times an idempotent GET is retried on transient failures (network errors, 502, 503,
	// 504, 595, 596). Default 2; negative means none. Writes are never retried.
	Retries int `yaml:"retries,omitempty"`
	// PerNodeConcurrency bounds concurrent requests aimed at one node while assembling an Inventory (default 4).
	PerNodeConcurrency int `yaml:"per_node_concurrency,omitempty"`
	// MaxConcurrency bounds all concurrent requests of one Inventory round (default 16). Every request enters
	// through the node in URL, whose pveproxy forwards those for other nodes, so it carries them all.
	MaxConcurrency int `yaml:"max_concurrency,omitempty"`
}

// String describes the config with its secrets redacted.
func (c Config) String() string {
	return fmt.Sprintf("pve.Config{URL:%q TokenID:%q TokenSecret:%q TokenSecretFile:%q TokenSecretEnv:%q Username:%q "+
		"Password:%q PasswordFile:%q CAFile:%q InsecureSkipVerify:%t Timeout:%s Retries:%d PerNodeConcurrency:%d MaxConcurrency:%d}",
		c.URL, c.TokenID, c.TokenSecret.String(), c.TokenSecretFile, c.TokenSecretEnv, c.Username,
		c.Password.String(), c.PasswordFile, c.CAFile, c.InsecureSkipVerify, c.Timeout, c.Retries, c.PerNodeConcurrency, c.MaxConcurrency)
}

// GoString keeps %#v from printing secrets.
func (c Config) GoString() string { return c.String() }

var (
	tokenIDPattern  = regexp.MustCompile(`^[^\s:@!]+@[^\s:@!]+![A-Za-z][A-Za-z0-9._-]*$`)
	usernamePattern = regexp.MustCompile(`^[^\s:@!]+@[^\s:@!]+$`)
)

// Validate checks the config without touching files or the network.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("url: missing"))
	} else if _, err := apiBaseURL(c.URL); err != nil {
		errs = append(errs, err)
	}
	token := c.TokenID != "" || c.TokenSecret != "" || c.TokenSecretFile != ""
	password := c.Username != "" || c.Password != "" || c.PasswordFile != ""
	switch {
	case token && password:
		errs = append(errs, errors.New("token_id and username are mutually exclusive: authenticate with an API token or a password, not both"))
	case token:
		if !tokenIDPattern.MatchString(c.TokenID) {
			errs = append(errs, fmt.Errorf("token_id %q: want USER@REALM!TOKENID, e.g. prometheus@pve!exporter", c.TokenID))
		}
		if c.TokenSecret != "" && c.TokenSecretFile != "" {
			errs = append(errs, errors.New("token_secret and token_secret_file are mutually exclusive"))
		}
	case password:
		if !usernamePattern.MatchString(c.Username) {
			errs = append(errs, fmt.Errorf("username %q: want USER@REALM, e.g. root@pam", c.Username))
		}
		if c.Password != "" && c.PasswordFile != "" {
			errs = append(errs, errors.New("password and password_file are mutually exclusive"))
		}
		if c.Password == "" && c.PasswordFile == "" {
			errs = append(errs, errors.New("password: missing (set password or password_file)"))
		}
	default:
		errs = append(errs, errors.New("no credentials: set token_id (with token_secret, token_secret_file or $"+DefaultTokenSecretEnv+") or username and password"))
	}
	if c.CAFile != "" && c.InsecureSkipVerify {
		errs = append(errs, errors.New("ca_file and insecure_skip_verify are mutually exclusive"))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s: must not be negative", c.Timeout))
	}
	if c.Retries > 10 {
		errs = append(errs, fmt.Errorf("retries %d: at most 10", c.Retries))
	}
	if c.PerNodeConcurrency < 0 {
		errs = append(errs, fmt.Errorf("per_node_concurrency %d: must not be negative", c.PerNodeConcurrency))
	}
	if c.MaxConcurrency < 0 {
		errs = append(errs, fmt.Errorf("max_concurrency %d: must not be negative", c.MaxConcurrency))
	}
	return errors.Join(errs...)
}

// apiBaseURL normalises a cluster URL to the API root, "https://host:8006/api2/json".
func apiBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("url %q: scheme must be https (or http for a simulator)", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("url %q: missing host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("url %q: must not carry a query, fragment or user info", raw)
	}
	p := strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(p, "/api2/json") {
		p += "/api2/json"
	}
	u.Path = p
	return u.String(), nil
}

// secrets returns the token secret or password from wherever the config says it lives.
func (c Config) secret(lookupEnv func(string) (string, bool)) (string, error) {
	if c.Username != "" {
		if c.PasswordFile != "" {
			return readSecretFile("password_file", c.PasswordFile)
		}
		return string(c.Password), nil
	}
	switch {
	case c.TokenSecret != "":
		return string(c.TokenSecret), nil
	case c.TokenSecretFile != "":
		return readSecretFile("token_secret_file", c.TokenSecretFile)
	}
	env := c.TokenSecretEnv
	if env == "" {
		env = DefaultTokenSecretEnv
	}
	if s, ok := lookupEnv(env); ok && strings.TrimSpace(s) != "" {
		return strings.TrimSpace(s), nil
	}
	return "", fmt.Errorf("token secret for %s: set token_secret, token_secret_file or $%s", c.TokenID, env)
}

func readSecretFile(field, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s: file is empty", field, path)
	}
	return s, nil
}
