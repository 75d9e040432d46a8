package buckettest

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
)

// Bucket is what the suite drives: the seam a Follower consumes, and the
// writes (with the revisions they return) that drive it.
type Bucket interface {
	slipstream.Watcher
	slipstream.KeyLister
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	Delete(ctx context.Context, key string) (uint64, error)
	Purge(ctx context.Context, key string) (uint64, error)
}

// Harness gives the suite its buckets.
type Harness struct {
	// New returns an empty bucket; every check uses a new one.
	New func(t *testing.T) Bucket
	// Evict removes every record at or below revision upTo from the head
	// of b's history, as a retention limit does.
	Evict func(t *testing.T, b Bucket, upTo uint64)
}

// Timeout bounds each wait for an update or for a watch to return.
const Timeout = 10 * time.Second

// watch is one Watch running on its own goroutine.
type watch struct {
	out    chan slipstream.Update
	result chan error
	stop   context.CancelFunc
}

func start(t *testing.T, b Bucket, scope slipstream.Scope, after slipstream.Cursor) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watch{out: make(chan slipstream.Update), result: make(chan error, 1), stop: cancel}
	go func() { w.result <- b.Watch(ctx, scope, after, w.out) }()
	t.Cleanup(func() {
		cancel()
		<-w.result
	})
	return w
}

// next returns the next update.
func (w *watch) next(t *testing.T) slipstream.Update {
	t.Helper()
	select {
	case u := <-w.out:
		return u
	case err := <-w.result:
		w.result <- err
		t.Fatalf("the watch ended (%v) while an update was due", err)
	case <-time.After(Timeout):
		t.Fatalf("no update within %v", Timeout)
	}
	return slipstream.Update{}
}

// end returns the watch's result; it fails the test on an update.
func (w *watch) end(t *testing.T) error {
	t.Helper()
	select {
	case u := <-w.out:
		t.Fatalf("update %s %s@%v, want the watch to end without sending", u.Op, u.Key, u.Version)
	case err := <-w.result:
		w.result <- err
		return err
	case <-time.After(Timeout):
		t.Fatalf("the watch did not end within %v", Timeout)
	}
	return nil
}

// want is an expected update; value "" matches an empty value.
type want struct {
	op    slipstream.Op
	key   string
	value string
	rev   uint64
}

func (w *watch) expect(t *testing.T, wants ...want) {
	t.Helper()
	for _, x := range wants {
		u := w.next(t)
		rev, ok := u.Version.Uint64()
		if u.Op != x.op || u.Key != x.key || string(u.Value) != x.value || !ok || rev != x.rev {
			t.Fatalf("got %s %s=%q@%v, want %s %s=%q@%d", u.Op, u.Key, u.Value, u.Version, x.op, x.key, x.value, x.rev)
		}
	}
}

func mustPut(t *testing.T, b Bucket, key, value string) uint64 {
	t.Helper()
	rev, err := b.Put(t.Context(), key, []byte(value))
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return rev
}

func mustDelete(t *testing.T, b Bucket, key string) uint64 {
	t.Helper()
	rev, err := b.Delete(t.Context(), key)
	if err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
	return rev
}

func mustPurge(t *testing.T, b Bucket, key string) uint64 {
	t.Helper()
	rev, err := b.Purge(t.Context(), key)
	if err != nil {
		t.Fatalf("purge %s: %v", key, err)
	}
	return rev
}

const (
	put   = slipstream.OpPut
	del   = slipstream.OpDelete
	purge = slipstream.OpPurge
)

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	for name, c := range map[string]slipstream.Cursor{"none": {}, "revision_0": slipstream.CursorFromUint64(0)} {
		t.Run("state_sync_relists_latest_then_live/"+name, func(t *testing.T) {
			b := h.New(t)
			mustPut(t, b, "a", "1")
			ra := mustPut(t, b, "a", "2")
			mustPut(t, b, "b", "1")
			rb := mustDelete(t, b, "b")
			rc := mustPut(t, b, "c", "")
			mustPut(t, b, "d", "1")
			rd := mustPurge(t, b, "d")
			w := start(t, b, slipstream.AllKeys(), c)
			w.expect(t, want{put, "a", "2", ra}, want{del, "b", "", rb}, want{put, "c", "", rc}, want{purge, "d", "", rd})
			re := mustPut(t, b, "e", "1")
			w.expect(t, want{put, "e", "1", re})
		})
	}

	t.Run("resume_delivers_strictly_after_the_cursor", func(t *testing.T) {
		b := h.New(t)
		r1 := mustPut(t, b, "a", "1")
		r2 := mustPut(t, b, "a", "2")
		r3 := mustDelete(t, b, "a")
		r4 := mustPut(t, b, "b", "1")
		r5 := mustPurge(t, b, "b")
		w := start(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(r1))
		// The purge removed b's earlier record.
		w.expect(t, want{put, "a", "2", r2}, want{del, "a", "", r3}, want{purge, "b", "", r5})
		_ = r4
		r6 := mustPut(t, b, "c", "")
		w.expect(t, want{put, "c", "", r6})
		w.stop()
		// At the last revision: only what comes next.
		w = start(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(r6))
		r7 := mustPut(t, b, "d", "1")
		w.expect(t, want{put, "d", "1", r7})
	})

	t.Run("evicted_cursor_expires_sending_nothing", func(t *testing.T) {
		b := h.New(t)
		var last uint64
		for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
			last = mustPut(t, b, k, "1")
		}
		h.Evict(t, b, last-3) // the first retained revision is last-2
		err := start(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(last-4)).end(t)
		if !errors.Is(err, slipstream.ErrCursorExpired) {
			t.Fatalf("resume across evicted history = %v, want ErrCursorExpired", err)
		}
		// The first retained revision right after the cursor is no gap.
		w := start(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(last-3))
		w.expect(t, want{put, "d", "1", last - 2}, want{put, "e", "1", last - 1}, want{put, "f", "1", last})
	})

	t.Run("cursor_ahead_of_the_bucket_expires", func(t *testing.T) {
		b := h.New(t)
		last := mustPut(t, b, "a", "1")
		err := start(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(last+5)).end(t)
		if !errors.Is(err, slipstream.ErrCursorAhead) || !errors.Is(err, slipstream.ErrCursorExpired) {
			t.Fatalf("resume ahead of the last revision = %v, want ErrCursorAhead", err)
		}
	})

	t.Run("max_cursor_is_refused", func(t *testing.T) {
		b := h.New(t)
		mustPut(t, b, "a", "1")
		err := start(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(math.MaxUint64)).end(t)
		if !errors.Is(err, slipstream.ErrCursorOverflow) || errors.Is(err, slipstream.ErrCursorExpired) {
			t.Fatalf("resume after MaxUint64 = %v, want ErrCursorOverflow (never a full replay)", err)
		}
	})

	for _, resume := range []bool{false, true} {
		name := "scopes_state_sync"
		if resume {
			name = "scopes_resume"
		}
		t.Run(name, func(t *testing.T) {
			b := h.New(t)
			r0 := mustPut(t, b, "z.0", "z")
			ra := mustPut(t, b, "a.1", "a")
			mustPut(t, b, "x.1", "x")
			rb := mustPut(t, b, "b.1", "b")
			rc := mustPut(t, b, "a.b.2", "ab")
			c := slipstream.Cursor{}
			if resume {
				c = slipstream.CursorFromUint64(r0)
			}
			w := start(t, b, slipstream.Prefix("a."), c)
			w.expect(t, want{put, "a.1", "a", ra}, want{put, "a.b.2", "ab", rc})
			w.stop()
			// Overlapping prefixes: each key once, in revision order.
			w = start(t, b, slipstream.Prefixes("b.", "a.", "a.b."), c)
			w.expect(t, want{put, "a.1", "a", ra}, want{put, "b.1", "b", rb}, want{put, "a.b.2", "ab", rc})
			mustPut(t, b, "x.2", "x")
			rd := mustPut(t, b, "b.2", "b2")
			w.expect(t, want{put, "b.2", "b2", rd})
			w.stop()
			if err := start(t, b, slipstream.Prefixes(), c).end(t); err != nil {
				t.Fatalf("empty Prefixes watch = %v, want nil at once", err)
			}
			err := start(t, b, slipstream.Prefix("a"), c).end(t)
			if !errors.Is(err, slipstream.ErrInvalidScope) {
				t.Fatalf("unaligned prefix = %v, want ErrInvalidScope", err)
			}
		})
	}

	t.Run("keys_lists_live_keys_only", func(t *testing.T) {
		b := h.New(t)
		mustPut(t, b, "n.a", "1")
		mustPut(t, b, "n.b", "1")
		mustDelete(t, b, "n.b")
		mustPut(t, b, "n.c", "")
		mustPut(t, b, "n.d", "1")
		mustPurge(t, b, "n.d")
		mustPut(t, b, "n.x.e", "1")
		mustPut(t, b, "o.f", "1")
		for prefix, want := range map[string][]string{
			"":     {"n.a", "n.x.e", "o.f"},
			"n.":   {"n.a", "n.x.e"},
			"n.x.": {"n.x.e"},
			"z.":   nil,
		} {
			keys, err := b.Keys(t.Context(), prefix)
			if err != nil {
				t.Fatalf("Keys(%q): %v", prefix, err)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, want) {
				t.Fatalf("Keys(%q) = %q, want %q", prefix, keys, want)
			}
		}
	})

	t.Run("cancel_ends_the_watch_with_nil", func(t *testing.T) {
		b := h.New(t)
		mustPut(t, b, "a", "1")
		for _, c := range []slipstream.Cursor{{}, slipstream.CursorFromUint64(1)} {
			w := start(t, b, slipstream.AllKeys(), c)
			if c.IsNone() {
				w.next(t)
			}
			w.stop()
			select {
			case err := <-w.result:
				w.result <- err
				if err != nil {
					t.Fatalf("Watch after cancel = %v, want nil", err)
				}
			case <-time.After(Timeout):
				t.Fatal("Watch did not return after its context was cancelled")
			}
			select {
			case _, ok := <-w.out:
				if !ok {
					t.Fatal("the watch closed its channel")
				}
				t.Fatal("the watch sent after it returned")
			default:
			}
		}
	})
}
