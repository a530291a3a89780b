package pve

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testTokenID     = "prometheus@pve!exporter"
	testTokenSecret = "5f0c8d2e-0000-4000-8000-123456789abc"
)

// fixture is one file of the repository's testdata/pve: a real or source-derived PVE answer.
type fixture struct {
	Endpoint string          `json:"endpoint"`
	Kind     string          `json:"kind"`
	Status   *int            `json:"status"`
	Body     json.RawMessage `json:"body"`
}

func loadFixture(t testing.TB, name string) fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "pve", name))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

// fixtureData returns the "data" of a fixture's body.
func fixtureData(t testing.TB, name string) json.RawMessage {
	t.Helper()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(loadFixture(t, name).Body, &env); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return env.Data
}

// route is a canned answer.
type route struct {
	status int
	body   string
	// block, when set, is waited on before answering (to hold a request in flight).
	block chan struct{}
	// delay holds the answer back for a while, so that concurrent requests overlap.
	delay time.Duration
}

// fakePVE serves canned PVE answers over TLS on 127.0.0.1 and counts requests. Unknown paths get PVE's 501.
type fakePVE struct {
	t   testing.TB
	srv *httptest.Server

	mu     sync.Mutex
	routes map[string]route // "GET /cluster/resources" (path without /api2/json and query)
	calls  map[string]int
	bodies map[string]string // last request body per "METHOD path"
	query  map[string]string // last raw query per "METHOD path"
	// auth returns whether a request is authenticated; default: the test token.
	auth func(r *http.Request) bool
	// override, when set, answers every request instead of the routes.
	override http.Handler
	// Requests in flight, in total and per node (/nodes/{node}/...), and their maxima.
	inflight, maxInflight         int
	nodeInflight, maxNodeInflight map[string]int
}

func (f *fakePVE) setAuth(auth func(*http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = auth
}

func (f *fakePVE) setOverride(h http.Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.override = h
}

func newFakePVE(t testing.TB) *fakePVE {
	f := &fakePVE{t: t, routes: map[string]route{}, calls: map[string]int{}, bodies: map[string]string{}, query: map[string]string{},
		nodeInflight: map[string]int{}, maxNodeInflight: map[string]int{}}
	f.auth = func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "PVEAPIToken="+testTokenID+"="+testTokenSecret
	}
	f.srv = httptest.NewUnstartedServer(f) // listens on 127.0.0.1
	// Connections cut by the client's timeouts are expected here, not worth a log line.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// newStandardFakePVE serves the testdata cluster: four nodes (node1..node4), qemu 100 on node2 and 101, 102, 200
// on node1.
func newStandardFakePVE(t testing.TB) *fakePVE {
	f := newFakePVE(t)
	for file, path := range map[string]string{
		"cluster_resources.json":         "/cluster/resources",
		"cluster_status.json":            "/cluster/status",
		"cluster_tasks.json":             "/cluster/tasks",
		"cluster_ha_resources.json":      "/cluster/ha/resources",
		"cluster_ha_status_current.json": "/cluster/ha/status/current",
		"version.json":                   "/version",
		"nodes.json":                     "/nodes",
	} {
		f.setFixture("GET", path, file)
	}
	for _, n := range []string{"node1", "node2", "node3", "node4"} {
		f.setFixture("GET", "/nodes/"+n+"/status", "node_status.json")
		f.setFixture("GET", "/nodes/"+n+"/storage", "node_storage.json")
		f.setFixture("GET", "/nodes/"+n+"/rrddata", "node_rrddata.json")
		f.set("GET", "/nodes/"+n+"/subscription", 200, subscriptionBody)
		f.set("GET", "/nodes/"+n+"/replication", 200, `{"data":[]}`)
		f.set("GET", "/nodes/"+n+"/qemu", 200, `{"data":[]}`)
		f.set("GET", "/nodes/"+n+"/lxc", 200, `{"data":[]}`)
	}
	f.set("GET", "/nodes/node2/qemu", 200, node2QemuListBody)
	f.set("GET", "/nodes/node2/replication", 200, replicationBody)
	f.set("GET", "/cluster/backup-info/not-backed-up", 200, notBackedUpBody)
	f.set("GET", "/cluster/config/qdevice", 200, qdeviceBody)
	for _, g := range []string{"node2/qemu/100", "node1/qemu/101", "node1/qemu/102", "node1/qemu/200"} {
		f.setFixture("GET", "/nodes/"+g+"/config", "qemu_config.json")
	}
	return f
}

// Bodies for endpoints without a fixture, shaped after PVE's code: pve-manager PVE/API2/Subscription.pm (read
// of the subscription info: status lower-case since PVE 7, level, nextduedate as YYYY-MM-DD),
// PVE/API2/Replication.pm status (job state per id, last_sync/next_sync epochs, duration in seconds as a float,
// fail_count, error), PVE/API2/BackupInfo.pm not_backed_up (vmid, name, type), pve-cluster
// src/PVE/API2/ClusterConfig.pm qdevice status (the "status verbose" lines of corosync-qdevice it keeps, strings).
const (
	subscriptionBody = `{"data":{"status":"active","level":"c","key":"pve4c-0123456789","productname":"Proxmox VE Community Subscription 4 CPUs/year","nextduedate":"2027-03-01","sockets":4,"checktime":1721870000}}`
	replicationBody  = `{"data":[{"id":"100-0","jobnum":0,"guest":100,"type":"local","target":"node3","vmtype":"qemu","schedule":"*/15","source":"node2","last_sync":1721872800,"last_try":1721872800,"next_sync":1721873700,"duration":3.517,"fail_count":0},{"id":"100-1","jobnum":1,"guest":100,"type":"local","target":"node4","vmtype":"qemu","schedule":"*/15","source":"node2","last_sync":1721871900,"last_try":1721872400,"next_sync":1721873000,"duration":0.8,"fail_count":2,"error":"command 'zfs snapshot …' failed: exit code 1"}]}`
	// qemu-server's vmlist as PVE 9 sends it for a running VM: PSI as numbers (percentages).
	node2QemuListBody = `{"data":[{"vmid":100,"status":"running","name":"vm100","cpus":2,"maxmem":2147483648,"mem":1073741824,"memhost":1100000000,"pressurecpusome":1.5,"pressurecpufull":0.5,"pressureiosome":0,"pressureiofull":0,"pressurememorysome":0.25,"pressurememoryfull":0}]}`
	notBackedUpBody   = `{"data":[{"vmid":200,"name":"VM 200","type":"qemu"},{"vmid":102,"name":"machine-test","type":"qemu"}]}`
	qdeviceBody       = `{"data":{"Algorithm":"Fifty-Fifty split","Echo reply":"Enabled","Last poll call":"2024-07-25 03:59:50 (385212)","Model":"Net","QNetd host":"10.0.0.9:5403","State":"Connected","Tie-breaker":"Node with lowest node ID"}}`
)

func (f *fakePVE) set(method, path string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[method+" "+path] = route{status: status, body: body}
}

func (f *fakePVE) setRoute(method, path string, r route) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[method+" "+path] = r
}

func (f *fakePVE) setFixture(method, path, file string) {
	fx := loadFixture(f.t, file)
	status := 200
	if fx.Status != nil {
		status = *fx.Status
	}
	f.set(method, path, status, string(fx.Body))
}

// count returns the requests made to "METHOD path".
func (f *fakePVE) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

func (f *fakePVE) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func (f *fakePVE) resetCounts() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = map[string]int{}
}

func (f *fakePVE) lastQuery(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.query[key]
}

func (f *fakePVE) lastBody(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[key]
}

func (f *fakePVE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	override := f.override
	f.mu.Unlock()
	if override != nil {
		override.ServeHTTP(w, r)
		return
	}
	f.serveRoute(w, r)
}

// serveRoute counts the request and answers it from the routes.
func (f *fakePVE) serveRoute(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/api2/json")
	key := r.Method + " " + path
	var body strings.Builder
	if r.Body != nil {
		b := make([]byte, 4096)
		for {
			n, err := r.Body.Read(b)
			body.Write(b[:n])
			if err != nil {
				break
			}
		}
	}
	node := ""
	if rest, ok := strings.CutPrefix(path, "/nodes/"); ok {
		node, _, _ = strings.Cut(rest, "/")
	}
	f.mu.Lock()
	f.calls[key]++
	f.bodies[key] = body.String()
	f.query[key] = r.URL.RawQuery
	rt, ok := f.routes[key]
	auth := f.auth
	f.inflight++
	f.maxInflight = max(f.maxInflight, f.inflight)
	f.nodeInflight[node]++
	f.maxNodeInflight[node] = max(f.maxNodeInflight[node], f.nodeInflight[node])
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		f.nodeInflight[node]--
		f.mu.Unlock()
	}()
	if path != "/access/ticket" && !auth(r) {
		// pve-http-server: plain 401 with the reason in the status line and no body.
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotImplemented)
		fmt.Fprintf(w, `{"data":null,"message":"Method '%s %s' not implemented"}`, r.Method, path)
		return
	}
	if rt.delay > 0 {
		time.Sleep(rt.delay)
	}
	if rt.block != nil {
		select {
		case <-rt.block:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(rt.status)
	_, _ = w.Write([]byte(rt.body))
}

// caFile writes the server's certificate as a PEM CA bundle.
func (f *fakePVE) caFile() string {
	p := filepath.Join(f.t.TempDir(), "pve-root-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(p, pemBytes, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fakePVE) config() Config {
	return Config{
		URL:         f.srv.URL,
		TokenID:     testTokenID,
		TokenSecret: testTokenSecret,
		CAFile:      f.caFile(),
		Timeout:     30 * time.Second, // generous: a loaded CI machine must not turn slow TLS handshakes into retries
	}
}

// client returns a Client for the fake with no retry delay.
func (f *fakePVE) client(opts ...Option) *Client {
	f.t.Helper()
	return f.clientWith(f.config(), opts...)
}

func (f *fakePVE) clientWith(cfg Config, opts ...Option) *Client {
	f.t.Helper()
	c, err := New(cfg, append([]Option{WithRetryBackoff(time.Millisecond)}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(c.Close)
	return c
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sequence answers successive requests with successive routes (the last one repeats), checking the test token.
type sequence struct {
	mu    sync.Mutex
	steps []route
	n     int
}

func (s *sequence) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := s.n
	if i >= len(s.steps) {
		i = len(s.steps) - 1
	}
	s.n++
	rt := s.steps[i]
	s.mu.Unlock()
	w.WriteHeader(rt.status)
	_, _ = w.Write([]byte(rt.body))
}

func (s *sequence) served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
