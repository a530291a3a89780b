package exporter

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"

	"github.com/proxbalance/proxbalance/internal/pve"
)

// PVESourceOpts configure the sources backed by the PVE API.
type PVESourceOpts struct {
	// Observer is told about every PVE API request (the exporter's *Metrics).
	Observer RequestObserver
	Logger   log.Logger
	// MaxTargets bounds how many target+module pairs keep a client and its caches (default 64); the least
	// recently scraped is dropped first.
	MaxTargets int
	// Snapshotter configures each target's caching snapshotter. Parts zero means ExporterParts.
	Snapshotter pve.SnapshotterConfig
	// Scheme of the PVE API, "https" unless a test serves plain HTTP.
	Scheme string
}

// ExporterParts are the inventory parts the collectors convert: everything the Snapshotter offers, node PSI
// included (one /rrddata call per node and NodePressure TTL; PVE 8 nodes simply have none).
const ExporterParts = pve.AllParts

// Defaults of the per-target snapshotters: see docs/pve-exporter.md, "API calls".
const (
	defaultMaxTargets = 64
	// DefaultCacheMaxAge lets scrapes that arrive within it (an HA Prometheus pair, the balancer) share one
	// round of API calls.
	DefaultCacheMaxAge = 5 * time.Second
)

// PVESources keeps one pve.Client and caching pve.Snapshotter per scraped target and module, so that guest
// configs, storages and the other slow-changing parts are fetched once and refreshed on their TTLs rather than
// on every scrape. Its Source method is a SourceFactory. A module whose settings change (a reload) gets a
// fresh client.
type PVESources struct {
	opts PVESourceOpts

	mu      sync.Mutex
	entries map[string]*list.Element // key → element of lru holding *sourceEntry
	lru     *list.List               // front: most recently used
}

type sourceEntry struct {
	key    string
	client *pve.Client
	snap   *pve.Snapshotter
}

// NewPVESources returns an empty set of sources.
func NewPVESources(opts PVESourceOpts) *PVESources {
	if opts.MaxTargets <= 0 {
		opts.MaxTargets = defaultMaxTargets
	}
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.Snapshotter.Parts == 0 {
		opts.Snapshotter.Parts = ExporterParts
	}
	if opts.Scheme == "" {
		opts.Scheme = "https"
	}
	return &PVESources{opts: opts, entries: map[string]*list.Element{}, lru: list.New()}
}

// Source returns the cached source of target and module, creating its client on first use.
func (s *PVESources) Source(_ context.Context, target string, module Module) (Source, error) {
	cfg, err := s.clientConfig(target, module)
	if err != nil {
		return nil, err
	}
	key := sourceKey(target, module)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.entries[key]; ok {
		s.lru.MoveToFront(el)
		return snapshotSource{el.Value.(*sourceEntry).snap}, nil
	}
	var clientOpts []pve.Option
	if s.opts.Observer != nil {
		clientOpts = append(clientOpts, pve.WithObserver(s.opts.Observer))
	}
	clientOpts = append(clientOpts, pve.WithLogger(log.With(s.opts.Logger, "target", target)),
		// A token without secret is rejected by Module.Validate; never fall back to the exporter's environment.
		pve.WithLookupEnv(func(string) (string, bool) { return "", false }))
	client, err := pve.New(cfg, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("creating PVE client for %s: %w", target, err)
	}
	e := &sourceEntry{key: key, client: client, snap: pve.NewSnapshotter(client, s.opts.Snapshotter)}
	s.entries[key] = s.lru.PushFront(e)
	for s.lru.Len() > s.opts.MaxTargets {
		oldest := s.lru.Back()
		old := s.lru.Remove(oldest).(*sourceEntry)
		delete(s.entries, old.key)
		old.client.Close()
	}
	return snapshotSource{e.snap}, nil
}

// Len is the number of targets with a cached client.
func (s *PVESources) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// APICalls sums the API requests of every cached client by endpoint template.
func (s *PVESources) APICalls() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := map[string]uint64{}
	for el := s.lru.Front(); el != nil; el = el.Next() {
		for ep, n := range el.Value.(*sourceEntry).client.APICalls() {
			sum[ep] += n
		}
	}
	return sum
}

// snapshotSource adapts a Snapshotter to Source.
type snapshotSource struct{ s *pve.Snapshotter }

func (s snapshotSource) Inventory(ctx context.Context) (*pve.Inventory, error) {
	return s.s.Inventory(ctx, pve.InventoryOptions{})
}

// sourceKey identifies a client: the target and a hash of every module setting, secrets included, so that a
// changed module never reuses a client built from the old one while no secret is kept in the key.
func sourceKey(target string, m Module) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%t\x00%s\x00%d\x00%g\x00%s",
		m.User, m.Password.Value(), m.TokenName, m.TokenValue.Value(), m.TokenValueFile,
		m.VerifySSL.Verify, m.VerifySSL.CAFile, m.Port, m.Timeout, m.PathPrefix)
	return target + "\x00" + hex.EncodeToString(h.Sum(nil))
}

// clientConfig translates a module (proxmoxer's arguments) and a target into the PVE client's configuration.
func (s *PVESources) clientConfig(target string, m Module) (pve.Config, error) {
	u, err := targetURL(s.opts.Scheme, target, m.Port, m.PathPrefix)
	if err != nil {
		return pve.Config{}, err
	}
	cfg := pve.Config{
		URL:                u,
		CAFile:             m.VerifySSL.CAFile,
		InsecureSkipVerify: !m.VerifySSL.Verify,
		Timeout:            m.RequestTimeout(),
	}
	if m.TokenName != "" {
		cfg.TokenID, cfg.TokenSecret = m.User+"!"+m.TokenName, pve.Secret(m.TokenValue.Value())
	} else {
		cfg.Username, cfg.Password = m.User, pve.Secret(m.Password.Value())
	}
	return cfg, nil
}

// targetURL builds the API URL of a target given as prometheus-pve-exporter takes it: a host name or address,
// optionally with a port (IPv6 in brackets); port applies when the target names none.
func targetURL(scheme, target string, port int, pathPrefix string) (string, error) {
	if target == "" || strings.ContainsAny(target, "/?#@ ") {
		return "", fmt.Errorf("target %q: want a host or host:port", target)
	}
	host, p, err := net.SplitHostPort(target)
	if err != nil {
		// No port: a bare host, or a bare IPv6 address.
		host, p = strings.Trim(target, "[]"), ""
	}
	if host == "" {
		return "", fmt.Errorf("target %q: missing host", target)
	}
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", fmt.Errorf("target %q: invalid IPv6 address %q", target, host)
		}
	}
	if p == "" {
		if port == 0 {
			port = defaultPort
		}
		p = strconv.Itoa(port)
	} else if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("target %q: invalid port %q", target, p)
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, p)}
	if prefix := strings.Trim(pathPrefix, "/"); prefix != "" {
		u.Path = "/" + prefix
	}
	// What url.Parse refuses (a host with characters no host name has) the client would refuse too.
	if _, err := url.Parse(u.String()); err != nil {
		return "", fmt.Errorf("target %q: %w", target, err)
	}
	return u.String(), nil
}
