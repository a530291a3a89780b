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
