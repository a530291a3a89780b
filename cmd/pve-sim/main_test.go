package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRunServesWithinTwoSeconds starts the command on a free port, reads the URL and token it prints, and
// calls the API with the printed token over its self-signed TLS.
func TestRunServesWithinTwoSeconds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- run(ctx, []string{"--web.listen-address", "127.0.0.1:0", "--speed", "0"}, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url, token string
	urlRE := regexp.MustCompile(`at (https://127\.0\.0\.1:\d+/api2/json)$`)
	tokenRE := regexp.MustCompile(`^API token: +(root@pam!proxbalance=\S+)$`)
	for lines.Scan() && (url == "" || token == "") {
		if m := urlRE.FindStringSubmatch(lines.Text()); m != nil {
			url = m[1]
		}
		if m := tokenRE.FindStringSubmatch(lines.Text()); m != nil {
			token = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if url == "" || token == "" {
		t.Fatalf("no URL or token printed")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/nodes", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /nodes: %d", resp.StatusCode)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("serving after %s, want < 2s", d)
	}
	cert := resp.TLS.PeerCertificates[0]
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || len(cert.IPAddresses) == 0 || cert.IPAddresses[0].String() != "127.0.0.1" || !strings.Contains(strings.Join(cert.DNSNames, ","), "localhost") {
		t.Errorf("certificate: key %T, IPs %v, names %v", cert.PublicKey, cert.IPAddresses, cert.DNSNames)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario.builtin", "nope"},
		{"--log.level", "loud"},
		{"--scenario", "/nonexistent.yml"},
		{"--pve-version", "7.0.0"},
		{"stray"},
	} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
}
