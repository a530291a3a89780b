package server

import (
	"context"
	"errors"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// reloader runs every reload, from SIGHUP or POST /-/reload, on one goroutine: all fallible work (reading and
// validating the config, reading secrets) happens in load, before apply swaps the live settings.
type reloader struct {
	load    func(ctx context.Context) (Settings, error)
	apply   func(Settings)
	metrics *metrics
	logger  log.Logger
	now     func() time.Time
	reqs    chan reloadRequest
}

type reloadRequest struct {
	ctx   context.Context
	reply chan error
}

func newReloader(load func(context.Context) (Settings, error), apply func(Settings), m *metrics, l log.Logger, now func() time.Time) *reloader {
	m.reloadSuccess.Set(1)
	m.reloadTimestamp.Set(float64(now().Unix()))
	return &reloader{load: load, apply: apply, metrics: m, logger: l, now: now, reqs: make(chan reloadRequest)}
}

var errReloadDisabled = errors.New("reloading is not configured")

// reload asks the reload goroutine for one reload and waits for its outcome.
func (r *reloader) reload(ctx context.Context) error {
	if r.load == nil {
		return errReloadDisabled
	}
	req := reloadRequest{ctx: ctx, reply: make(chan error, 1)}
	select {
	case r.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *reloader) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-r.reqs:
			st, err := r.load(req.ctx)
			if err != nil {
				r.metrics.reloadSuccess.Set(0)
				level.Error(r.logger).Log("msg", "reload failed; keeping the previous configuration", "err", err)
				req.reply <- err
				continue
			}
			r.apply(st)
			r.metrics.reloadSuccess.Set(1)
			r.metrics.reloadTimestamp.Set(float64(r.now().Unix()))
			level.Info(r.logger).Log("msg", "configuration reloaded")
			req.reply <- nil
		}
	}
}
