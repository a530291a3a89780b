package pve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func validConfig(mutators ...func(*Config)) Config {
	c := Config{URL: "https://pve1.example.com:8006", TokenID: "prometheus@pve!exporter", TokenSecret: "s3cr3t"}
	for _, m := range mutators {
		m(&c)
	}
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"token", validConfig(), ""},
		{"token from env", validConfig(func(c *Config) { c.TokenSecret = "" }), ""},
		{"password", Config{URL: "https://pve:8006", Username: "root@pam", Password: "pw"}, ""},
		{"http simulator", validConfig(func(c *Config) { c.URL = "http://127.0.0.1:8006" }), ""},
		{"missing url", validConfig(func(c *Config) { c.URL = "" }), "url: missing"},
		{"ftp url", validConfig(func(c *Config) { c.URL = "ftp://pve" }), "scheme must be https"},
		{"url without host", validConfig(func(c *Config) { c.URL = "https:///api2/json" }), "missing host"},
		{"url with query", validConfig(func(c *Config) { c.URL = "https://pve?x=1" }), "must not carry"},
		{"token id without realm", validConfig(func(c *Config) { c.TokenID = "prometheus!exporter" }), `token_id "prometheus!exporter": want USER@REALM!TOKENID`},
		{"token id without token", validConfig(func(c *Config) { c.TokenID = "prometheus@pve" }), "want USER@REALM!TOKENID"},
		{"two secrets", validConfig(func(c *Config) { c.TokenSecretFile = "/x" }), "token_secret and token_secret_file are mutually exclusive"},
		{"token and password", validConfig(func(c *Config) { c.Username = "root@pam" }), "mutually exclusive"},
		{"no credentials", Config{URL: "https://pve"}, "no credentials"},
		{"bad username", Config{URL: "https://pve", Username: "root", Password: "x"}, `username "root": want USER@REALM`},
		{"no password", Config{URL: "https://pve", Username: "root@pam"}, "password: missing"},
		{"ca and insecure", validConfig(func(c *Config) { c.CAFile = "/ca.pem"; c.InsecureSkipVerify = true }), "ca_file and insecure_skip_verify"},
		{"negative timeout", validConfig(func(c *Config) { c.Timeout = -time.Second }), "timeout -1s"},
		{"too many retries", validConfig(func(c *Config) { c.Retries = 11 }), "retries 11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestAPIBaseURL(t *testing.T) {
	tests := map[string]string{
		"https://pve:8006":            "https://pve:8006/api2/json",
		"https://pve:8006/":           "https://pve:8006/api2/json",
		"https://pve:8006/api2/json":  "https://pve:8006/api2/json",
		"https://pve:8006/api2/json/": "https://pve:8006/api2/json",
		"https://proxy/pve":           "https://proxy/pve/api2/json",
	}
	for in, want := range tests {
		if got, err := apiBaseURL(in); err != nil || got != want {
			t.Errorf("apiBaseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestConfigNeverShowsSecrets(t *testing.T) {
	cfg := validConfig(func(c *Config) { c.TokenSecret = "tok-SECRET"; c.Password = "pw-SECRET" })
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), string(j), fmt.Sprint(cfg.TokenSecret)} {
		if strings.Contains(out, "SECRET") {
			t.Errorf("secret shown: %s", out)
		}
	}
	if !strings.Contains(cfg.String(), redacted) || !strings.Contains(cfg.String(), "prometheus@pve!exporter") {
		t.Errorf("String() = %s", cfg.String())
	}
}

// TestSecretRendersRedacted covers every way a Secret gets printed or marshalled: the exporter's modules and the
// balancer's configuration rely on it as much as Config does.
func TestSecretRendersRedacted(t *testing.T) {
	type holder struct {
		S Secret `json:"s" yaml:"s"`
	}
	render := map[string]func(Secret) (string, error){
		"String":   func(s Secret) (string, error) { return s.String(), nil },
		"%v":       func(s Secret) (string, error) { return fmt.Sprintf("%v", s), nil },
		"%#v":      func(s Secret) (string, error) { return fmt.Sprintf("%#v", s), nil },
		"%+v held": func(s Secret) (string, error) { return fmt.Sprintf("%+v", holder{s}), nil },
		"JSON": func(s Secret) (string, error) {
			b, err := json.Marshal(holder{s})
			return string(b), err
		},
		"YAML": func(s Secret) (string, error) {
			b, err := yaml.Marshal(holder{s})
			return string(b), err
		},
	}
	tests := []struct {
		name, secret string
		want         map[string]string // rendering name → exact output
	}{
		{"set", "hunter2", map[string]string{
			"String": "<secret>", "%v": "<secret>", "%#v": `pve.Secret("<secret>")`, "%+v held": "{S:<secret>}",
			"JSON": `{"s":"\u003csecret\u003e"}`, "YAML": "s: <secret>\n",
		}},
		{"empty", "", map[string]string{
			"String": "", "%v": "", "%#v": `pve.Secret("")`, "%+v held": "{S:}", "JSON": `{"s":""}`, "YAML": "s: \"\"\n",
		}},
	}
	for _, tt := range tests {
		s := Secret(tt.secret)
		if s.Value() != tt.secret {
			t.Errorf("%s: Value() = %q, want %q", tt.name, s.Value(), tt.secret)
		}
		for how, f := range render {
			got, err := f(s)
			if err != nil || got != tt.want[how] {
				t.Errorf("%s: %s = %q, %v; want %q", tt.name, how, got, err, tt.want[how])
			}
		}
	}
}

func TestSecretSources(t *testing.T) {
	f := newStandardFakePVE(t)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(testTokenSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(vars map[string]string) Option {
		return WithLookupEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		opts   []Option
		err    string
	}{
		{name: "file", mutate: func(c *Config) { c.TokenSecret = ""; c.TokenSecretFile = secretFile }},
		{name: "default env", mutate: func(c *Config) { c.TokenSecret = "" }, opts: []Option{env(map[string]string{"PVE_TOKEN_SECRET": testTokenSecret})}},
		{name: "named env", mutate: func(c *Config) { c.TokenSecret = ""; c.TokenSecretEnv = "MY_SECRET" }, opts: []Option{env(map[string]string{"MY_SECRET": testTokenSecret})}},
		{name: "env unset", mutate: func(c *Config) { c.TokenSecret = "" }, opts: []Option{env(nil)}, err: "set token_secret, token_secret_file or $PVE_TOKEN_SECRET"},
		{name: "missing file", mutate: func(c *Config) { c.TokenSecret = ""; c.TokenSecretFile = filepath.Join(dir, "nope") }, err: "token_secret_file: open"},
		{name: "empty file", mutate: func(c *Config) { c.TokenSecret = ""; c.TokenSecretFile = emptyFile }, err: "file is empty"},
		{name: "bad CA file", mutate: func(c *Config) { c.CAFile = emptyFile }, err: "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config()
			tt.mutate(&cfg)
			c, err := New(cfg, tt.opts...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Version(testContext(t)); err != nil {
				t.Errorf("authenticated request failed: %v", err)
			}
		})
	}
}

func TestTLSVerification(t *testing.T) {
	f := newStandardFakePVE(t)
	cfg := f.config()
	cfg.CAFile = ""
	var attempts int
	c := f.clientWith(cfg, WithObserver(ObserverFunc(func(string, string, int, time.Duration, error) { attempts++ })))
	_, err := c.Version(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unknown CA accepted: %v", err)
	}
	if attempts != 1 {
		t.Errorf("certificate failure tried %d times, want 1", attempts)
	}
	cfg.InsecureSkipVerify = true
	if _, err := f.clientWith(cfg).Version(testContext(t)); err != nil {
		t.Errorf("insecure_skip_verify: %v", err)
	}
}

func TestPasswordLogin(t *testing.T) {
	f := newStandardFakePVE(t)
	var tickets []string
	f.setAuth(func(r *http.Request) bool {
		c, err := r.Cookie("PVEAuthCookie")
		if err != nil {
			return false
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(tickets) > 0 && c.Value == tickets[len(tickets)-1] && r.Header.Get("CSRFPreventionToken") != ""
	})
	issue := func() {
		f.mu.Lock()
		ticket := fmt.Sprintf("PVE:root@pam:%08X::sig%d", 0x66A1B2C3+len(tickets), len(tickets))
		tickets = append(tickets, ticket)
		f.mu.Unlock()
		f.set("POST", "/access/ticket", 200, `{"data":{"username":"root@pam","ticket":"`+ticket+`","CSRFPreventionToken":"66A1B2C3:csrf"}}`)
	}
	issue()
	cfg := f.config()
	cfg.TokenID, cfg.TokenSecret, cfg.Username, cfg.Password = "", "", "root@pam", "hunter2"
	c := f.clientWith(cfg)
	ctx := testContext(t)
	for i := 0; i < 3; i++ {
		if _, err := c.Version(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// /cluster/resources is read without go-proxmox's Req, with the same session.
	if res, err := c.ClusterResources(ctx); err != nil || len(res.Guests) == 0 {
		t.Fatalf("ClusterResources with a ticket: %v, %v", res, err)
	}
	if n := f.count("POST /access/ticket"); n != 1 {
		t.Errorf("logged in %d times for 4 requests, want 1", n)
	}
	if body := f.lastBody("POST /access/ticket"); !strings.Contains(body, `"password":"hunter2"`) || !strings.Contains(body, `"username":"root@pam"`) {
		t.Errorf("login body %s", body)
	}

	// The server forgets the ticket: the client logs in again once and repeats the request.
	issue()
	if _, err := c.ClusterResources(ctx); err != nil {
		t.Fatalf("after ticket rotation: %v", err)
	}
	if n := f.count("POST /access/ticket"); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}

	// A wrong password is a 401 from /access/ticket, reported as such.
	f.set("POST", "/access/ticket", 401, "")
	cfg.Password = "wrong"
	_, err := f.clientWith(cfg).Version(ctx)
	if !IsUnauthorized(err) || !strings.Contains(err.Error(), "logging in") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad password: %v", err)
	}
}
