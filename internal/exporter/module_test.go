package exporter

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/proxbalance/proxbalance/internal/pve"
)

func TestLoadConfigFileValid(t *testing.T) {
	cfg, err := LoadConfigFile(filepath.Join("testdata", "config", "valid.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		module string
		check  func(Module) error
	}{
		{"default", func(m Module) error {
			if m.User != "prometheus@pve" || m.TokenName != "monitoring" || m.TokenValue.Value() != testTokenValue {
				return fmt.Errorf("credentials %q %q %q", m.User, m.TokenName, m.TokenValue.Value())
			}
			if m.VerifySSL.Verify || m.Port != 8006 || m.RequestTimeout().Seconds() != 5 || m.Backend != "https" {
				return fmt.Errorf("defaults not applied: %+v", m)
			}
			return nil
		}},
		{"password", func(m Module) error {
			if m.Password.Value() != "sEcr3T!" || !m.VerifySSL.Verify || m.Port != 443 || m.Timeout != 10 || m.PathPrefix != "/pve" {
				return fmt.Errorf("got %+v", m)
			}
			return nil
		}},
		{"cabundle", func(m Module) error {
			if m.TokenValue.Value() != "0b9c5a50-from-file" {
				return fmt.Errorf("token from file = %q, want the file's content without newline", m.TokenValue.Value())
			}
			if !m.VerifySSL.Verify || m.VerifySSL.CAFile != "/etc/ssl/pve-ca.pem" {
				return fmt.Errorf("verify_ssl = %+v, want the CA bundle path", m.VerifySSL)
			}
			return nil
		}},
		{"yaml11", func(m Module) error {
			if m.VerifySSL.Verify || m.VerifySSL.CAFile != "" {
				return fmt.Errorf("verify_ssl: no = %+v, want false as PyYAML reads it", m.VerifySSL)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		m, ok := cfg.Module(tt.module)
		if !ok {
			t.Errorf("module %s missing; have %v", tt.module, cfg.ModuleNames())
			continue
		}
		if err := tt.check(m); err != nil {
			t.Errorf("module %s: %v", tt.module, err)
		}
	}
}

func TestLoadConfigFileInvalid(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"invalid-unknown-field.yml", `module "default": line 5: unknown field "verify_sll" (known: backend, password,`},
		{"invalid-token-without-value.yml", `line 2: module "default": token_name is set but neither token_value nor token_value_file is`},
		{"invalid-password-and-token.yml", `line 2: module "default": password and token_name are mutually exclusive`},
		{"invalid-no-credentials.yml", `line 2: module "default": no credentials`},
		{"invalid-empty-module.yml", `module "default": line 1: empty module`},
		{"invalid-empty.yml", `empty configuration: no modules specified`},
		{"invalid-not-mapping.yml", `line 1: not a mapping of module names to modules`},
		{"invalid-port-type.yml", "line 4: cannot unmarshal !!str `eighty` into int"},
		{"invalid-backend.yml", `line 2: module "default": backend "ssh_paramiko" is not supported`},
		{"invalid-token-value-and-file.yml", `line 2: module "default": token_value and token_value_file are mutually exclusive`},
		{"invalid-token-file-missing.yml", `line 2: module "default": reading token_value_file: open testdata/config/missing.txt`},
		{"invalid-duplicate-module.yml", `line 4: module "default" is defined twice`},
		{"invalid-duplicate-field.yml", `line 4: field "password" is set twice`},
		{"invalid-module-scalar.yml", `line 1: module "default": not a mapping of parameters`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "config", tt.file)
			_, err := LoadConfigFile(path)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant %q prefixed by the file name", err, tt.want)
			}
		})
	}
}

func TestVerifySSLForms(t *testing.T) {
	tests := map[string]TLSVerify{
		"true": {Verify: true}, "false": {}, `"false"`: {}, "no": {}, "On": {Verify: true}, "0": {}, "1": {Verify: true},
		"/etc/ssl/ca.pem": {Verify: true, CAFile: "/etc/ssl/ca.pem"}, `"ca bundle.pem"`: {Verify: true, CAFile: "ca bundle.pem"},
	}
	for value, want := range tests {
		cfg, err := ParseConfig([]byte("m:\n  user: u\n  password: p\n  verify_ssl: "+value+"\n"), nil)
		if err != nil {
			t.Errorf("verify_ssl: %s: %v", value, err)
			continue
		}
		if got := cfg.Modules["m"].VerifySSL; got != want {
			t.Errorf("verify_ssl: %s = %+v, want %+v", value, got, want)
		}
	}
	for _, bad := range []string{`""`, "[true]", "{a: b}"} {
		if _, err := ParseConfig([]byte("m:\n  user: u\n  password: p\n  verify_ssl: "+bad+"\n"), nil); err == nil || !strings.Contains(err.Error(), "line 4: verify_ssl must be") {
			t.Errorf("verify_ssl: %s: error %v, want one naming line 4 and the field", bad, err)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		env        map[string]string
		wantOK     bool
		wantErr    string
		wantModule string
		check      func(Module) bool
	}{
		{"unset", map[string]string{EnvPassword: "x"}, false, "", "", nil},
		{"token", map[string]string{EnvUser: "p@pve", EnvTokenName: "t", EnvTokenValue: "v"}, true, "", "default",
			func(m Module) bool { return m.TokenValue.Value() == "v" && m.VerifySSL.Verify }},
		{"verify false", map[string]string{EnvUser: "p@pve", EnvPassword: "x", EnvVerifySSL: "False"}, true, "", "default",
			func(m Module) bool { return !m.VerifySSL.Verify }},
		{"verify 0", map[string]string{EnvUser: "p@pve", EnvPassword: "x", EnvVerifySSL: "0"}, true, "", "default",
			func(m Module) bool { return !m.VerifySSL.Verify }},
		{"verify other", map[string]string{EnvUser: "p@pve", EnvPassword: "x", EnvVerifySSL: "no"}, true, "", "default",
			func(m Module) bool { return m.VerifySSL.Verify }}, // prometheus-pve-exporter: only false/0 disable
		{"module name", map[string]string{EnvUser: "p@pve", EnvPassword: "x", EnvModule: "prod"}, true, "", "prod", nil},
		{"token file", map[string]string{EnvUser: "p@pve", EnvTokenName: "t", EnvTokenValueFile: tokenFile}, true, "", "default",
			func(m Module) bool { return m.TokenValue.Value() == "from-file" }},
		{"no credentials", map[string]string{EnvUser: "p@pve"}, true, "environment: no credentials", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			cfg, ok, err := ConfigFromEnv(lookup, os.ReadFile)
			if ok != tt.wantOK {
				t.Fatalf("ok = %t, want %t", ok, tt.wantOK)
			}
			checkErr(t, err, tt.wantErr)
			if err != nil || !ok {
				return
			}
			m, found := cfg.Module(tt.wantModule)
			if !found {
				t.Fatalf("module %q missing; have %v", tt.wantModule, cfg.ModuleNames())
			}
			if tt.check != nil && !tt.check(m) {
				t.Errorf("module = %+v", m)
			}
		})
	}
}

func TestSecretsNeverRender(t *testing.T) {
	cfg := testConfig()
	m, _ := cfg.Module(DefaultModule)
	for _, rendered := range []string{
		cfg.Redacted(), fmt.Sprint(m), fmt.Sprintf("%v %+v %#v %s", m, m, m, m.TokenValue), m.TokenValue.String(),
	} {
		if strings.Contains(rendered, testTokenValue) || strings.Contains(rendered, "hunter2") {
			t.Errorf("secret rendered in %q", rendered)
		}
	}
	if !strings.Contains(cfg.Redacted(), "token_value: <secret>") {
		t.Errorf("redacted config lacks the placeholder:\n%s", cfg.Redacted())
	}
}

func FuzzParseConfig(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "config", "*.yml"))
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a:\n  user: u\n  password: p\n  verify_ssl: [1]\n"))
	f.Add([]byte("? [a]\n: {user: u}\n"))
	f.Add([]byte("a: &x {user: u, password: p}\nb: *x\n"))
	readFile := func(string) ([]byte, error) { return []byte("fuzz-token-secret\n"), nil }
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, readFile)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned along with an error")
			}
			return
		}
		if len(cfg.Modules) == 0 {
			t.Fatal("valid config without modules")
		}
		var rendered map[string]map[string]any
		if err := yaml.Unmarshal([]byte(cfg.Redacted()), &rendered); err != nil {
			t.Fatalf("redacted config is not YAML: %v", err)
		}
		for name, m := range cfg.Modules {
			if err := m.Validate(); err != nil {
				t.Fatalf("module %q accepted but invalid: %v", name, err)
			}
			for key, s := range map[string]pve.Secret{"password": m.Password, "token_value": m.TokenValue} {
				if s != "" && rendered[name][key] != "<secret>" {
					t.Fatalf("module %q: %s rendered as %v, want <secret>", name, key, rendered[name][key])
				}
			}
		}
	})
}
