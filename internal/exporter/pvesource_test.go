package exporter

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/pve"
)

func TestTargetURL(t *testing.T) {
	tests := []struct {
		target, prefix string
		port           int
		want, err      string
	}{
		{target: "pve1.example.com", port: 8006, want: "https://pve1.example.com:8006"},
		{target: "pve1.example.com", port: 0, want: "https://pve1.example.com:8006"},
		{target: "pve1:443", port: 8006, want: "https://pve1:443"},
		{target: "10.0.0.1", port: 9443, want: "https://10.0.0.1:9443"},
		{target: "[2001:db8::1]:8006", port: 1, want: "https://[2001:db8::1]:8006"},
		{target: "2001:db8::1", port: 8006, want: "https://[2001:db8::1]:8006"},
		{target: "[2001:db8::1]", port: 8006, want: "https://[2001:db8::1]:8006"},
		{target: "pve1", port: 8006, prefix: "/proxy/pve/", want: "https://pve1:8006/proxy/pve"},
		{target: "", err: "want a host"},
		{target: "https://pve1", err: "want a host"},
		{target: "pve1/x", err: "want a host"},
		{target: "user@pve1", err: "want a host"},
		{target: "pve1:http", err: `invalid port "http"`},
		{target: "pve1:0", err: `invalid port "0"`},
		{target: "pve1:70000", err: `invalid port "70000"`},
		{target: ":8006", err: "missing host"},
	}
	for _, tt := range tests {
		got, err := targetURL("https", tt.target, tt.port, tt.prefix)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("targetURL(%q) error = %v, want one containing %q", tt.target, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("targetURL(%q, %d, %q) = %q, %v; want %q", tt.target, tt.port, tt.prefix, got, err, tt.want)
		}
	}
}

func FuzzTargetURL(f *testing.F) {
	for _, seed := range []string{"pve1", "pve1:8006", "[::1]:8006", "::1", "a/b", "", "[", "x:-1", "%zz"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := targetURL("https", target, 8006, "")
		if err != nil {
			return
		}
		parsed, perr := url.Parse(u)
		if perr != nil || parsed.Host == "" || parsed.Port() == "" || parsed.Path != "" {
			t.Fatalf("targetURL(%q) = %q, which does not parse as scheme://host:port (%v)", target, u, perr)
		}
		if err := (pve.Config{URL: u, TokenID: "a@pve!b", TokenSecret: "s"}).Validate(); err != nil {
			t.Fatalf("targetURL(%q) = %q, which the client rejects: %v", target, u, err)
		}
	})
}

func TestClientConfigFromModule(t *testing.T) {
	token := defaultModule()
	token.User, token.TokenName, token.TokenValue = "prometheus@pve", "monitoring", "tok"
	token.Timeout = 2.5
	password := defaultModule()
	password.User, password.Password = "auditor@pve", "hunter2"
	password.VerifySSL = TLSVerify{Verify: false}
	password.Port = 443
	ca := defaultModule()
	ca.User, ca.Password = "auditor@pve", "x"
	ca.VerifySSL = TLSVerify{Verify: true, CAFile: "/etc/pve/pve-root-ca.pem"}

	s := NewPVESources(PVESourceOpts{})
	tests := []struct {
		name   string
		module Module
		want   pve.Config
	}{
		{"token", token, pve.Config{URL: "https://pve1:8006", TokenID: "prometheus@pve!monitoring", TokenSecret: "tok", Timeout: 2500 * time.Millisecond}},
		{"password without verification", password, pve.Config{URL: "https://pve1:443", Username: "auditor@pve", Password: "hunter2", InsecureSkipVerify: true, Timeout: 5 * time.Second}},
		{"CA bundle", ca, pve.Config{URL: "https://pve1:8006", Username: "auditor@pve", Password: "x", CAFile: "/etc/pve/pve-root-ca.pem", Timeout: 5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.clientConfig("pve1", tt.module)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if got.TokenSecret != tt.want.TokenSecret || got.Password != tt.want.Password {
				t.Error("secrets differ")
			}
			if err := got.Validate(); err != nil {
				t.Errorf("the client rejects it: %v", err)
			}
		})
	}
}

func TestPVESourcesReuseAndBound(t *testing.T) {
	m := defaultModule()
	m.User, m.TokenName, m.TokenValue = "prometheus@pve", "monitoring", "tok"
	s := NewPVESources(PVESourceOpts{MaxTargets: 2})
	ctx := context.Background()
	source := func(target string, m Module) Source {
		t.Helper()
		src, err := s.Source(ctx, target, m)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	a := source("pve1", m)
	if again := source("pve1", m); again != a {
		t.Error("a second scrape of the same target and module got a new snapshotter")
	}
	changed := m
	changed.TokenValue = "rotated"
	if rotated := source("pve1", changed); rotated == a {
		t.Error("a changed module reused the client of the old one")
	}
	source("pve2", m) // three entries for a bound of two: the least recently used (pve1 with the old token) goes
	if n := s.Len(); n != 2 {
		t.Errorf("%d cached targets, want 2", n)
	}
	if again := source("pve1", m); again == a {
		t.Error("the evicted target kept its snapshotter")
	}
	if _, err := s.Source(ctx, "bad/target", m); err == nil {
		t.Error("an invalid target was accepted")
	}
}

func TestSourceKeyHidesSecrets(t *testing.T) {
	m := defaultModule()
	m.User, m.TokenName, m.TokenValue = "prometheus@pve", "monitoring", "s3cr3t-token"
	if key := sourceKey("pve1", m); strings.Contains(key, "s3cr3t") {
		t.Errorf("key %q holds the secret", key)
	}
}
