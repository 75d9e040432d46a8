package main

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/audit"
)

// DefaultAuditEvery is mirror's -audit-every.
const DefaultAuditEvery = time.Hour

// verifyRetry is how soon an audit that did not verify a fold without a
// binding (binding.go) is retried: the mirror is not ready until one does.
const verifyRetry = 5 * time.Second

// auditStatus is the audit part of GET /v1/status.
type auditStatus struct {
	// Verified reports whether an audit completed since the last resume
	// (each follower start) and found the fold equal to the bucket or
	// repaired every divergence it found.
	Verified bool `json:"verified"`
	// Audits counts the audits completed since the mirror started.
	Audits uint64 `json:"audits"`
	// LastAudit describes the last audit, completed or failed.
	LastAudit *auditSummary `json:"last_audit,omitempty"`
}

// auditState is the tracker's record of a mirror's audits. Its hooks are
// called by the tracker and the mirror's audit goroutine; its readers run on
// HTTP handlers.
type auditState struct {
	audits      atomic.Uint64
	failures    atomic.Uint64
	divergences [len(audit.Classes)]atomic.Uint64 // by class, in audit.Classes order
	repaired    atomic.Uint64
	verified    atomic.Bool

	caughtUp chan struct{} // capacity 1: a follower caught up; audit it

	mu struct {
		sync.Mutex
		gen  uint64 // follower starts so far
		last *auditSummary
	}
}

func (a *auditState) init() { a.caughtUp = make(chan struct{}, 1) }

// resumed is called before each follower start: the fold is not verified
// against what this follower will fold until an audit says so, and a
// catch-up of the previous follower not yet audited is dropped (this one
// is audited when it catches up, not in the middle of its resume or
// resync).
func (a *auditState) resumed() {
	a.mu.Lock()
	a.mu.gen++
	a.mu.Unlock()
	a.verified.Store(false)
	select {
	case <-a.caughtUp:
	default:
	}
}

// caughtUpNow is called when a follower has caught up.
func (a *auditState) caughtUpNow() {
	select {
	case a.caughtUp <- struct{}{}:
	default:
	}
}

func (a *auditState) generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mu.gen
}

// done records an audit that ran against follower generation gen. It
// returns whether the audit verified the current generation's fold.
func (a *auditState) done(gen uint64, sum auditSummary, verified bool) bool {
	a.audits.Add(1)
	for i, c := range audit.Classes {
		a.divergences[i].Add(uint64(sum.count(c)))
	}
	a.repaired.Add(uint64(sum.Repaired))
	if sum.Error != "" {
		a.failures.Add(1)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mu.last = &sum
	if verified && gen == a.mu.gen {
		a.verified.Store(true)
		return true
	}
	return false
}

// failed records an audit that could not compare.
func (a *auditState) failed(err error) {
	a.failures.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mu.last = &auditSummary{Time: time.Now(), Error: err.Error()}
}

func (a *auditState) status() auditStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := auditStatus{Verified: a.verified.Load(), Audits: a.audits.Load()}
	if a.mu.last != nil {
		last := *a.mu.last
		st.LastAudit = &last
	}
	return st
}

func (s auditSummary) count(c audit.Class) int {
	switch c {
	case audit.Stale:
		return s.Stale
	case audit.Missed:
		return s.Missed
	case audit.Backwards:
		return s.Backwards
	}
	return 0
}

// auditLoop audits the fold in the background after every follower has
// caught up, and every auditEvery (0: only after catching up), until ctx
// ends.
func (m *mirror) auditLoop(ctx context.Context) {
	var tick <-chan time.Time
	if m.auditEvery > 0 {
		t := time.NewTicker(m.auditEvery)
		defer t.Stop()
		tick = t.C
	}
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.t.audit.caughtUp:
		case <-tick:
		case <-retry:
		}
		retry = nil
		m.auditOnce(ctx)
		if m.t.unbound() {
			retry = time.After(verifyRetry)
		}
	}
}

// auditOnce compares the fold with the bucket and repairs what differs
// through the running follower, so a live update wins over the repair.
func (m *mirror) auditOnce(ctx context.Context) {
	// The epoch first: a bootstrap that replaces the fold after it is read
	// makes the binding below a no-op.
	var epoch uint64
	if m.t.bind != nil {
		epoch = m.t.bind.current()
	}
	gen := m.t.audit.generation()
	rep, err := (&audit.Auditor{Bucket: m.bucket, Fold: m.fold, Scope: m.scope, Logger: m.log}).Run(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("audit failed; retrying at the next one", "err", err)
			m.t.audit.failed(err)
		}
		return
	}
	var ri slipstream.RepairInfo
	var rerr error
	if !rep.Equal() {
		m.log.Warn("audit: the fold diverges from the bucket; repairing",
			"stale", rep.Count(audit.Stale), "missed", rep.Count(audit.Missed), "backwards", rep.Count(audit.Backwards),
			slipstream.LogKeyCursor, rep.Cursor.String(), "server_last", rep.ServerLast)
		if keys := rep.Keys(); len(keys) > 0 {
			f := m.current.Load()
			if f == nil {
				rerr = slipstream.ErrNotRunning
			} else {
				ri, rerr = f.Repair(ctx, m.bucket, keys)
			}
		}
		if rerr != nil && ctx.Err() == nil {
			m.log.Warn("audit: repair failed; retrying at the next audit", "err", rerr)
		}
		if rep.CursorAhead() {
			// Revisions no longer identify values: the watch notices the
			// replaced stream and the restart resyncs.
			m.log.Warn("audit: the fold's cursor is past the bucket's last sequence; the follower resyncs when its watch notices")
		}
	} else {
		m.log.Info("audit: the fold equals the bucket", "checked", rep.Checked, "in_flight", rep.InFlight,
			slipstream.LogKeyCursor, rep.Cursor.String(), "took", rep.Duration.Round(time.Millisecond))
	}
	sum := newAuditSummary(rep, ri)
	if rerr != nil {
		sum.Error = "repair: " + rerr.Error()
	}
	verified := rep.Equal() || (rerr == nil && !rep.CursorAhead())
	if errors.Is(rerr, context.Canceled) && ctx.Err() != nil {
		return
	}
	if m.t.audit.done(gen, sum, verified) && m.t.unbound() {
		// This audit verified the fold this follower generation folds
		// into, and no bootstrap replaced it since (epoch).
		ok, err := m.t.bind.bind(epoch)
		switch {
		case err != nil:
			m.log.Warn("fold verified but its binding could not be written; retrying", "err", err)
		case ok:
			m.log.Info("fold verified against the bucket; bound to it", "bucket", m.t.bind.want.Bucket,
				"file", filepath.Join(m.t.bind.dir, bindingFile))
		}
	}
}

// registerAuditMetrics adds the audit figures to a mirror's /metrics.
func registerAuditMetrics(reg *prometheus.Registry, a *auditState) {
	counter := func(name, help string, labels prometheus.Labels, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f)
	}
	reg.MustRegister(
		counter("slipstream_audits_total", "Audits of the fold against the bucket completed.", nil,
			func() float64 { return float64(a.audits.Load()) }),
		counter("slipstream_audit_failures_total", "Audits that could not compare, or whose repair failed.", nil,
			func() float64 { return float64(a.failures.Load()) }),
		counter("slipstream_audit_repaired_keys_total", "Keys audits repaired through the follower.", nil,
			func() float64 { return float64(a.repaired.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "slipstream_verified",
			Help: "1 once an audit since the last resume found the fold equal to the bucket or repaired it.",
		}, func() float64 {
			if a.verified.Load() {
				return 1
			}
			return 0
		}),
	)
	for i, c := range audit.Classes {
		reg.MustRegister(counter("slipstream_audit_divergences_total",
			"Divergences audits found, by class (stale, missed, backwards).",
			prometheus.Labels{"class": c.String()},
			func() float64 { return float64(a.divergences[i].Load()) }))
	}
}
