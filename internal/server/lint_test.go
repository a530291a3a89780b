package server

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/promtest"
)

// TestMetricsLint runs promtool's metric linter over a populated /metrics.
func TestMetricsLint(t *testing.T) {
	bin := promtest.LookBinary(t, "promtool")
	h := newHarness(t, settings(policy.ModeManual))
	h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"))
	h.planner.before = placement.ClusterMetrics{Nodes: []placement.NodeMetrics{{Node: "pve1", Score: 70}}}
	if _, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, ""); err != nil {
		t.Fatal(err)
	}
	h.do(t, http.MethodPut, "/api/v1/nodes/pve1/maintenance", apiToken, "")
	_, metrics := h.do(t, http.MethodGet, "/metrics", "", "")
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(metrics)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
