package pve

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Observer is told about every HTTP request made to the PVE API, retries included, so that callers can export
// request durations and errors (e.g. pve_exporter_api_request_duration_seconds{endpoint}). endpoint is the path
// template such as "/nodes/{node}/status"; status is 0 when no answer arrived. It must be safe for concurrent use
// and must not block.
type Observer interface {
	ObserveRequest(method, endpoint string, status int, duration time.Duration, err error)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(method, endpoint string, status int, duration time.Duration, err error)

// ObserveRequest calls f.
func (f ObserverFunc) ObserveRequest(method, endpoint string, status int, duration time.Duration, err error) {
	f(method, endpoint, status, duration, err)
}

// maxResponseBytes bounds what one answer may hold; /cluster/resources of a 10,000-guest cluster is ~5 MiB.
const maxResponseBytes = 256 << 20

// transport sits under go-proxmox and is the one place where HTTP answers are judged: every non-2xx becomes an
// *APIError (go-proxmox would turn 503/595/596 into empty successes and drop PVE's message on 500), each attempt
// gets its own timeout, idempotent requests are retried on transient failures, and every attempt is counted and
// observed.
type transport struct {
	base       http.RoundTripper
	prefix     string // "/api2/json" as it appears in request paths
	timeout    time.Duration
	retries    int
	backoff    time.Duration // first retry delay; doubles per attempt, capped at maxBackoff
	maxBackoff time.Duration
	observer   Observer
	counts     *callCounter
	sleep      func(context.Context, time.Duration) error
	logger     log.Logger
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	path := strings.TrimPrefix(req.URL.Path, t.prefix)
	endpoint := EndpointTemplate(path)
	attempts := 1
	if req.Method == http.MethodGet || req.Method == http.MethodHead {
		// Only reads are retried: a POST (migrate above all) that timed out may have started a task.
		attempts += t.retries
	}
	for attempt := 1; ; attempt++ {
		res, err := t.once(req, path, endpoint)
		if err == nil {
			return res, nil
		}
		if attempt >= attempts || !retryable(req.Context(), err) {
			return nil, err
		}
		delay := t.delay(attempt)
		_ = level.Debug(t.logger).Log("msg", "retrying PVE API request", "method", req.Method, "endpoint", endpoint,
			"attempt", attempt, "delay", delay, "err", err)
		if serr := t.sleep(req.Context(), delay); serr != nil {
			return nil, err
		}
	}
}

// delay is exponential backoff with jitter in [d/2, d).
func (t *transport) delay(attempt int) time.Duration {
	d := t.backoff
	for i := 1; i < attempt && d < t.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, t.maxBackoff)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func (t *transport) once(req *http.Request, path, endpoint string) (*http.Response, error) {
	ctx := req.Context()
	cancel := context.CancelFunc(func() {})
	if t.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, t.timeout)
	}
	defer cancel()
	start := time.Now()
	t.counts.add(endpoint)
	res, err := t.base.RoundTrip(req.Clone(ctx))
	var body []byte
	if err == nil {
		body, err = readBody(res)
		_ = res.Body.Close()
		if err == nil && len(body) > maxResponseBytes {
			err = fmt.Errorf("answer larger than %d bytes", maxResponseBytes)
		}
	}
	status := 0
	if res != nil {
		status = res.StatusCode
	}
	if err == nil && (status < 200 || status > 299) {
		err = newAPIError(req.Method, path, res, body)
	}
	if t.observer != nil {
		t.observer.ObserveRequest(req.Method, endpoint, status, time.Since(start), err)
	}
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	return res, nil
}

func newAPIError(method, path string, res *http.Response, body []byte) *APIError {
	e := &APIError{Method: method, Path: path, StatusCode: res.StatusCode}
	var parsed struct {
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors"`
	}
	if len(body) > 0 && json.Unmarshal(body, &parsed) == nil {
		e.Message = strings.TrimSpace(parsed.Message)
		e.Errors = parsed.Errors
	}
	if e.Message == "" {
		// PVE puts its reason into the status line (401 "Authentication failed!", 595 "No route to host").
		e.Message = strings.TrimSpace(strings.TrimPrefix(res.Status, fmt.Sprint(res.StatusCode)))
	}
	if e.Message == "" {
		e.Message = http.StatusText(res.StatusCode)
	}
	return e
}

// retryable reports whether err is worth another attempt: network failures, a timed-out attempt and
// unavailable-node answers, but not a cancelled or expired caller context.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return IsUnavailable(ae)
	}
	// A certificate that does not verify will not verify on the next attempt either.
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	if errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) {
		return false
	}
	return true
}

func sleepContext(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// EndpointTemplate turns a concrete API path into its template, the low-cardinality label for metrics:
// "/nodes/pve1/qemu/100/config" becomes "/nodes/{node}/qemu/{vmid}/config". A query string is dropped.
func EndpointTemplate(path string) string {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i := 1; i < len(segs); i++ {
		switch segs[i-1] {
		case "nodes":
			if i == 1 {
				segs[i] = "{node}"
			}
		case "qemu", "lxc":
			segs[i] = "{vmid}"
		case "tasks":
			segs[i] = "{upid}"
		case "storage":
			if i == 3 { // /nodes/{node}/storage/{storage}
				segs[i] = "{storage}"
			}
		case "replication":
			segs[i] = "{id}"
		case "resources":
			if i == 3 && segs[1] == "ha" { // /cluster/ha/resources/{sid}
				segs[i] = "{sid}"
			}
		}
	}
	return "/" + strings.Join(segs, "/")
}

// callCounter counts HTTP requests per endpoint template.
type callCounter struct {
	mu     sync.Mutex
	counts map[string]uint64
}

func (c *callCounter) add(endpoint string) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts = make(map[string]uint64)
	}
	c.counts[endpoint]++
	c.mu.Unlock()
}

func (c *callCounter) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// readBody reads an answer's body, up to one byte more than maxResponseBytes. A known length sizes the buffer
// at once: io.ReadAll would grow it a dozen times for a large /cluster/resources.
func readBody(res *http.Response) ([]byte, error) {
	var buf bytes.Buffer
	if n := res.ContentLength; n > 0 && n <= maxResponseBytes {
		buf.Grow(int(n) + bytes.MinRead) // room for the read that finds EOF
	}
	_, err := buf.ReadFrom(io.LimitReader(res.Body, maxResponseBytes+1))
	return buf.Bytes(), err
}
