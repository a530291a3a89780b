package promtest

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// API returns a client_golang query API for the process' URL.
func API(t testing.TB, p *Process) promv1.API {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: p.URL()})
	if err != nil {
		t.Fatalf("prometheus client for %s: %v", p.URL(), err)
	}
	return promv1.NewAPI(c)
}

// QueryUntil evaluates query until it returns a non-empty vector or timeout passes, and returns the last result.
// An empty result after the timeout is returned as is, so the caller decides whether that is a failure.
func QueryUntil(ctx context.Context, t testing.TB, api promv1.API, query string, timeout time.Duration) (model.Vector, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		v, _, _, err := api.Query(ctx, query, time.Now())
		if err == nil {
			if vec, ok := v.(model.Vector); ok && len(vec) > 0 {
				return vec, nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return nil, err
			}
			vec, _ := v.(model.Vector)
			return vec, nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}
