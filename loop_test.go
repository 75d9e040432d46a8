package slipstream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
)

// Rules of the loop found by review (issue 14 §2): shutdown's priority on
// every path, resuming from the Store's cursor, and the Watcher contract.

// ctxApply is an Apply that honours its context, as a consumer writing to a
// database would, and records what it applied.
func ctxApply(rec *recorder, hook func(ctx context.Context)) func(context.Context, []slipstream.Update) error {
	return func(ctx context.Context, batch []slipstream.Update) error {
		if hook != nil {
			hook(ctx)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("write batch: %w", err)
		}
		return rec.Apply(ctx, batch)
	}
}

// TestShutdownDuringFlushIsAShutdown cancels Run while a flush is in
// Apply: the Apply that honours its context fails, and that failure is the
// shutdown, not an error — the batch is flushed again with the live context
// and Run returns (cursor, nil).
func TestShutdownDuringFlushIsAShutdown(t *testing.T) {
	for _, tc := range []struct {
		name string
		// closed: Apply returns only once the watch has returned and the
		// stream is closed; otherwise at once, the stream still open.
		closed bool
		limit  int // MaxBatchSize; 1 flushes on receipt, else the window flushes
	}{
		{"window flush, stream open", false, 100},
		{"window flush, stream closed", true, 100},
		{"size flush, stream open", false, 1},
		{"size flush, stream closed", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &cancelWatcher{ups: []slipstream.Update{put("a", "1", 1)}}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				rec := &recorder{}
				calls := 0
				f := newFollower(w, rec)
				f.MaxBatchSize = tc.limit
				f.Apply = ctxApply(rec, func(context.Context) {
					calls++
					if calls == 1 {
						cancel() // the signal arrives mid-Apply
						if tc.closed {
							synctest.Wait() // the watch has returned
						}
					}
				})
				c, err := f.Run(ctx)
				if err != nil {
					t.Fatalf("Run = %v, want a clean shutdown", err)
				}
				wantCursor(t, "returned cursor", c, 1)
				wantValues(t, rec, "1")
				wantCursor(t, "OnApplied", rec.lastApplied(), 1)
			})
		})
	}
}

// cancelWatcher sends ups, then holds the stream open until its context is
// cancelled, and returns nil.
type cancelWatcher struct {
	ups []slipstream.Update
}

func (w *cancelWatcher) Watch(ctx context.Context, _ slipstream.Scope, _ slipstream.Cursor, out chan<- slipstream.Update) error {
	for _, u := range w.ups {
		select {
		case out <- u:
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// TestStreamClosedAtShutdownIsAShutdown ends the stream and cancels Run at
// the same moment: whichever the loop sees first, what it took is applied
// with a live context and Run returns nil.
func TestStreamClosedAtShutdownIsAShutdown(t *testing.T) {
	for i := range 50 {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			w := &closeOnCancelWatcher{ups: []slipstream.Update{put("a", "1", 1), put("b", "2", 2)}, cancel: cancel}
			rec := &recorder{}
			f := newFollower(w, rec)
			f.MaxBatchDelay = time.Hour
			f.Apply = ctxApply(rec, nil)
			c, err := f.Run(ctx)
			if err != nil {
				t.Fatalf("run %d: Run = %v, want a clean shutdown", i, err)
			}
			// Updates still in the channel at shutdown are abandoned;
			// whatever was taken is applied and claimed.
			switch got := rec.values(); {
			case c.IsNone() && len(got) == 0:
			case !c.IsNone() && rank(t, c) == uint64(len(got)):
			default:
				t.Fatalf("run %d: returned cursor %v with %q applied", i, c, got)
			}
		})
	}
}

// closeOnCancelWatcher sends ups, then cancels the Run and returns at once,
// so the stream's end and the shutdown are ready together.
type closeOnCancelWatcher struct {
	ups    []slipstream.Update
	cancel context.CancelFunc
}

func (w *closeOnCancelWatcher) Watch(ctx context.Context, _ slipstream.Scope, _ slipstream.Cursor, out chan<- slipstream.Update) error {
	for _, u := range w.ups {
		select {
		case out <- u:
		case <-ctx.Done():
			return nil
		}
	}
	w.cancel()
	return nil
}

func TestResumeFollowsTheStoreCursor(t *testing.T) {
	t.Run("none resumes from the store", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := seeded(t, cur(9), put("a", "1", 9))
			w := &scriptedWatcher{full: []slipstream.Update{put("full", "x", 1)}, from: []slipstream.Update{put("b", "2", 10)}}
			rec := &recorder{}
			f := newFollower(w, rec)
			f.Store = store
			c := mustRun(t, f)
			if calls := w.Calls(); len(calls) != 1 || rank(t, calls[0].after) != 9 {
				t.Fatalf("watch calls = %+v, want one resume after the store's cursor 9", calls)
			}
			wantCursor(t, "returned cursor", c, 10)
			wantValues(t, rec, "2")
		})
	})
	t.Run("resume behind the store is allowed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := seeded(t, cur(9), put("a", "1", 9))
			w := &scriptedWatcher{from: []slipstream.Update{put("a", "1", 9), put("b", "2", 10)}}
			f := newFollower(w, &recorder{})
			f.Store = store
			f.Resume = cur(8)
			wantCursor(t, "returned cursor", mustRun(t, f), 10)
			if calls := w.Calls(); len(calls) != 1 || rank(t, calls[0].after) != 8 {
				t.Fatalf("watch calls = %+v, want one resume after 8", calls)
			}
		})
	})
	for _, tc := range []struct {
		name   string
		stored slipstream.Cursor
		resume slipstream.Cursor
	}{
		{"ahead of the store", cur(9), cur(12)},
		{"ahead of a fresh store", slipstream.Cursor{}, cur(1)},
		{"not comparable", cur(9), slipstream.CursorAt(mustVersion(t, []byte{1, 2, 3}))},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := seeded(t, tc.stored)
				w := &scriptedWatcher{}
				rec := &recorder{}
				f := newFollower(w, rec)
				f.Store = store
				f.Resume = tc.resume
				c, err := f.Run(t.Context())
				if !errors.Is(err, slipstream.ErrResumeAhead) || !errors.Is(err, slipstream.ErrInvalidConfig) {
					t.Fatalf("Run = %v, want ErrResumeAhead (an ErrInvalidConfig)", err)
				}
				if c != tc.stored {
					t.Fatalf("returned cursor %v, want the store's %v", c, tc.stored)
				}
				if len(w.Calls()) != 0 || rec.applyCalls() != 0 {
					t.Fatal("a refused Run watched or applied")
				}
			})
		})
	}
}

func mustVersion(t testing.TB, b []byte) slipstream.Version {
	t.Helper()
	v, ok := slipstream.VersionFromBytes(b)
	if !ok {
		t.Fatalf("version %x", b)
	}
	return v
}

// sendThenExpire breaks the Watcher contract: its resume sends updates and
// then reports the cursor expired.
type sendThenExpire struct {
	scriptedWatcher
	sent []slipstream.Update
}

func (w *sendThenExpire) Watch(ctx context.Context, scope slipstream.Scope, after slipstream.Cursor, out chan<- slipstream.Update) error {
	if after.IsNone() {
		return w.scriptedWatcher.Watch(ctx, scope, after, out)
	}
	w.mu.Lock()
	w.calls = append(w.calls, watchCall{scope: scope, after: after})
	w.mu.Unlock()
	for _, u := range w.sent {
		select {
		case out <- u:
		case <-ctx.Done():
			return nil
		}
	}
	return fmt.Errorf("%w: after sending", slipstream.ErrCursorExpired)
}

// TestWatcherSendingBeforeExpiryStopsRun: updates a resume sent before it
// reported its cursor expired may lie past lost history; the loop folds
// none of them, does not resync over them, and stops loudly.
func TestWatcherSendingBeforeExpiryStopsRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lister bool
	}{{"with resync", true}, {"re-list only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := seeded(t, cur(5), put("k.a", "1", 5))
				w := &sendThenExpire{
					scriptedWatcher: scriptedWatcher{full: []slipstream.Update{put("k.full", "x", 20)}},
					sent:            []slipstream.Update{put("k.b", "2", 10), put("k.c", "3", 11)},
				}
				rec := &recorder{}
				f := newFollower(w, rec)
				f.Store = store
				f.MaxBatchDelay = time.Hour
				if tc.lister {
					f.Lister = &prefixLister{live: []string{"k.a"}}
				}
				c, err := f.Run(t.Context())
				if !errors.Is(err, slipstream.ErrWatcherContract) || !errors.Is(err, slipstream.ErrWatch) {
					t.Fatalf("Run = %v, want ErrWatcherContract", err)
				}
				wantCursor(t, "returned cursor", c, 5)
				wantCursor(t, "store cursor", store.Cursor(), 5)
				if got := store.Values(); len(got) != 1 || got["k.a"] != "1" {
					t.Fatalf("fold = %v, want it untouched", got)
				}
				if rec.applyCalls() != 0 {
					t.Fatalf("applied %v", rec.values())
				}
				if n := len(w.Calls()); n != 1 {
					t.Fatalf("%d watch calls: the fallback watch started", n)
				}
			})
		})
	}
}

// TestWatcherClosingItsChannelStopsRun: the Watcher must never close out.
func TestWatcherClosingItsChannelStopsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, err := newFollower(closingWatcher{}, &recorder{}).Run(t.Context())
		if !errors.Is(err, slipstream.ErrWatcherContract) {
			t.Fatalf("Run = %v, want ErrWatcherContract", err)
		}
	})
}

type closingWatcher struct{}

func (closingWatcher) Watch(_ context.Context, _ slipstream.Scope, _ slipstream.Cursor, out chan<- slipstream.Update) error {
	close(out)
	return nil
}
