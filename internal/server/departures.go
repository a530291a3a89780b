package server

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/proxbalance/proxbalance/internal/policy"
)

// DepartureSource says when guests left nodes. The journal knows the balancer's own moves; Prometheus'
// placement history (pve_guest_info's node label) also knows moves made by hand, by HA, or before the state file
// was lost, so the rollback window holds after a state loss.
type DepartureSource interface {
	Departures(ctx context.Context, at time.Time, window time.Duration, guests []string) ([]policy.Departure, error)
}

// PrometheusDepartures reads departures from pve_guest_info in Prometheus.
type PrometheusDepartures struct {
	API promv1.API
	// Selector holds exact label matchers selecting the cluster's series.
	Selector map[string]string
	// Resolution is the subquery step (default 1m): a departure is known to within it.
	Resolution time.Duration
}

// departuresQuery finds, per guest and node, the last time the guest was seen on the node within the window.
func (p *PrometheusDepartures) departuresQuery(window time.Duration, guests []string) string {
	res := p.Resolution
	if res <= 0 {
		res = time.Minute
	}
	var m []string
	for _, k := range slices.Sorted(maps.Keys(p.Selector)) {
		m = append(m, fmt.Sprintf("%s=%q", k, p.Selector[k]))
	}
	quoted := make([]string, len(guests))
	for i, g := range guests {
		quoted[i] = regexp.QuoteMeta(g)
	}
	m = append(m, fmt.Sprintf("id=~%q", strings.Join(quoted, "|")))
	return fmt.Sprintf("max by (id, node) (max_over_time(timestamp(pve_guest_info{%s})[%s:%s]))",
		strings.Join(m, ","), model.Duration(window), model.Duration(res))
}

// Departures implements DepartureSource: for every guest, each node it was seen on within the window except
// the one it was seen on last (where it is now) is a departure, at the last time it was seen there.
func (p *PrometheusDepartures) Departures(ctx context.Context, at time.Time, window time.Duration, guests []string) ([]policy.Departure, error) {
	if len(guests) == 0 {
		return nil, nil
	}
	q := p.departuresQuery(window, guests)
	v, _, _, err := p.API.Query(ctx, q, at)
	if err != nil {
		return nil, fmt.Errorf("querying placement history (%s): %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("querying placement history: got %s, want a vector", v.Type())
	}
	type seen struct {
		node string
		at   time.Time
	}
	byGuest := map[string][]seen{}
	for _, s := range vec {
		id, node := string(s.Metric["id"]), string(s.Metric["node"])
		sec := float64(s.Value)
		byGuest[id] = append(byGuest[id], seen{node, time.Unix(0, int64(sec*1e9)).UTC()})
	}
	var out []policy.Departure
	for _, id := range slices.Sorted(maps.Keys(byGuest)) {
		ss := byGuest[id]
		slices.SortFunc(ss, func(a, b seen) int { return a.at.Compare(b.at) })
		for _, s := range ss[:len(ss)-1] {
			out = append(out, policy.Departure{Guest: id, Node: s.node, LeftAt: s.at})
		}
	}
	return out, nil
}
