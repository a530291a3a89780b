package pvesim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzAPIRequest sends arbitrary paths, queries, bodies and Authorization headers through the handler: every
// answer must be one of PVE's statuses with a JSON body (or the empty 401), and nothing may panic.
func FuzzAPIRequest(f *testing.F) {
	scn, err := Builtin("default")
	if err != nil {
		f.Fatal(err)
	}
	clock := NewManualClock(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))
	sim, err := New(scn, Options{Clock: clock, TokenSecret: "s"})
	if err != nil {
		f.Fatal(err)
	}
	h := sim.Handler()
	const auth = "PVEAPIToken=root@pam!proxbalance=s"
	f.Add("GET", "/api2/json/cluster/resources?type=vm", "", "", auth)
	f.Add("POST", "/api2/json/nodes/pve1/qemu/100/migrate", "application/x-www-form-urlencoded", "target=pve2&online=1", auth)
	f.Add("POST", "/api2/json/nodes/pve2/lxc/207/migrate", "application/json", `{"target":"pve3","restart":true}`, auth)
	f.Add("POST", "/api2/json/nodes/pve2/qemu/203/migrate", "application/json", `{"target":"pve3","online":1,"bwlimit":[1]}`, auth)
	f.Add("GET", "/api2/json/nodes/pve1/tasks/UPID:pve1:00000001:00000002:00000003:qmigrate:100:root@pam!proxbalance:/log?start=-5&limit=x", "", "", auth)
	f.Add("GET", "/api2/json/nodes/pve1/rrddata?timeframe=decade&cf=MAX", "", "", "PVEAPIToken=root@pam!proxbalance:s")
	f.Add("GET", "/api2/json//nodes///", "", "", "PVEAPIToken=!=")
	f.Fuzz(func(t *testing.T, method, target, contentType, body, authz string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		if strings.HasPrefix(target, "/_sim") {
			return // FuzzAdminFaults covers the admin API; a fuzzed one-hour latency fault would stall this target
		}
		req, err := http.NewRequest(method, "http://sim"+target, strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", authz)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		clock.Advance(time.Second)
		switch rec.Code {
		case 200, 400, 401, 403, 404, 405, 500, 501, 503, 595, 409:
		default:
			t.Fatalf("%s %s: status %d", method, target, rec.Code)
		}
		if rec.Code == 401 && rec.Body.Len() > 0 {
			t.Fatalf("401 with a body: %q", rec.Body.String())
		}
		if strings.HasPrefix(req.URL.Path, apiPrefix+"/") && rec.Body.Len() > 0 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: invalid JSON %q", method, target, rec.Body.String())
		}
	})
}

// FuzzAppendJSONString checks the hand-written string quoting against encoding/json's decoder.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "pve1", `a"b\c`, "tab\there", "\x00\x1f", "ünï", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q quoted as invalid JSON %s: %v", s, b, err)
		}
		want, _ := json.Marshal(s)
		var wantS string
		_ = json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Fatalf("%q round-trips to %q, encoding/json to %q", s, got, wantS)
		}
	})
}

// FuzzAdminFaults sends arbitrary JSON to PUT /_sim/faults: the answer is 200 with the faults stored, or a 400
// that changed nothing.
func FuzzAdminFaults(f *testing.F) {
	f.Add(`{"latency":"5ms","node_latency":{"pve2":"1s"},"error_rate":0.2,"offline_nodes":["pve3"],"forbidden_nodes":["pve4"],"no_quorum":true,"fail_migrations":[{"vmid":100},{"vmid":0}]}`)
	f.Add(`{"node_errors":{"pve2":503,"pve9":500}}`)
	f.Add(`{"node_errors":{"pve2":200}}`)
	f.Add(`{"latency":"-1s"}`)
	f.Add(`{"error_rate":2}`)
	f.Add(`{"offline_nodes":["nope"]}`)
	f.Add(`{"fail_migrations":[{"vmid":5}]}`)
	f.Add(`[]`)
	scn, err := Builtin("default")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		sim, err := New(scn, Options{Clock: NewManualClock(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC))})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		sim.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/_sim/faults", strings.NewReader(body)))
		switch rec.Code {
		case http.StatusOK:
			var echoed Faults
			if err := json.Unmarshal(rec.Body.Bytes(), &echoed); err != nil {
				t.Fatalf("200 with undecodable faults %q: %v", rec.Body.String(), err)
			}
		case http.StatusBadRequest:
			if f := sim.Faults(); f.NoQuorum || f.ErrorRate != 0 || len(f.OfflineNodes) > 0 || len(f.NodeErrors) > 0 || f.Latency != 0 {
				t.Fatalf("rejected faults were applied: %+v", f)
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
