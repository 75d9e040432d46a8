package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/natskv"
)

// States of a mirror, as reported by GET /v1/status.
const (
	stateStarting  = "starting"  // connecting; no watch yet
	stateSyncing   = "syncing"   // first full copy into an empty fold
	stateResuming  = "resuming"  // catching up on the delta after the fold's cursor
	stateResyncing = "resyncing" // the cursor expired: stale keys dropped, full re-list running
	stateSynced    = "synced"    // caught up; following live changes
	stateRetrying  = "retrying"  // the watch failed; restarting from the fold's cursor after a backoff
	stateVerifying = "verifying" // caught up, but the fold has no binding yet: waiting for an audit (binding.go)
	stateStopped   = "stopped"   // shut down
)

// tracker follows a mirror's progress for /v1/status, /readyz, /metrics and
// the hydration progress display. Its hooks are called from the follower's
// goroutines; its readers run on HTTP handlers.
type tracker struct {
	scopeAll bool
	log      *slog.Logger
	progress *progressReporter // nil: no progress display

	applied atomic.Uint64 // applied cursor
	head    atomic.Uint64 // last observed server head (stream last sequence)
	// caughtTo is a stream position the current watch is known to have
	// delivered, and the fold applied, everything up to: the server head
	// read before the watch's consumer was created (again after each
	// reconnect: Progress.Head), once the initial values it delivered
	// are folded. Records between the fold's cursor and it were removed before
	// they could be delivered (expired markers, say), so lag is measured
	// from it. It is never a cursor: nothing persists it or resumes from it
	// (docs/OPERATIONS.md, "Lag").
	caughtTo   atomic.Uint64
	ready      atomic.Bool   // latched once the first catch-up completed
	updates    atomic.Uint64 // updates folded
	failures   atomic.Uint64 // transient store failures
	resyncs    atomic.Uint64 // cursor-expired resyncs
	stale      atomic.Uint64 // keys dropped by resyncs
	restarts   atomic.Uint64 // follower restarts after a watch failure
	flushNanos atomic.Int64  // time spent in flushes

	readyCh chan struct{} // closed when ready is first set

	audit auditState // audits of the fold (mirror_audit.go)
	conn  connState  // the NATS connection (conn.go)
	bind  *binder    // the fold's binding to the bucket (binding.go); nil: always bound
	// syncedStream returns the creation time of the stream the bucket
	// last state-synced from (natskv's Bucket.SyncedStream); nil: not
	// recorded.
	syncedStream func() time.Time

	batchSizes   prometheus.Histogram
	flushLatency prometheus.Histogram

	mu struct {
		sync.Mutex
		state       string
		since       time.Time // when state was entered
		initialDone bool      // the current watch delivered its initial state
		doneRev     uint64    // revision delivered when the initial state was done
		lastRev     uint64    // revision of the last entry the current watch delivered
		headAtStart uint64    // server head when the current watch started
		headKnown   bool      // whether headAtStart was read
		appliedAt   uint64    // applied cursor when the current watch started
		// rebase is set while a resync's state sync has not folded
		// anything yet: the applied cursor is the one from before the
		// resync, a revision of the old history (of another stream, after
		// a recreation), and says nothing about this watch's progress.
		rebase   bool
		unfolded bool // a flush of this watch advanced the cursor; its fold has not committed yet
		// restream is set while a state sync's stream is not yet recorded
		// in the fold's binding: from the state-sync watch's start until a
		// flush has committed data of it (the fold's cursor is then that
		// stream's) and the binding was written.
		restream  bool
		committed bool   // a flush committed data this watch delivered
		watches   uint64 // counts watchStarting calls
		// head is the stream head a watcher reported with its initial
		// values done (Progress.Head), not yet proven: it becomes caughtTo
		// once the applied cursor reaches headAt, the last revision
		// delivered by then. 0: none pending.
		head, headAt uint64
		delivered    uint64
		pending      uint64
		lastErr      string
	}
}

func newTracker(scope slipstream.Scope, log *slog.Logger, progress *progressReporter) *tracker {
	t := &tracker{
		scopeAll: scope.IsAll(),
		log:      log,
		progress: progress,
		readyCh:  make(chan struct{}),
		batchSizes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "slipstream_flush_batch_updates",
			Help:    "Updates folded per flush.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 … 65536
		}),
		flushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "slipstream_flush_duration_seconds",
			Help:    "Time spent applying and folding one batch.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 3, 12), // 50µs … ~9s
		}),
	}
	t.mu.state = stateStarting
	t.mu.since = time.Now()
	t.audit.init()
	t.conn.log, t.conn.grace = log, DefaultDisconnectGrace
	return t
}

// setStateLocked changes the state, logging the transition.
func (t *tracker) setStateLocked(s string) {
	if t.mu.state == s {
		return
	}
	t.mu.state = s
	t.mu.since = time.Now()
}

// runStarting is called before each Follower.Run with the fold's cursor.
func (t *tracker) runStarting(resume slipstream.Cursor) {
	t.applied.Store(resume.Rank())
	t.audit.resumed()
}

// runEnded is called when a Follower.Run has returned. What its watch
// proved (caughtTo, and a head not proven yet) was about that watch: the
// next run may start on another fold (a bootstrap replaces it in between)
// or another stream, so caught_up_to falls back to the fold's cursor until
// the next watch proves more.
func (t *tracker) runEnded() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.head, t.mu.headAt = 0, 0
	t.caughtTo.Store(0)
}

// watchStarting is called when the follower opens a watch: after is its
// cursor (none for a state-sync watch), resume the cursor the run started
// from, head the server's last sequence (when headKnown).
func (t *tracker) watchStarting(after, resume slipstream.Cursor, head uint64, headKnown bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case !after.IsNone():
		t.setStateLocked(stateResuming)
	case resume.IsNone():
		t.setStateLocked(stateSyncing)
	default:
		t.setStateLocked(stateResyncing)
	}
	if t.progress != nil {
		t.progress.reset()
	}
	t.mu.initialDone = false
	t.mu.doneRev, t.mu.lastRev = 0, 0
	t.mu.delivered, t.mu.pending = 0, 0
	t.mu.headAtStart, t.mu.headKnown = head, headKnown
	t.mu.appliedAt = t.applied.Load()
	t.mu.rebase = after.IsNone() && !resume.IsNone()
	t.mu.restream = after.IsNone()
	t.mu.unfolded, t.mu.committed = false, false
	t.mu.watches++
	t.mu.head, t.mu.headAt = 0, 0
	t.caughtTo.Store(0)
	if headKnown {
		t.head.Store(head)
	}
	t.checkCaughtUpLocked()
}

// onProgress is natskv's OnProgress hook for the mirror's watches.
func (t *tracker) onProgress(p natskv.Progress) {
	t.mu.Lock()
	t.mu.delivered, t.mu.pending = p.Delivered, p.Pending
	state := t.mu.state
	if !p.InitialDone {
		t.mu.lastRev = max(t.mu.lastRev, p.Revision)
	} else {
		if !t.mu.initialDone {
			t.mu.initialDone = true
			t.mu.doneRev = t.mu.lastRev
		}
		if p.Head > 0 {
			// A watcher (the first, or one re-created after a reconnect)
			// delivered everything up to p.Head the stream still held.
			t.mu.head, t.mu.headAt = p.Head, t.mu.lastRev
		}
	}
	t.checkCaughtUpLocked()
	t.proveLocked()
	t.mu.Unlock()
	if t.progress != nil && catchingUp(state) {
		t.progress.update(state, p)
	}
}

// onApplied is the follower's OnApplied hook.
func (t *tracker) onApplied(c slipstream.Cursor) {
	t.applied.Store(c.Rank())
	t.mu.Lock()
	t.checkCaughtUpLocked()
	t.proveLocked()
	t.mu.Unlock()
}

// proveLocked raises caughtTo to the head a watcher reported with its
// initial values done, once the fold has applied what it had delivered by
// then (and its cursor is this stream's: not during a resync's rebase).
func (t *tracker) proveLocked() {
	if t.mu.head == 0 || t.mu.rebase || t.applied.Load() < t.mu.headAt {
		return
	}
	if t.mu.head > t.caughtTo.Load() {
		t.caughtTo.Store(t.mu.head)
	}
	t.mu.head, t.mu.headAt = 0, 0
}

// onFlush is the follower's OnFlush hook; the mirror calls onApplied with
// the fold's cursor right after it.
func (t *tracker) onFlush(fi slipstream.FlushInfo) {
	t.flushNanos.Add(int64(fi.Duration))
	t.mu.Lock()
	// A flush that advanced the cursor during a resync's state sync took
	// it from an update this watch delivered; once the fold commits it
	// (now or, after a transient failure, at a later flush), the fold's
	// cursor is this stream's.
	t.mu.unfolded = t.mu.unfolded || fi.Advanced
	if fi.StoreErr == nil && t.mu.unfolded {
		t.mu.rebase, t.mu.unfolded = false, false
		t.mu.committed = true
	}
	restream, watch := t.mu.restream && t.mu.committed, t.mu.watches
	t.mu.Unlock()
	if restream {
		t.recordStream(watch)
	}
	// A failed store apply folded nothing: its batch stays queued and is
	// counted once, by the flush that folds it.
	if fi.Updates > 0 && fi.StoreErr == nil {
		t.updates.Add(uint64(fi.Updates))
		t.batchSizes.Observe(float64(fi.Updates))
		t.flushLatency.Observe(fi.Duration.Seconds())
	}
	if fi.StoreErr != nil {
		t.failures.Add(1)
	}
}

// recordStream writes the stream a state sync read into the fold's
// binding, now that the fold has committed data of it: after a crash, the
// cursor is then resumed only on that stream (natskv.Config.StreamCreated).
// A failed write is retried at the next flush; meanwhile the binding names
// the older stream, so a restart resyncs rather than resumes: safe.
func (t *tracker) recordStream(watch uint64) {
	if t.syncedStream == nil {
		return
	}
	created := t.syncedStream()
	if err := t.bind.setStream(created); err != nil {
		t.log.Warn("the fold's binding could not record the bucket's stream; retrying at the next flush", "err", err)
		return
	}
	t.mu.Lock()
	if t.mu.watches == watch {
		t.mu.restream = false
	}
	t.mu.Unlock()
}

// onResync is the follower's OnResync hook.
func (t *tracker) onResync(ri slipstream.ResyncInfo) {
	t.resyncs.Add(1)
	t.stale.Add(uint64(ri.StaleKeys))
	t.log.Warn("resync folded", "live_keys", ri.LiveKeys, "stale_keys", ri.StaleKeys)
}

// runFailed records a follower failure and the backoff before the restart.
func (t *tracker) runFailed(err error) {
	t.restarts.Add(1)
	t.mu.Lock()
	t.mu.lastErr = err.Error()
	t.setStateLocked(stateRetrying)
	t.mu.Unlock()
	if t.progress != nil {
		t.progress.abort()
	}
}

// stopped marks the mirror as shut down.
func (t *tracker) stopped() {
	t.mu.Lock()
	t.setStateLocked(stateStopped)
	t.mu.Unlock()
	if t.progress != nil {
		t.progress.abort()
	}
}

func catchingUp(state string) bool {
	return state == stateSyncing || state == stateResuming || state == stateResyncing
}

// checkCaughtUpLocked moves a catching-up mirror to synced once the applied
// cursor covers what the watch's initial state delivered, or, for an
// all-keys scope, the server head seen when the watch started: reached by
// applying, or equal to it from the start (nothing to deliver). A cursor
// beyond the head (a recreated bucket) is not caught up: it waits for the
// resync; and during a resync's state sync, the cursor from before the
// resync counts for nothing (a bucket recreated with fewer revisions than
// the old cursor would look caught up at once, and the audit that follows
// would see the old fold): the fold must first have folded what this watch
// delivered.
func (t *tracker) checkCaughtUpLocked() {
	if !catchingUp(t.mu.state) || t.mu.rebase {
		return
	}
	applied := t.applied.Load()
	byMarker := t.mu.initialDone && applied >= t.mu.doneRev
	byHead := t.scopeAll && t.mu.headKnown &&
		(applied == t.mu.headAtStart || (applied > t.mu.appliedAt && applied >= t.mu.headAtStart))
	if !byMarker && !byHead {
		return
	}
	from, took := t.mu.state, time.Since(t.mu.since)
	t.setStateLocked(stateSynced)
	if t.mu.headKnown {
		// Caught up by the marker: every record at or below the head read
		// before the consumer existed was delivered before the marker (the
		// consumer's initial pending counted it) and is now applied, or
		// was gone before the watch could deliver it. (Caught up by the
		// head, the cursor already covers it.)
		t.caughtTo.Store(t.mu.headAtStart)
	}
	t.audit.caughtUpNow()
	first := !t.ready.Swap(true)
	if first {
		close(t.readyCh)
	}
	if t.progress != nil {
		t.progress.finish(from, t.mu.delivered, took)
	}
	t.log.Info("caught up", "from", from, slipstream.LogKeyCursor, applied,
		"delivered", t.mu.delivered, "took", took.Round(time.Millisecond), "first", first)
}

// Reasons /readyz gives: before the first catch-up, and while a fold
// without a binding is verified.
var (
	errCatchingUp = errors.New("catching up with the bucket")
	errVerifying  = errors.New("verifying a fold not bound to the bucket")
)

// readyErr is /readyz: nil once the first sync or resume has caught up
// (latched), on a fold bound to the bucket (or verified against it since),
// while NATS is connected or has been disconnected for less than the
// grace; else the reason.
func (t *tracker) readyErr() error {
	if !t.ready.Load() {
		return errCatchingUp
	}
	if t.unbound() {
		return fmt.Errorf("%w: %s", errVerifying, t.bind.reason())
	}
	return t.conn.readyErr()
}

// setHead records the server's last sequence.
func (t *tracker) setHead(head uint64) { t.head.Store(head) }

// lag is the server head minus what the mirror is caught up to: the
// applied cursor, or the head the current watch was found caught up to
// (caughtTo), whichever is higher; 0 when ahead or unknown.
func (t *tracker) lag() uint64 { return lagOf(t.head.Load(), t.applied.Load(), t.caughtTo.Load()) }

// lagOf is head minus max(cursor, caughtTo), or 0.
func lagOf(head, cursor, caughtTo uint64) uint64 {
	if c := max(cursor, caughtTo); head > c {
		return head - c
	}
	return 0
}

// snapshot returns the state, pending count and last error. A synced
// mirror whose fold is not bound yet is verifying.
func (t *tracker) snapshot() (state string, pending uint64, lastErr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	state = t.mu.state
	if state == stateSynced && t.unbound() {
		state = stateVerifying
	}
	return state, t.mu.pending, t.mu.lastErr
}

// unbound reports whether the fold has no binding yet.
func (t *tracker) unbound() bool { return t.bind != nil && t.bind.unbound.Load() }

// isReady is /readyz's verdict (readyErr).
func (t *tracker) isReady() bool { return t.readyErr() == nil }

// observedWatcher reports each watch a follower opens to the tracker, with
// the server head at that moment, then delegates.
type observedWatcher struct {
	bucket mirrorBucket
	t      *tracker
	resume slipstream.Cursor // the cursor the run started from
}

func (w observedWatcher) Watch(ctx context.Context, scope slipstream.Scope, after slipstream.Cursor, out chan<- slipstream.Update) error {
	var head uint64
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := w.bucket.Status(sctx)
	cancel()
	if err == nil {
		head = st.LastSeq
	}
	w.t.watchStarting(after, w.resume, head, err == nil)
	return w.bucket.Watch(ctx, scope, after, out)
}
