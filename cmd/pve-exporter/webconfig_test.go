package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestWebConfigTLSAndBasicAuth runs the exporter as main does, with an exporter-toolkit --web.config.file that
// turns on TLS and bcrypt basic auth, on 127.0.0.1: every path wants credentials over TLS.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSignedCert(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	certFile, keyFile := write("tls.crt", certPEM), write("tls.key", keyPEM)
	webConfig := write("web.yml", fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n",
		certFile, keyFile, hash))

	addr := freeLoopbackAddr(t)
	env := map[string]string{"PVE_USER": "p@pve", "PVE_TOKEN_NAME": "t", "PVE_TOKEN_VALUE": "s3cret"}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--web.listen-address", addr, "--web.config.file", webConfig, "--log.level", "warn"}, io.Discard,
			func(k string) (string, bool) { v, ok := env[k]; return v, ok }, recordingSources(testInventory()))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case rc := <-done:
			if rc != 0 {
				t.Errorf("run exited %d after shutdown, want 0", rc)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not return after its context ended")
		}
	})

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	get := func(path, user, pass string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for code, _ := get("/metrics", "", ""); code == 0; code, _ = get("/metrics", "", "") {
		if time.Now().After(deadline) {
			t.Fatal("exporter did not start listening with TLS")
		}
		time.Sleep(20 * time.Millisecond)
	}

	tests := []struct {
		name, path, user, pass string
		code                   int
		want                   string
	}{
		{"no credentials", "/metrics", "", "", http.StatusUnauthorized, "Unauthorized"},
		{"wrong password", "/metrics", "prometheus", "guess", http.StatusUnauthorized, "Unauthorized"},
		{"unknown user", "/pve?target=127.0.0.1", "admin", "s3cret-pass", http.StatusUnauthorized, "Unauthorized"},
		{"metrics with credentials", "/metrics", "prometheus", "s3cret-pass", http.StatusOK, "go_goroutines"},
		{"pve with credentials", "/pve?target=127.0.0.1", "prometheus", "s3cret-pass", http.StatusOK, `pve_guest_info{id="qemu/100"`},
		{"no credentials on /pve", "/pve?target=127.0.0.1", "", "", http.StatusUnauthorized, "Unauthorized"},
	}
	for _, tt := range tests {
		if code, body := get(tt.path, tt.user, tt.pass); code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("%s: GET %s = %d, want %d containing %q:\n%.1000s", tt.name, tt.path, code, tt.code, tt.want, body)
		}
	}

	// Plain HTTP on the TLS port gets no exposition.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "pve_exporter") {
			t.Errorf("plain HTTP on the TLS listener answered %d:\n%.500s", resp.StatusCode, body)
		}
	}
}

// selfSignedCert returns a PEM certificate and key for 127.0.0.1, valid for an hour.
func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pve-exporter test"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
