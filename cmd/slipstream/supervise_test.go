package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/memkv"
	"github.com/slipstream-kv/slipstream/natskv"
)

type watchCall struct {
	after slipstream.Cursor
	at    time.Duration // since the bubble started
}

// flakyBucket is a memkv bucket whose n-th watch, when fail(n) is not nil,
// runs for one second (or runFor(n)) and then fails with that error.
type flakyBucket struct {
	*memkv.KV
	start  time.Time
	fail   func(n int) error
	runFor func(n int) time.Duration // nil: one second

	mu    sync.Mutex
	calls []watchCall
}

func (f *flakyBucket) Watch(ctx context.Context, scope slipstream.Scope, after slipstream.Cursor, out chan<- slipstream.Update) error {
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, watchCall{after: after, at: time.Since(f.start)})
	f.mu.Unlock()
	err := f.fail(n)
	if err == nil {
		return f.KV.Watch(ctx, scope, after, out)
	}
	d := time.Second
	if f.runFor != nil {
		d = f.runFor(n)
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	f.KV.Watch(wctx, scope, after, out)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (f *flakyBucket) Status(ctx context.Context) (natskv.Status, error) {
	return natskv.Status{FirstSeq: f.FirstRevision(), LastSeq: f.LastRevision()}, nil
}

func (f *flakyBucket) watchCalls() []watchCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]watchCall(nil), f.calls...)
}

func newSupervised(t *testing.T, fail func(int) error) (*mirror, *flakyBucket) {
	t.Helper()
	dir := t.TempDir()
	st, err := applog.Open(dir, &applog.Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fb := &flakyBucket{KV: memkv.New(), start: time.Now(), fail: fail}
	m := &mirror{
		bucket: fb, fold: &fold{store: st, Backend: backendAppLog, Dir: dir}, scope: slipstream.AllKeys(),
		batchMax: 100, batchWindow: 10 * time.Millisecond, log: discardLogger(),
		t: newTracker(slipstream.AllKeys(), discardLogger(), nil),
	}
	return m, fb
}

// A failed watch restarts the follower from the fold's own cursor, after a
// doubling backoff; the fold converges and the restarts are counted.
func TestMirror_RestartsFromFoldCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		watchErr := fmt.Errorf("%w: subscription closed", slipstream.ErrWatch)
		m, fb := newSupervised(t, func(n int) error {
			if n < 2 {
				return watchErr
			}
			return nil
		})
		ctx := t.Context()
		for i := 1; i <= 3; i++ {
			fb.Put(ctx, fmt.Sprintf("k.%d", i), []byte("v"))
		}
		runCtx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- m.run(runCtx) }()

		time.Sleep(500 * time.Millisecond)
		fb.Put(ctx, "k.4", []byte("v")) // live, during the first watch
		time.Sleep(time.Second)         // t=1.5s: the second watch (from 1.2s) runs
		fb.Put(ctx, "k.5", []byte("v"))
		time.Sleep(2 * time.Second) // t=3.5s: the third watch (from 2.6s) runs
		fb.Delete(ctx, "k.1")
		time.Sleep(time.Second)
		synctest.Wait()

		calls := fb.watchCalls()
		want := []watchCall{
			{slipstream.Cursor{}, 0},
			{slipstream.CursorFromUint64(4), 1200 * time.Millisecond}, // fails at 1s, backoff 200ms
			{slipstream.CursorFromUint64(5), 2600 * time.Millisecond}, // fails at 2.2s, backoff 400ms
		}
		if len(calls) != len(want) {
			t.Fatalf("watch calls %+v, want %+v", calls, want)
		}
		for i := range want {
			if calls[i] != want[i] {
				t.Errorf("watch %d: after %v at %v, want after %v at %v", i, calls[i].after, calls[i].at, want[i].after, want[i].at)
			}
		}
		if got := m.t.restarts.Load(); got != 2 {
			t.Errorf("restarts = %d, want 2", got)
		}
		if s, _, lastErr := m.t.snapshot(); s != stateSynced || lastErr != watchErr.Error() {
			t.Errorf("state %s lastErr %q", s, lastErr)
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("run: %v", err)
		}
		if c := m.fold.Cursor().Rank(); c != 6 {
			t.Errorf("fold cursor %d, want 6", c)
		}
		if n, _ := m.fold.Keys(); n != 4 {
			t.Errorf("fold keys %d, want 4", n)
		}
		if _, ok, _ := m.fold.Get("k.1"); ok {
			t.Error("k.1 was deleted but is still in the fold")
		}
	})
}

// The backoff doubles up to its cap, and a run that lasted long resets it.
func TestMirror_BackoffCapAndReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, fb := newSupervised(t, func(n int) error { return errors.New("watch failed") })
		runFor := func(n int) time.Duration {
			if n == 5 {
				return restartBackoffReset + 10*time.Second
			}
			return time.Second
		}
		fb.runFor = runFor
		runCtx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- m.run(runCtx) }()
		time.Sleep(3 * time.Minute)
		cancel()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		calls := fb.watchCalls()
		var gaps []time.Duration
		for i := 1; i < len(calls); i++ {
			gaps = append(gaps, calls[i].at-calls[i-1].at-runFor(i-1))
		}
		ms := time.Millisecond
		want := []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, // doubling
			200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 10 * time.Second, 10 * time.Second} // reset, then capped
		if len(gaps) < len(want) {
			t.Fatalf("backoffs %v, want at least %v", gaps, want)
		}
		for i, w := range want {
			if gaps[i] != w {
				t.Fatalf("backoff %d = %v, want %v (all: %v)", i, gaps[i], w, gaps)
			}
		}
	})
}

// Misconfiguration and an unusable fold stop the mirror instead of looping.
func TestMirror_FatalErrorsStop(t *testing.T) {
	for _, fatal := range []error{slipstream.ErrInvalidScope, slipstream.ErrCorrupt, slipstream.ErrClosed} {
		t.Run(fatal.Error(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m, fb := newSupervised(t, func(int) error { return fmt.Errorf("wrapped: %w", fatal) })
				err := m.run(t.Context())
				if !errors.Is(err, fatal) {
					t.Fatalf("run = %v, want %v", err, fatal)
				}
				if n := len(fb.watchCalls()); n != 1 || m.t.restarts.Load() != 0 {
					t.Errorf("%d watches, %d restarts: a fatal error must not restart", n, m.t.restarts.Load())
				}
			})
		})
	}
}
