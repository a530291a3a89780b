package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/proxbalance/proxbalance/internal/policy"
)

// BenchmarkWebhookStorm measures answering one Alertmanager request of 1,000 new alerts for one node (dedupe,
// mapping, coalescing); planning happens afterwards, off the request path.
func BenchmarkWebhookStorm(b *testing.B) {
	h := newHarness(b, settings(policy.ModeManual))
	h.planner.block = make(chan struct{})
	defer close(h.planner.block)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		body := alertJSON("firing", 1000, i*1000, `{"proxbalance_action":"relieve","node":"pve2"}`)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/alerts", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+webhookToken)
		rec := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
