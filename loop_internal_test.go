package slipstream

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"
)

// The priority ladder, source by source: whatever set of sources is ready,
// polling and waiting both return the most urgent, shutdown first. The
// black-box tests cannot time a stream close against a cancellation this
// precisely.

type source uint8

const (
	srcShutdown source = 1 << iota
	srcWindow
	srcWatchRequest
	srcRequest
	srcUpdate
	srcClosed
	srcAll = srcClosed<<1 - 1
)

// want returns the event kind (and request rank) the ladder must pick when
// the sources in set are ready.
func (set source) want() (eventKind, int) {
	switch {
	case set&srcShutdown != 0:
		return evShutdown, 0
	case set&srcWindow != 0:
		return evWindow, 0
	case set&srcWatchRequest != 0:
		return evRequest, 0
	case set&srcRequest != 0:
		return evRequest, 1
	case set&(srcUpdate|srcClosed) != 0:
		if set&srcUpdate != 0 {
			return evUpdate, 0
		}
		return evClosed, 0
	}
	return evNone, 0
}

type testRequest struct{ abandoned error }

func (*testRequest) serve(*loop) error   { return nil }
func (r *testRequest) abandon(err error) { r.abandoned = err }

// readyLoop returns a loop whose sources in set are ready.
func readyLoop(t *testing.T, set source) *loop {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	f := &Follower{MaxBatchSize: 10, Logger: slog.New(slog.DiscardHandler)}
	l := newLoop(ctx, f, Cursor{}, make(chan request, 1))
	l.stopWatch = func() {}
	if set&srcWindow != 0 {
		l.timer.Reset(time.Millisecond)
		l.armed = true
		time.Sleep(time.Millisecond)
		synctest.Wait()
	}
	if set&srcWatchRequest != 0 {
		l.watchRequests <- &testRequest{}
	}
	if set&srcRequest != 0 {
		l.requests <- &testRequest{}
	}
	if set&srcUpdate != 0 {
		l.updates <- Update{Op: OpPut, Key: "k", Version: VersionFromUint64(1)}
	}
	if set&srcClosed != 0 {
		close(l.updates)
	}
	if set&srcShutdown != 0 {
		cancel()
	}
	return l
}

func TestLadderPicksTheMostUrgentReadySource(t *testing.T) {
	for set := source(1); set <= srcAll; set++ {
		for _, wait := range []bool{false, true} {
			t.Run(fmt.Sprintf("ready=%06b/wait=%v", set, wait), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					l := readyLoop(t, set)
					kind, rank := set.want()
					ev := l.next(wait)
					if ev.kind != kind || (kind == evRequest && ev.rank != rank) {
						t.Fatalf("next = kind %d rank %d, want kind %d rank %d", ev.kind, ev.rank, kind, rank)
					}
				})
			})
		}
	}
}

// TestLadderRanksWhatTheWaitTook: the blocking wait takes whichever ready
// source Go's select picks; the next pass must still return the most
// urgent one, and the taken event after it.
func TestLadderRanksWhatTheWaitTook(t *testing.T) {
	for set := source(1); set <= srcAll; set++ {
		if set&srcUpdate != 0 && set&srcClosed != 0 {
			continue // a closed channel with an update in it yields the update first
		}
		t.Run(fmt.Sprintf("ready=%06b", set), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := readyLoop(t, set)
				l.held = l.wait() // as if nothing was ready at the poll
				taken := l.held
				if kind, rank := set.want(); true {
					ev := l.next(true)
					if ev.kind != kind || (kind == evRequest && ev.rank != rank) {
						t.Fatalf("next = kind %d rank %d, want kind %d rank %d (the wait took kind %d)", ev.kind, ev.rank, kind, rank, taken.kind)
					}
					if kind == evShutdown {
						if r, ok := taken.req.(*testRequest); ok && r.abandoned != ErrNotRunning {
							t.Fatalf("held request abandoned with %v, want ErrNotRunning", r.abandoned)
						}
						return
					}
					if taken.kind != kind && l.held.kind != taken.kind {
						t.Fatalf("the taken event (kind %d) was lost", taken.kind)
					}
				}
			})
		})
	}
}

// TestLadderBurstYieldsToTheWindow: a firehose of updates cannot delay the
// window by more than maxBurst updates, nor shutdown by any.
func TestLadderBurstYieldsToTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := readyLoop(t, srcWindow)
		l.updates = make(chan Update, 4*maxBurst)
		for i := range 4 * maxBurst {
			l.updates <- Update{Op: OpPut, Key: "k", Version: VersionFromUint64(uint64(i + 1))}
		}
		l.burst = 1 // mid-burst
		for n := 1; ; n++ {
			ev := l.next(false)
			if ev.kind == evWindow {
				if n > maxBurst {
					t.Fatalf("window taken after %d updates, want at most %d", n-1, maxBurst)
				}
				break
			}
			if ev.kind != evUpdate {
				t.Fatalf("event kind %d", ev.kind)
			}
		}
		cancelled, cancel := context.WithCancel(t.Context())
		cancel()
		l.ctx = cancelled
		l.burst = 1
		if ev := l.next(false); ev.kind != evShutdown {
			t.Fatalf("mid-burst next = kind %d, want shutdown", ev.kind)
		}
	})
}
