package pvesim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// TestErrorsMatchTestdata replays every case of testdata/pve/errors.json: status, body shape and message.
func TestErrorsMatchTestdata(t *testing.T) {
	srv := pvesimtest.Start(t)
	var cases map[string]struct {
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(readTestdata(t, "errors.json").Body, &cases); err != nil {
		t.Fatal(err)
	}
	requests := map[string]struct {
		auth, method, path, form string
	}{
		"bad_token_401":           {"PVEAPIToken=root@pam!proxbalance=wrong", http.MethodGet, "/nodes", ""},
		"unknown_path_501":        {srv.AuthHeader(), http.MethodGet, "/nodes/node1/no-such-endpoint", ""},
		"migrate_to_own_node_400": {srv.AuthHeader(), http.MethodPost, "/nodes/pve1/qemu/100/migrate", "target=pve1&online=1"},
		"nonexistent_vmid_500":    {srv.AuthHeader(), http.MethodGet, "/nodes/pve1/qemu/999999/status/current", ""},
	}
	if len(requests) != len(cases) {
		t.Fatalf("errors.json has %d cases, the test knows %d", len(cases), len(requests))
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			req, ok := requests[name]
			if !ok {
				t.Fatalf("no request for case %s", name)
			}
			status, body := srv.DoAuth(t, req.auth, req.method, req.path, req.form)
			if status != want.Status {
				t.Fatalf("status %d, want %d (%s)", status, want.Status, body)
			}
			var wantBody any
			if err := json.Unmarshal(want.Body, &wantBody); err != nil {
				t.Fatal(err)
			}
			if s, ok := wantBody.(string); ok {
				if string(body) != s {
					t.Fatalf("body %q, want %q", body, s)
				}
				return
			}
			got := decode(t, body)
			for _, d := range pvesimtest.CompareShape(decode(t, want.Body), got, pvesimtest.ShapeOptions{}) {
				t.Error(d)
			}
			wm, gm := wantBody.(map[string]any), got.(map[string]any)
			msg := wm["message"].(string)
			if name == "nonexistent_vmid_500" {
				msg = strings.Replace(msg, "nodes/node1/", "nodes/pve1/", 1)
			}
			if gm["message"] != msg {
				t.Errorf("message %q, want %q", gm["message"], msg)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	srv := pvesimtest.Start(t)
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"admin token", "PVEAPIToken=root@pam!proxbalance=" + pvesimtest.TokenSecret, 200},
		{"colon separator", "PVEAPIToken=root@pam!proxbalance:" + pvesimtest.TokenSecret, 200},
		{"audit token", srv.AuditAuthHeader(), 200},
		{"missing header", "", 401},
		{"wrong secret", "PVEAPIToken=root@pam!proxbalance=nope", 401},
		{"unknown token", "PVEAPIToken=root@pam!other=" + pvesimtest.TokenSecret, 401},
		{"another token's secret", "PVEAPIToken=root@pam!proxbalance-audit=" + pvesimtest.TokenSecret, 401},
		{"not a token", "Bearer " + pvesimtest.TokenSecret, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := srv.DoAuth(t, tc.auth, http.MethodGet, "/version", "")
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if status == 401 && len(body) != 0 {
				t.Errorf("401 has a body: %q", body)
			}
		})
	}
}

func TestAuthFailureDelay(t *testing.T) {
	srv := pvesimtest.Start(t, pvesimtest.WithAuthFailureDelay(50*time.Millisecond))
	start := time.Now()
	if status, _ := srv.DoAuth(t, "", http.MethodGet, "/version", ""); status != 401 {
		t.Fatalf("status %d, want 401", status)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("401 came after %s, want at least 50ms", d)
	}
}

func TestAuditTokenIsReadOnly(t *testing.T) {
	srv := pvesimtest.Start(t)
	status, body := srv.DoAuth(t, srv.AuditAuthHeader(), http.MethodPost, "/nodes/pve2/qemu/203/migrate", "target=pve3&online=1")
	if status != http.StatusForbidden {
		t.Fatalf("audit migrate: status %d, want 403 (%s)", status, body)
	}
	if m := decode(t, body).(map[string]any)["message"]; m != "Permission check failed (/vms/203, VM.Migrate)\n" {
		t.Errorf("message %q", m)
	}
	for _, tc := range []struct {
		auth    string
		migrate bool
	}{{srv.AuditAuthHeader(), false}, {srv.AuthHeader(), true}} {
		_, body := srv.DoAuth(t, tc.auth, http.MethodGet, "/access/permissions", "")
		var perms struct {
			Data map[string]map[string]int `json:"data"`
		}
		if err := json.Unmarshal(body, &perms); err != nil {
			t.Fatal(err)
		}
		root := perms.Data["/"]
		if root["Sys.Audit"] != 1 || root["VM.Audit"] != 1 {
			t.Errorf("permissions on / lack audit privileges: %v", root)
		}
		if _, ok := root["VM.Migrate"]; ok != tc.migrate {
			t.Errorf("VM.Migrate present = %v, want %v", ok, tc.migrate)
		}
	}
}

func TestParameterVerification(t *testing.T) {
	srv := pvesimtest.Start(t)
	tests := []struct {
		name, method, path, form string
		status                   int
		errKey                   string
	}{
		{"unknown parameter", http.MethodGet, "/cluster/resources?foo=1", "", 400, "foo"},
		{"bad enum", http.MethodGet, "/cluster/resources?type=vms", "", 400, "type"},
		{"missing timeframe", http.MethodGet, "/nodes/pve1/rrddata", "", 400, "timeframe"},
		{"bad timeframe", http.MethodGet, "/nodes/pve1/rrddata?timeframe=minute", "", 400, "timeframe"},
		{"bad vmid", http.MethodGet, "/nodes/pve1/qemu/abc/config", "", 400, "vmid"},
		{"bad boolean", http.MethodPost, "/nodes/pve1/qemu/100/migrate", "target=pve2&online=maybe", 400, "online"},
		{"missing target", http.MethodPost, "/nodes/pve1/qemu/100/migrate", "online=1", 400, "target"},
		{"unknown migrate option", http.MethodPost, "/nodes/pve1/qemu/100/migrate", "target=pve2&online=1&turbo=1", 400, "turbo"},
		{"unknown node", http.MethodGet, "/nodes/pve9/status", "", 500, ""},
		{"wrong method", http.MethodDelete, "/nodes", "", 501, ""},
		{"guest on another node", http.MethodGet, "/nodes/pve2/qemu/100/status/current", "", 500, ""},
		{"vm asked as ct", http.MethodGet, "/nodes/pve1/lxc/100/config", "", 500, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := srv.Do(t, tc.method, tc.path, tc.form)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			var e struct {
				Data    any               `json:"data"`
				Message string            `json:"message"`
				Errors  map[string]string `json:"errors"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			if e.Data != nil || e.Message == "" {
				t.Errorf("error body %s lacks data:null and a message", body)
			}
			if tc.errKey != "" && e.Errors[tc.errKey] == "" {
				t.Errorf("errors %v lack %q", e.Errors, tc.errKey)
			}
		})
	}
	if _, body := srv.Do(t, http.MethodGet, "/nodes/pve1/lxc/100/config", ""); !strings.Contains(string(body), "nodes/pve1/lxc/100.conf") {
		t.Errorf("CT error names the wrong config path: %s", body)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults pvesim.Faults
		check  func(t *testing.T, srv *pvesimtest.Server)
	}{
		{"offline node", pvesim.Faults{OfflineNodes: []string{"pve3"}}, func(t *testing.T, srv *pvesimtest.Server) {
			if status, _ := srv.Do(t, http.MethodGet, "/nodes/pve3/status", ""); status != 595 {
				t.Errorf("offline node status: %d, want 595", status)
			}
			_, body := srv.Do(t, http.MethodGet, "/cluster/status", "")
			if !strings.Contains(string(body), `"name":"pve3","nodeid":3,"online":0`) {
				t.Errorf("cluster status does not show pve3 offline: %s", body)
			}
			_, body = srv.Do(t, http.MethodGet, "/cluster/resources?type=vm", "")
			if !strings.Contains(string(body), `"name":"mail","node":"pve3","status":"unknown"`) {
				t.Errorf("guest on offline node not unknown: %s", body)
			}
		}},
		{"forbidden node", pvesim.Faults{ForbiddenNodes: []string{"pve2"}}, func(t *testing.T, srv *pvesimtest.Server) {
			if status, _ := srv.Do(t, http.MethodGet, "/nodes/pve2/qemu", ""); status != 403 {
				t.Errorf("forbidden node: %d, want 403", status)
			}
			if status, _ := srv.Do(t, http.MethodGet, "/nodes/pve1/qemu", ""); status != 200 {
				t.Errorf("other node: %d, want 200", status)
			}
		}},
		{"node error", pvesim.Faults{NodeErrors: map[string]int{"pve2": 500, "pve3": 503}}, func(t *testing.T, srv *pvesimtest.Server) {
			for path, want := range map[string]int{"/nodes/pve2/status": 500, "/nodes/pve2/qemu": 500, "/nodes/pve3/lxc": 503, "/nodes/pve1/qemu": 200, "/cluster/resources": 200} {
				if status, _ := srv.Do(t, http.MethodGet, path, ""); status != want {
					t.Errorf("%s: %d, want %d", path, status, want)
				}
			}
			if _, body := srv.Do(t, http.MethodGet, "/nodes/pve2/status", ""); !strings.Contains(string(body), "got timeout") {
				t.Errorf("node error body %s, want PVE's error message", body)
			}
			_, body := srv.Do(t, http.MethodGet, "/cluster/status", "")
			if !strings.Contains(string(body), `"name":"pve2","nodeid":2,"online":1`) {
				t.Errorf("a node answering 5xx must stay online in cluster status: %s", body)
			}
		}},
		{"no quorum", pvesim.Faults{NoQuorum: true}, func(t *testing.T, srv *pvesimtest.Server) {
			status, body := srv.Do(t, http.MethodPost, "/nodes/pve2/qemu/203/migrate", "target=pve3&online=1")
			if status != 500 || !strings.Contains(string(body), "cluster not ready - no quorum?") {
				t.Errorf("migrate without quorum: %d %s", status, body)
			}
			_, body = srv.Do(t, http.MethodGet, "/cluster/status", "")
			if !strings.Contains(string(body), `"quorate":0`) {
				t.Errorf("cluster status still quorate: %s", body)
			}
		}},
		{"error rate", pvesim.Faults{ErrorRate: 0.5}, func(t *testing.T, srv *pvesimtest.Server) {
			failed := 0
			for range 200 {
				if status, _ := srv.Do(t, http.MethodGet, "/version", ""); status == 500 || status == 503 {
					failed++
				}
			}
			if failed < 60 || failed > 140 {
				t.Errorf("%d of 200 requests failed at error rate 0.5", failed)
			}
		}},
		{"latency", pvesim.Faults{NodeLatency: map[string]pvesim.Duration{"pve4": pvesim.Duration(30 * time.Millisecond)}}, func(t *testing.T, srv *pvesimtest.Server) {
			start := time.Now()
			srv.Do(t, http.MethodGet, "/nodes/pve4/status", "")
			if d := time.Since(start); d < 30*time.Millisecond {
				t.Errorf("pve4 answered in %s, want ≥ 30ms", d)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := pvesimtest.Start(t)
			if err := srv.Sim.SetFaults(tc.faults); err != nil {
				t.Fatal(err)
			}
			tc.check(t, srv)
		})
	}
}

func TestAdminAPI(t *testing.T) {
	srv := pvesimtest.Start(t)
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), method, srv.BaseURL+path, strings.NewReader(body))
		resp, err := srv.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if status, body := do(http.MethodPut, "/_sim/faults", `{"offline_nodes":["pve2"],"latency":"1ms"}`); status != 200 || !strings.Contains(body, `"pve2"`) {
		t.Fatalf("PUT faults: %d %s", status, body)
	}
	if got := srv.Sim.Faults(); len(got.OfflineNodes) != 1 || got.Latency != pvesim.Duration(time.Millisecond) {
		t.Errorf("faults after PUT: %+v", got)
	}
	if status, _ := do(http.MethodPut, "/_sim/faults", `{"offline_nodes":["nope"]}`); status != 400 {
		t.Errorf("PUT faults with unknown node: %d, want 400", status)
	}
	if status, body := do(http.MethodPut, "/_sim/faults", `{"node_errors":{"pve3":502}}`); status != 200 || !strings.Contains(body, `"node_errors"`) {
		t.Errorf("PUT faults with node_errors: %d %s", status, body)
	}
	if got := srv.Sim.Faults().NodeErrors; got["pve3"] != 502 {
		t.Errorf("node_errors after PUT: %v", got)
	}
	for _, body := range []string{`{"node_errors":{"nope":500}}`, `{"node_errors":{"pve3":404}}`} {
		if status, _ := do(http.MethodPut, "/_sim/faults", body); status != 400 {
			t.Errorf("PUT faults %s: %d, want 400", body, status)
		}
	}
	if status, _ := do(http.MethodPut, "/_sim/faults", `{"bogus":1}`); status != 400 {
		t.Errorf("PUT faults with unknown field: %d, want 400", status)
	}
	if status, _ := do(http.MethodDelete, "/_sim/faults", ""); status != 200 || len(srv.Sim.Faults().OfflineNodes) != 0 {
		t.Errorf("DELETE faults: %d %+v", status, srv.Sim.Faults())
	}
	before := srv.Sim.Now()
	if status, body := do(http.MethodPost, "/_sim/clock", `{"advance":"90s"}`); status != 200 || !strings.Contains(body, `"manual": true`) {
		t.Fatalf("POST clock: %d %s", status, body)
	}
	if d := srv.Sim.Now().Sub(before); d != 90*time.Second {
		t.Errorf("clock advanced %s, want 90s", d)
	}
	status, body := do(http.MethodGet, "/_sim/state", "")
	var st pvesim.State
	if err := json.Unmarshal([]byte(body), &st); status != 200 || err != nil || len(st.Guests) != 61 || len(st.Nodes) != 5 {
		t.Errorf("state: %d %v, %d guests, %d nodes", status, err, len(st.Guests), len(st.Nodes))
	}
}

// TestQDevice checks /cluster/config/qdevice against pve-cluster's src/PVE/API2/ClusterConfig.pm ("Get QDevice
// status"): {} without a QDevice, else the "status verbose" keys it keeps, as strings. There is no captured
// testdata/pve file for this endpoint, so TestShapesMatchTestdata does not cover it; the keys here are PVE's.
func TestQDevice(t *testing.T) {
	base, err := pvesim.Builtin("default")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		qdevice *pvesim.QDeviceSpec
		want    map[string]any
	}{
		{name: "none", want: map[string]any{}},
		{name: "defaults", qdevice: &pvesim.QDeviceSpec{Host: "10.0.0.9"}, want: map[string]any{
			"Model": "Net", "QNetd host": "10.0.0.9:5403", "Algorithm": "Fifty-Fifty split",
			"Tie-breaker": "Node with lowest node ID", "State": "Connected",
		}},
		{name: "lms, not connected", qdevice: &pvesim.QDeviceSpec{Host: "qnetd.example", Algorithm: "lms", State: "Connect failed"}, want: map[string]any{
			"Model": "Net", "QNetd host": "qnetd.example:5403", "Algorithm": "LMS",
			"Tie-breaker": "Node with lowest node ID", "State": "Connect failed",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scn := *base
			scn.QDevice = tt.qdevice
			srv := pvesimtest.Start(t, pvesimtest.WithScenario(&scn))
			status, body := srv.Do(t, http.MethodGet, "/cluster/config/qdevice", "")
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			var got struct {
				Data map[string]any `json:"data"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Data, tt.want) {
				t.Errorf("data %v, want %v", got.Data, tt.want)
			}
		})
	}
}
