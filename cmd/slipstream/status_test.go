package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/natskv"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func state(t *tracker) string { s, _, _ := t.snapshot(); return s }

func wantState(tb testing.TB, tr *tracker, want string, ready bool) {
	tb.Helper()
	if got := state(tr); got != want || tr.ready.Load() != ready {
		tb.Fatalf("state %s ready %v, want %s ready %v", got, tr.ready.Load(), want, ready)
	}
}

func TestTracker_SyncCaughtUpOnlyAfterApplied(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	wantState(t, tr, stateStarting, false)
	tr.runStarting(slipstream.Cursor{})
	tr.watchStarting(slipstream.Cursor{}, slipstream.Cursor{}, 0, false) // head unknown
	wantState(t, tr, stateSyncing, false)
	for rev := uint64(1); rev <= 3; rev++ {
		tr.onProgress(natskv.Progress{Delivered: rev, Pending: 3 - rev, Revision: rev})
	}
	tr.onProgress(natskv.Progress{Delivered: 3, InitialDone: true})
	// Delivered is not applied: not caught up until the fold holds rev 3.
	wantState(t, tr, stateSyncing, false)
	tr.onApplied(slipstream.CursorFromUint64(2))
	wantState(t, tr, stateSyncing, false)
	tr.onApplied(slipstream.CursorFromUint64(3))
	wantState(t, tr, stateSynced, true)
	select {
	case <-tr.readyCh:
	default:
		t.Fatal("readyCh not closed")
	}
}

func TestTracker_CaughtUpByHead(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	tr.runStarting(slipstream.Cursor{})
	tr.watchStarting(slipstream.Cursor{}, slipstream.Cursor{}, 5, true)
	tr.onApplied(slipstream.CursorFromUint64(4))
	wantState(t, tr, stateSyncing, false)
	tr.onApplied(slipstream.CursorFromUint64(5))
	wantState(t, tr, stateSynced, true)
	if tr.lag() != 0 {
		t.Errorf("lag = %d, want 0", tr.lag())
	}
	tr.setHead(9)
	if tr.lag() != 4 {
		t.Errorf("lag = %d, want 4", tr.lag())
	}
}

func TestTracker_EmptyBucketIsCaughtUpAtOnce(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	tr.runStarting(slipstream.Cursor{})
	tr.watchStarting(slipstream.Cursor{}, slipstream.Cursor{}, 0, true)
	wantState(t, tr, stateSynced, true)
}

func TestTracker_ResumeAtHeadIsCaughtUp(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	c := slipstream.CursorFromUint64(7)
	tr.runStarting(c)
	tr.watchStarting(c, c, 7, true)
	wantState(t, tr, stateSynced, true)
}

// A cursor beyond the head (the bucket was recreated) is not caught up: the
// resume will expire and resync.
func TestTracker_CursorAheadOfHeadWaitsForResync(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	c := slipstream.CursorFromUint64(20)
	tr.runStarting(c)
	tr.watchStarting(c, c, 5, true)
	wantState(t, tr, stateResuming, false)
	// The resume expired; the follower opens a state-sync watch.
	tr.watchStarting(slipstream.Cursor{}, c, 5, true)
	wantState(t, tr, stateResyncing, false)
	tr.onResync(slipstream.ResyncInfo{LiveKeys: 2, StaleKeys: 3})
	flushed(tr, 3)
	wantState(t, tr, stateResyncing, false)
	flushed(tr, 5)
	wantState(t, tr, stateSynced, true)
	if tr.resyncs.Load() != 1 || tr.stale.Load() != 3 {
		t.Errorf("resyncs %d stale %d, want 1 and 3", tr.resyncs.Load(), tr.stale.Load())
	}
}

// flushed reports a flush that folded updates and advanced the fold's
// cursor to c, as the mirror's OnFlush does.
func flushed(tr *tracker, c uint64) {
	tr.onFlush(slipstream.FlushInfo{Updates: 1, Applied: 1, Cursor: slipstream.CursorFromUint64(c), Advanced: true})
	tr.onApplied(slipstream.CursorFromUint64(c))
}

// A resync's state sync after the bucket was recreated with fewer
// revisions than the old cursor: the old cursor (10) is above everything
// the new stream delivered (3), but it is not this stream's, so the mirror
// is not caught up (and not audited) until the fold has folded what the
// watch delivered — through a transient store failure, too.
func TestTracker_ResyncIgnoresTheOldCursor(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	c := slipstream.CursorFromUint64(10)
	tr.runStarting(c)
	tr.watchStarting(c, c, 3, true)
	tr.watchStarting(slipstream.Cursor{}, c, 3, true)
	wantState(t, tr, stateResyncing, false)
	for rev := uint64(1); rev <= 3; rev++ {
		tr.onProgress(natskv.Progress{Delivered: rev, Pending: 3 - rev, Revision: rev})
	}
	tr.onProgress(natskv.Progress{Delivered: 3, InitialDone: true})
	wantState(t, tr, stateResyncing, false)
	// The synthetic deletes' flush came before the watch; a flush that
	// folds nothing new does not count either.
	tr.onFlush(slipstream.FlushInfo{Updates: 0, Cursor: c})
	tr.onApplied(c)
	wantState(t, tr, stateResyncing, false)
	select {
	case <-tr.audit.caughtUp:
		t.Fatal("an audit was requested before the fold held the resynced state")
	default:
	}
	// The first fold fails: the fold keeps the old cursor.
	tr.onFlush(slipstream.FlushInfo{Updates: 3, Cursor: slipstream.CursorFromUint64(3), Advanced: true, StoreErr: errors.New("disk full")})
	tr.onApplied(c)
	wantState(t, tr, stateResyncing, false)
	// The re-queued batch commits at the next flush.
	tr.onFlush(slipstream.FlushInfo{Updates: 3, Cursor: slipstream.CursorFromUint64(3)})
	tr.onApplied(slipstream.CursorFromUint64(3))
	wantState(t, tr, stateSynced, true)
	select {
	case <-tr.audit.caughtUp:
	default:
		t.Fatal("no audit requested after the resync caught up")
	}
}

// With prefixes, the head counts messages outside the scope: only the
// watch's own initial-values marker says caught up.
func TestTracker_PrefixScopeIgnoresHead(t *testing.T) {
	tr := newTracker(slipstream.Prefixes("a."), discardLogger(), nil)
	tr.runStarting(slipstream.Cursor{})
	tr.watchStarting(slipstream.Cursor{}, slipstream.Cursor{}, 0, true)
	wantState(t, tr, stateSyncing, false)
	tr.onProgress(natskv.Progress{Delivered: 1, Revision: 4})
	tr.onProgress(natskv.Progress{Delivered: 1, InitialDone: true})
	tr.onApplied(slipstream.CursorFromUint64(4))
	wantState(t, tr, stateSynced, true)
}

func TestTracker_FailureKeepsReadinessLatched(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	tr.runStarting(slipstream.Cursor{})
	tr.watchStarting(slipstream.Cursor{}, slipstream.Cursor{}, 0, true)
	wantState(t, tr, stateSynced, true)
	tr.runFailed(errors.New("subscription closed"))
	wantState(t, tr, stateRetrying, true)
	if _, _, lastErr := tr.snapshot(); lastErr != "subscription closed" || tr.restarts.Load() != 1 {
		t.Errorf("lastErr %q restarts %d", lastErr, tr.restarts.Load())
	}
	c := slipstream.CursorFromUint64(3)
	tr.runStarting(c)
	tr.watchStarting(c, c, 9, true)
	wantState(t, tr, stateResuming, true)
	tr.stopped()
	wantState(t, tr, stateStopped, true)
}

func TestTracker_OnFlush(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	tr.onFlush(slipstream.FlushInfo{Updates: 10, Duration: time.Millisecond})
	// A failed store apply folds nothing; its 5 updates stay queued and the
	// next flush folds them with 2 new ones: each update is counted once.
	tr.onFlush(slipstream.FlushInfo{Updates: 5, StoreErr: errors.New("disk full"), StoreFailures: 1})
	tr.onFlush(slipstream.FlushInfo{Updates: 7, Duration: time.Millisecond})
	if tr.updates.Load() != 17 || tr.failures.Load() != 1 {
		t.Errorf("updates %d failures %d, want 17 and 1", tr.updates.Load(), tr.failures.Load())
	}
}

func TestProgress_LogLines(t *testing.T) {
	synctest.Test(t, testProgressLogLines)
}

func testProgressLogLines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressReporter(nil, slog.New(slog.NewTextHandler(&buf, nil)))
	p.logEvery = 0
	p.reset()
	p.update(stateSyncing, natskv.Progress{Delivered: 1, Pending: 99})
	time.Sleep(time.Second) // fake time: 49 keys/s, ETA 1s
	p.update(stateSyncing, natskv.Progress{Delivered: 50, Pending: 50})
	out := buf.String()
	for _, want := range []string{"msg=hydrating", "state=syncing", "keys_done=50", "pending=50", "keys_per_sec=50", "eta=1s"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lines lack %q:\n%s", want, out)
		}
	}
	// Nothing pending: no line (the tracker logs the catch-up itself).
	buf.Reset()
	p.update(stateSyncing, natskv.Progress{Delivered: 100, Pending: 0})
	if buf.Len() != 0 {
		t.Errorf("logged with nothing pending: %s", buf.String())
	}
}

func TestProgress_TerminalBar(t *testing.T) {
	synctest.Test(t, testProgressTerminalBar)
}

func testProgressTerminalBar(t *testing.T) {
	var term bytes.Buffer
	p := newProgressReporter(&term, discardLogger())
	p.reset()
	p.update(stateResuming, natskv.Progress{Delivered: 1, Pending: 3})
	time.Sleep(time.Second)
	p.update(stateResuming, natskv.Progress{Delivered: 2, Pending: 2})
	out := term.String()
	for _, want := range []string{"\r\033[K", "resuming", " 50%", "2/4 keys", "2/s", "ETA 1s"} {
		if !strings.Contains(out, want) {
			t.Errorf("bar lacks %q: %q", want, out)
		}
	}
	p.finish(stateResuming, 4, time.Second)
	if !strings.HasSuffix(term.String(), "resuming done: 4 keys in 1s (4 keys/s)\n") {
		t.Errorf("finish line: %q", term.String())
	}
}

// Records past the cursor removed while the mirror was down (markers that
// expired): the resume delivers nothing, and once its initial values are
// done the mirror is caught up to the head it started at, so lag is 0 on
// an idle bucket — without the cursor moving. A new watch forgets it.
func TestTracker_LagFromTheHeadCaughtUpTo(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	c := slipstream.CursorFromUint64(11)
	tr.runStarting(c)
	tr.watchStarting(c, c, 13, true)
	wantState(t, tr, stateResuming, false)
	if tr.lag() != 2 {
		t.Fatalf("lag before the marker = %d, want 2", tr.lag())
	}
	tr.onProgress(natskv.Progress{InitialDone: true})
	wantState(t, tr, stateSynced, true)
	if tr.lag() != 0 || tr.caughtTo.Load() != 13 || tr.applied.Load() != 11 {
		t.Fatalf("lag %d caughtTo %d applied %d, want 0, 13, 11", tr.lag(), tr.caughtTo.Load(), tr.applied.Load())
	}
	tr.setHead(14) // a live write
	if tr.lag() != 1 {
		t.Fatalf("lag after a write = %d, want 1", tr.lag())
	}
	flushed(tr, 14)
	if tr.lag() != 0 {
		t.Fatalf("lag after applying it = %d, want 0", tr.lag())
	}
	// The next watch starts from the fold's cursor again.
	tr.runStarting(slipstream.CursorFromUint64(14))
	tr.watchStarting(slipstream.CursorFromUint64(14), slipstream.CursorFromUint64(14), 16, true)
	if tr.lag() != 2 {
		t.Fatalf("lag of a new watch = %d, want 2", tr.lag())
	}
}

// A run that ended (a live expiry that hands over to a bootstrap, a failed
// watch) takes what its watch proved with it: the fold may be replaced
// before the next run, and caught_up_to must not stay ahead of it.
func TestTracker_RunEndedForgetsCaughtUpTo(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	c := slipstream.CursorFromUint64(11)
	tr.runStarting(c)
	tr.watchStarting(c, c, 13, true)
	tr.onProgress(natskv.Progress{InitialDone: true, Head: 13})
	if tr.caughtTo.Load() != 13 || tr.lag() != 0 {
		t.Fatalf("caughtTo %d lag %d, want 13, 0", tr.caughtTo.Load(), tr.lag())
	}
	tr.runEnded()
	if tr.caughtTo.Load() != 0 || tr.lag() != 2 {
		t.Fatalf("after the run: caughtTo %d lag %d, want 0, 2", tr.caughtTo.Load(), tr.lag())
	}
	// A bootstrapped fold at 5: nothing of the old watch is claimed.
	tr.runStarting(slipstream.CursorFromUint64(5))
	if tr.caughtTo.Load() != 0 || tr.lag() != 8 {
		t.Fatalf("bootstrapped fold: caughtTo %d lag %d, want 0, 8", tr.caughtTo.Load(), tr.lag())
	}
}

// Caught up by the head (no marker yet), nothing beyond the cursor is
// claimed; neither before the initial values are applied.
func TestTracker_CaughtUpToNeedsTheInitialValuesApplied(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	c := slipstream.CursorFromUint64(5)
	tr.runStarting(c)
	tr.watchStarting(c, c, 9, true)
	tr.onProgress(natskv.Progress{Delivered: 1, Pending: 0, Revision: 7})
	tr.onProgress(natskv.Progress{Delivered: 1, InitialDone: true})
	wantState(t, tr, stateResuming, false)
	if tr.lag() != 4 {
		t.Fatalf("lag = %d, want 4 (7 delivered, not applied)", tr.lag())
	}
	flushed(tr, 7)
	wantState(t, tr, stateSynced, true)
	if tr.lag() != 0 {
		t.Fatalf("lag = %d, want 0 (8 and 9 removed before delivery)", tr.lag())
	}
}

// A bucket recreated empty: the resync's state sync delivers nothing, so
// the fold keeps the old cursor (synthetic deletes never move it), which is
// past the new stream's head. The mirror does not claim to be caught up on
// it (an audit would find the cursor ahead and log it as an error): it
// stays resyncing until the first write to the new stream is folded.
func TestTracker_ResyncOfAnEmptyBucketWaitsForAWrite(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	c := slipstream.CursorFromUint64(10)
	tr.runStarting(c)
	tr.watchStarting(slipstream.Cursor{}, c, 0, true)
	tr.onProgress(natskv.Progress{InitialDone: true})
	wantState(t, tr, stateResyncing, false)
	if tr.lag() != 0 {
		t.Fatalf("lag = %d, want 0 (the head is 0)", tr.lag())
	}
	tr.setHead(1)
	tr.onProgress(natskv.Progress{Delivered: 1, Revision: 1})
	flushed(tr, 1)
	wantState(t, tr, stateSynced, true)
}

// A watch re-created after a reconnect reports its initial values done
// again, with the head read before its consumer: records that expired
// during the outage stop counting as lag once what it delivered before the
// report is applied — while the state stays synced and the cursor put.
func TestTracker_ReconnectProvesTheHeadAgain(t *testing.T) {
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	c := slipstream.CursorFromUint64(11)
	tr.runStarting(c)
	tr.watchStarting(c, c, 11, true)
	tr.onProgress(natskv.Progress{InitialDone: true, Head: 11})
	wantState(t, tr, stateSynced, true)
	// The server restarts; 12 is delivered by the re-created watcher, 13
	// and 14 expired meanwhile.
	tr.setHead(14)
	tr.onProgress(natskv.Progress{Delivered: 1, Revision: 12})
	tr.onProgress(natskv.Progress{Delivered: 1, InitialDone: true, Head: 14})
	if tr.lag() != 3 {
		t.Fatalf("lag before 12 is applied = %d, want 3", tr.lag())
	}
	flushed(tr, 12)
	if tr.lag() != 0 || tr.caughtTo.Load() != 14 || tr.applied.Load() != 12 {
		t.Fatalf("lag %d caughtTo %d applied %d, want 0, 14, 12", tr.lag(), tr.caughtTo.Load(), tr.applied.Load())
	}
	wantState(t, tr, stateSynced, true)
}
