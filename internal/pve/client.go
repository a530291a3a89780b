package pve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	jsoniter "github.com/json-iterator/go"
	proxmox "github.com/luthermonson/go-proxmox"
)

// sessionLifetime is how long a ticket is used before logging in again. PVE tickets are valid for two hours.
const sessionLifetime = time.Hour

// Client talks to one PVE cluster. It is safe for concurrent use.
type Client struct {
	base   string // ".../api2/json"
	http   *http.Transport
	client *http.Client // through transport: what go-proxmox uses too
	token  Secret       // "PVEAPIToken=user@realm!name=secret" for token authentication
	// resourceSizes sizes the next /cluster/resources read from the last one.
	resourceSizes resourceSizes
	counts        *callCounter
	perNode       int
	maxConc       int
	now           func() time.Time

	// Token authentication uses gp as is. Password authentication replaces gp with a fresh go-proxmox client
	// for every login instead of renewing a session in place: go-proxmox reads its session without a lock, so
	// renewing it under concurrent requests would race.
	password bool
	newGP    func() *proxmox.Client
	mu       sync.RWMutex
	gp       *proxmox.Client
	until    time.Time // session expiry (password authentication only)
}

// Option customises a Client beyond its Config.
type Option func(*clientOptions)

type clientOptions struct {
	observer  Observer
	logger    log.Logger
	lookupEnv func(string) (string, bool)
	backoff   time.Duration
}

// WithObserver reports every HTTP request to o (for request duration and error metrics).
func WithObserver(o Observer) Option { return func(c *clientOptions) { c.observer = o } }

// WithLogger sets the go-kit logger (default: none).
func WithLogger(l log.Logger) Option { return func(c *clientOptions) { c.logger = l } }

// WithLookupEnv replaces os.LookupEnv for finding the token secret in the environment.
func WithLookupEnv(f func(string) (string, bool)) Option {
	return func(c *clientOptions) { c.lookupEnv = f }
}

// WithRetryBackoff sets the first retry delay (default 250ms); it doubles per attempt up to 5s.
func WithRetryBackoff(d time.Duration) Option { return func(c *clientOptions) { c.backoff = d } }

// New builds a client from a validated config. It reads the secret and CA files but makes no request.
func New(cfg Config, opts ...Option) (*Client, error) {
	o := clientOptions{logger: log.NewNopLogger(), lookupEnv: os.LookupEnv, backoff: 250 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid PVE config: %w", err)
	}
	apiURL, _ := apiBaseURL(cfg.URL) // validated above
	secret, err := cfg.secret(o.lookupEnv)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = tlsConfig
	base.MaxIdleConnsPerHost = 32
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	retries := cfg.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}
	perNode := cfg.PerNodeConcurrency
	if perNode == 0 {
		perNode = DefaultPerNodeConcurrency
	}
	maxConc := cfg.MaxConcurrency
	if maxConc == 0 {
		maxConc = DefaultMaxConcurrency
	}
	u, _ := url.Parse(apiURL)
	c := &Client{
		base:    apiURL,
		http:    base,
		counts:  &callCounter{},
		perNode: perNode,
		maxConc: maxConc,
		now:     time.Now,
	}
	rt := &transport{
		base:       base,
		prefix:     u.Path,
		timeout:    timeout,
		retries:    retries,
		backoff:    o.backoff,
		maxBackoff: 5 * time.Second,
		observer:   o.observer,
		counts:     c.counts,
		sleep:      sleepContext,
		logger:     o.logger,
	}
	httpClient := &http.Client{Transport: rt}
	c.client = httpClient
	gpOpts := []proxmox.Option{
		proxmox.WithHTTPClient(httpClient),
		proxmox.WithUserAgent("proxbalance"),
		proxmox.WithLogger(gpLogger{o.logger}),
	}
	if cfg.Username != "" {
		c.password = true
		creds := &proxmox.Credentials{Username: cfg.Username, Password: secret}
		gpOpts = append(gpOpts, proxmox.WithCredentials(creds))
	} else {
		gpOpts = append(gpOpts, proxmox.WithAPIToken(cfg.TokenID, secret))
		c.token = Secret("PVEAPIToken=" + cfg.TokenID + "=" + secret)
	}
	c.newGP = func() *proxmox.Client { return proxmox.NewClient(apiURL, gpOpts...) }
	if !c.password {
		c.gp = c.newGP()
	}
	return c, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.InsecureSkipVerify {
		tc.InsecureSkipVerify = true //nolint:gosec // explicit opt-in, validated and documented
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate found", c.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// BaseURL is the API root this client talks to, e.g. "https://pve1:8006/api2/json".
func (c *Client) BaseURL() string { return c.base }

// Close releases idle connections. The client stays usable; new requests open new connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// APICalls returns how many HTTP requests were made per endpoint template since the client was created.
func (c *Client) APICalls() map[string]uint64 { return c.counts.snapshot() }

// Go-proxmox's http.Client is handed an error for every non-2xx answer, so its own 401/403 handling (retry after
// creating a session, ErrNotAuthorized) never runs; login is driven from here instead.
func (c *Client) session(ctx context.Context, failed *proxmox.Client) (*proxmox.Client, error) {
	if !c.password {
		return c.gp, nil
	}
	c.mu.RLock()
	gp, until := c.gp, c.until
	c.mu.RUnlock()
	if gp != nil && gp != failed && c.now().Before(until) {
		return gp, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gp != nil && c.gp != failed && c.now().Before(c.until) {
		return c.gp, nil // another caller logged in meanwhile
	}
	gp = c.newGP()
	if err := gp.CreateSession(ctx); err != nil {
		return nil, fmt.Errorf("logging in to PVE: %w", unwrapTransport(err))
	}
	c.gp, c.until = gp, c.now().Add(sessionLifetime)
	return gp, nil
}

// call runs one go-proxmox request, logging in first (and once more on 401) for password authentication.
func (c *Client) call(ctx context.Context, method, path string, do func(*proxmox.Client) error) error {
	gp, err := c.session(ctx, nil)
	if err != nil {
		return err
	}
	err = do(gp)
	if c.password && IsUnauthorized(err) {
		if gp, err = c.session(ctx, gp); err != nil {
			return err
		}
		err = do(gp)
	}
	if err == nil {
		return nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	return fmt.Errorf("PVE API %s %s: %w", method, path, unwrapTransport(err))
}

// unwrapTransport strips net/http's *url.Error, whose text repeats the full URL.
func unwrapTransport(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var ae *APIError
		if errors.As(ue.Err, &ae) {
			return ae
		}
		return ue.Err
	}
	return err
}

// get decodes the "data" of GET path into v.
func (c *Client) get(ctx context.Context, path string, v any) error {
	return c.call(ctx, http.MethodGet, path, func(gp *proxmox.Client) error { return gp.Get(ctx, path, v) })
}

// getIter GETs path and hands the answer's "data" to read, a json-iterator reader, in one pass over the body.
// It is for the large answer of every round, /cluster/resources: go-proxmox's Req copies an answer for its debug
// log and decodes it twice (an envelope map, then the data), which for 5,000 guests cost more than decoding the
// entries. The request goes through the same http.Client, transport (typed errors, retries, metrics, the body
// read within the timeout) and session as go-proxmox's.
func (c *Client) getIter(ctx context.Context, path string, read func(*jsoniter.Iterator)) error {
	return c.call(ctx, http.MethodGet, path, func(gp *proxmox.Client) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
		if err != nil {
			return err
		}
		c.authorize(req.Header, gp)
		res, err := c.client.Do(req)
		if err != nil {
			return err
		}
		defer func() { _ = res.Body.Close() }()
		it := jsoniter.Parse(jsoniter.ConfigDefault, res.Body, 64<<10)
		found := false
		it.ReadObjectCB(func(it *jsoniter.Iterator, key string) bool {
			if key == "data" {
				found = true
				read(it)
			} else {
				it.Skip()
			}
			return it.Error == nil
		})
		if err := iterError(it); err != nil {
			return fmt.Errorf("decoding the answer: %w", err)
		}
		if !found {
			return errors.New("decoding the answer: no data member")
		}
		return nil
	})
}

// authorize sets the headers go-proxmox sets on its requests: the API token, or the session's ticket.
func (c *Client) authorize(h http.Header, gp *proxmox.Client) {
	h.Set("User-Agent", "proxbalance")
	h.Set("Accept", "application/json")
	if c.token != "" {
		h.Set("Authorization", c.token.Value())
		return
	}
	if s := gp.Session(); s != nil {
		h.Set("Cookie", "PVEAuthCookie="+s.Ticket)
		h.Set("CSRFPreventionToken", s.CSRFPreventionToken)
	}
}

// post sends body as JSON and decodes the answer's "data" into v.
func (c *Client) post(ctx context.Context, path string, body, v any) error {
	return c.call(ctx, http.MethodPost, path, func(gp *proxmox.Client) error { return gp.Post(ctx, path, body, v) })
}

// gpLogger routes go-proxmox's warnings and errors to go-kit. Its debug output, which includes request bodies,
// is dropped.
type gpLogger struct{ l log.Logger }

func (g gpLogger) Debugf(string, ...any) {}
func (g gpLogger) Infof(format string, v ...any) {
	_ = level.Debug(g.l).Log("component", "go-proxmox", "msg", fmt.Sprintf(format, v...))
}
func (g gpLogger) Warnf(format string, v ...any) {
	_ = level.Warn(g.l).Log("component", "go-proxmox", "msg", fmt.Sprintf(format, v...))
}
func (g gpLogger) Errorf(format string, v ...any) {
	_ = level.Error(g.l).Log("component", "go-proxmox", "msg", fmt.Sprintf(format, v...))
}
