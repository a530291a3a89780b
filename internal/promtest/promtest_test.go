package promtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestPrometheusScrapesLoopbackTarget proves the harness end to end: a real Prometheus scrapes a loopback target
// and answers a query about it, and backfilled history is visible.
func TestPrometheusScrapesLoopbackTarget(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# TYPE promtest_value gauge")
		fmt.Fprintln(w, "promtest_value 42")
	}))
	defer target.Close()

	now := time.Now().Add(-2 * time.Hour).Unix()
	data := Backfill(t, fmt.Sprintf("# TYPE promtest_history gauge\npromtest_history 7 %d\n# EOF\n", now))

	p := StartPrometheus(t, PrometheusOptions{
		DataDir: data,
		Config: fmt.Sprintf(`global: {scrape_interval: 1s}
scrape_configs:
  - job_name: t
    static_configs: [{targets: [%q]}]
`, strings.TrimPrefix(target.URL, "http://")),
	})
	api := API(t, p)
	ctx := context.Background()
	vec, err := QueryUntil(ctx, t, api, `promtest_value{job="t"}`, 30*time.Second)
	if err != nil || len(vec) != 1 || vec[0].Value != 42 {
		t.Fatalf("promtest_value = %v, %v; want one sample of 42", vec, err)
	}
	vec, err = QueryUntil(ctx, t, api, `last_over_time(promtest_history[3h])`, 10*time.Second)
	if err != nil || len(vec) != 1 || vec[0].Value != 7 {
		t.Fatalf("backfilled promtest_history = %v, %v; want 7", vec, err)
	}
}

func TestAlertmanagerStarts(t *testing.T) {
	am := StartAlertmanager(t, AlertmanagerOptions{Config: "route: {receiver: none}\nreceivers: [{name: none}]\n"})
	resp, err := http.Get(am.URL() + "/api/v2/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v2/status = %d", resp.StatusCode)
	}
	am.Stop()
	if exited, _ := am.Exited(); !exited {
		t.Fatal("alertmanager still running after Stop")
	}
}
