package exporter

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// healthState is the last answer postgres gave to a scrape or a ping.
type healthState struct {
	mu         sync.Mutex
	at         time.Time
	up         bool
	inRecovery bool

	pingMu sync.Mutex // one ping at a time; waiters reuse its answer
}

func (h *healthState) record(up, inRecovery bool, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.at, h.up, h.inRecovery = at, up, inRecovery
}

func (h *healthState) get() (at time.Time, up, inRecovery bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.at, h.up, h.inRecovery
}

// status returns the postgres health, pinging when the last answer is older
// than UpCacheTTL. The ping uses its own pooled connection, never the scrape lock.
func (e *Exporter) status(ctx context.Context) (up, inRecovery bool) {
	fresh := func() bool {
		at, _, _ := e.health.get()
		return !at.IsZero() && e.cfg.Now().Sub(at) < e.cfg.UpCacheTTL
	}
	if !fresh() {
		e.health.pingMu.Lock()
		if !fresh() {
			e.ping(ctx)
		}
		e.health.pingMu.Unlock()
	}
	_, up, inRecovery = e.health.get()
	return up, inRecovery
}

func (e *Exporter) ping(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, e.cfg.DefaultTimeout)
	defer cancel()
	row, err := e.pg.run.queryRow(ctx, e.pool, "SELECT pg_is_in_recovery()")
	rec := err == nil && string(row[0]) == "t"
	if err != nil {
		if parent.Err() != nil {
			return // the client went away: no verdict on postgres
		}
		e.log.Debug("postgres ping failed", "err", err)
	}
	e.health.record(err == nil, rec, e.cfg.Now())
}

// serveUp answers 200 with "primary" or "replica" when postgres answers, else 503 "down".
func (e *Exporter) serveUp(w http.ResponseWriter, r *http.Request) {
	up, rec := e.status(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case !up:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("down\n"))
	case rec:
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("replica\n"))
	default:
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("primary\n"))
	}
}
