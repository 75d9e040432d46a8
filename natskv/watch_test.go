package natskv_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// TestWatch covers the watch rules of the package documentation (state
// sync, resume, expiry, scopes), on one server with one bucket per case.
func TestWatch(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	// open returns the bucket and a channel closed when a watch's initial
	// values are done (the handshake: everything after it is live).
	open := func(t *testing.T, history uint8) (*natskv.Bucket, <-chan struct{}) {
		progress, done := initialDone()
		name := strings.ReplaceAll(t.Name()[len("TestWatch/"):], "_", "-")
		return e.open(t, natskv.Config{Bucket: name, History: history, MaxBytes: 8 << 20, OnProgress: progress}), done
	}
	expect := func(t *testing.T, w *watchRun, op slipstream.Op, key, value string) slipstream.Update {
		t.Helper()
		u := w.next(t)
		if u.Op != op || u.Key != key || string(u.Value) != value || u.Version.IsUnknown() {
			t.Fatalf("got %s %s=%q@%s, want %s %s=%q", u.Op, u.Key, u.Value, u.Version, op, key, value)
		}
		return u
	}

	t.Run("watch_all_streams_live_updates", func(t *testing.T) {
		b, done := open(t, 1)
		w := startWatch(t, b, slipstream.AllKeys(), slipstream.Cursor{})
		waitClosed(t, done, "initial values")
		ra := put(t, b, "a", "1")
		put(t, b, "b", "2")
		if _, err := b.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Purge(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if u := expect(t, w, slipstream.OpPut, "a", "1"); rev(u) != ra {
			t.Fatalf("revision %d, want %d", rev(u), ra)
		}
		expect(t, w, slipstream.OpPut, "b", "2")
		expect(t, w, slipstream.OpDelete, "a", "")
		expect(t, w, slipstream.OpPurge, "b", "")
	})
	t.Run("state_sync_relists_then_consumes_the_done_marker", func(t *testing.T) {
		var mu sync.Mutex
		var reports []natskv.Progress
		b := e.open(t, natskv.Config{Bucket: "relist", OnProgress: func(p natskv.Progress) {
			mu.Lock()
			reports = append(reports, p)
			mu.Unlock()
		}})
		put(t, b, "a", "1")
		put(t, b, "b", "1")
		put(t, b, "a", "2") // history 1: a@1 is gone, a@3 is the latest
		if _, err := b.Delete(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		put(t, b, "c", "1")
		w := startWatch(t, b, slipstream.AllKeys(), slipstream.Cursor{})
		// The re-list: the latest record of every key, markers included,
		// in stream order.
		expect(t, w, slipstream.OpPut, "a", "2")
		expect(t, w, slipstream.OpDelete, "b", "")
		expect(t, w, slipstream.OpPut, "c", "1")
		// The nil "initial values done" entry is not forwarded.
		w.none(t, 300*time.Millisecond)
		mu.Lock()
		got := append([]natskv.Progress(nil), reports...)
		mu.Unlock()
		if len(got) != 4 || !got[3].InitialDone || got[3].Delivered != 3 || got[0].Pending != 2 || got[2].Pending != 0 || got[2].Revision != 5 {
			t.Fatalf("progress reports = %+v", got)
		}
		put(t, b, "d", "live")
		expect(t, w, slipstream.OpPut, "d", "live")
	})
	t.Run("watch_prefix_filters_by_subject", func(t *testing.T) {
		b, done := open(t, 1)
		w := startWatch(t, b, slipstream.Prefix("node."), slipstream.Cursor{})
		waitClosed(t, done, "initial values")
		put(t, b, "other.x", "1")
		put(t, b, "nodes.x", "1") // shares the string prefix "node", not the token
		put(t, b, "node.a", "1")
		expect(t, w, slipstream.OpPut, "node.a", "1")
		w.none(t, 300*time.Millisecond)
	})
	t.Run("watch_prefixes_unions_on_a_single_consumer", func(t *testing.T) {
		b, done := open(t, 1)
		w := startWatch(t, b, slipstream.Prefixes("vpcA.", "vpcB."), slipstream.Cursor{})
		waitClosed(t, done, "initial values")
		if n := e.streamInfo(t, b.Name()).State.Consumers; n != 1 {
			t.Fatalf("%d consumers for a two-prefix watch, want 1", n)
		}
		put(t, b, "vpcC.x", "1")
		put(t, b, "vpcA.a", "1")
		put(t, b, "vpcB.b", "1")
		expect(t, w, slipstream.OpPut, "vpcA.a", "1")
		expect(t, w, slipstream.OpPut, "vpcB.b", "1")
		w.none(t, 500*time.Millisecond)
	})
	t.Run("watch_prefixes_from_replays_only_the_delta", func(t *testing.T) {
		b, _ := open(t, 1)
		put(t, b, "vpcA.a", "1")
		cursor := put(t, b, "vpcB.b", "1")
		put(t, b, "vpcC.x", "1")
		ra := put(t, b, "vpcA.a2", "2")
		put(t, b, "vpcC.y", "2")
		rb := put(t, b, "vpcB.b2", "2")
		w := startWatch(t, b, slipstream.Prefixes("vpcA.", "vpcB."), slipstream.CursorFromUint64(cursor))
		if u := expect(t, w, slipstream.OpPut, "vpcA.a2", "2"); rev(u) != ra {
			t.Fatalf("revision %d, want %d", rev(u), ra)
		}
		if u := expect(t, w, slipstream.OpPut, "vpcB.b2", "2"); rev(u) != rb {
			t.Fatalf("revision %d, want %d", rev(u), rb)
		}
		w.none(t, 500*time.Millisecond)
		if n := e.streamInfo(t, b.Name()).State.Consumers; n != 1 {
			t.Fatalf("%d consumers for a two-prefix resume, want 1", n)
		}
	})
	t.Run("watch_all_from_replays_only_the_delta", func(t *testing.T) {
		b, _ := open(t, 1)
		put(t, b, "node.a", "1")
		cursor := put(t, b, "node.b", "1")
		put(t, b, "node.c", "1")
		put(t, b, "node.a", "2")
		w := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(cursor))
		if u := expect(t, w, slipstream.OpPut, "node.c", "1"); rev(u) != cursor+1 {
			t.Fatalf("first resumed revision %d, want %d", rev(u), cursor+1)
		}
		expect(t, w, slipstream.OpPut, "node.a", "2")
		w.none(t, 300*time.Millisecond)
	})
	t.Run("watch_prefix_from_replays_only_the_delta", func(t *testing.T) {
		b, _ := open(t, 1)
		put(t, b, "node.a", "1")
		cursor := put(t, b, "other.z", "1")
		put(t, b, "node.b", "1")
		w := startWatch(t, b, slipstream.Prefix("node."), slipstream.CursorFromUint64(cursor))
		expect(t, w, slipstream.OpPut, "node.b", "1")
		w.none(t, 300*time.Millisecond)
	})
	t.Run("watch_prefix_relist_covers_seed_then_watch_gap", func(t *testing.T) {
		b, done := open(t, 1)
		put(t, b, "blackhole.1", "1")
		var maxRev uint64
		for _, en := range scan(t, b, "blackhole.") {
			maxRev = max(maxRev, rev(slipstream.Update{Version: en.Version}))
		}
		put(t, b, "blackhole.2", "2") // written between the scan and the watch
		w := startWatch(t, b, slipstream.Prefix("blackhole."), slipstream.Cursor{})
		expect(t, w, slipstream.OpPut, "blackhole.1", "1")
		expect(t, w, slipstream.OpPut, "blackhole.2", "2")
		waitClosed(t, done, "initial values")
		put(t, b, "blackhole.3", "3")
		expect(t, w, slipstream.OpPut, "blackhole.3", "3")
		w2 := startWatch(t, b, slipstream.Prefix("blackhole."), slipstream.CursorFromUint64(maxRev))
		expect(t, w2, slipstream.OpPut, "blackhole.2", "2")
	})
	t.Run("watch_from_compacted_cursor_does_not_spuriously_fail", func(t *testing.T) {
		b, _ := open(t, 1)
		for i := range 6 {
			put(t, b, "k", keyN("v", i))
		}
		w := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(1))
		// History 1: revisions 2–5 were overwritten, so the first sequence
		// (6) is past the resume start (2). Nothing was lost here (k's
		// newest value would be delivered), but the check cannot know
		// that: the documented, safe false positive.
		if err := w.waitResult(t, 2*time.Second); !errors.Is(err, slipstream.ErrCursorExpired) {
			t.Fatalf("Watch after a compacted cursor = %v, want ErrCursorExpired", err)
		}
	})
	t.Run("dropping_receiver_stops_watch_task", func(t *testing.T) {
		b, done := open(t, 1)
		for i := range 20 {
			put(t, b, keyN("k", i), "v")
		}
		wctx, cancel := context.WithCancel(ctx)
		out := make(chan slipstream.Update) // nobody reads: the watch blocks on send
		result := make(chan error, 1)
		go func() { result <- b.Watch(wctx, slipstream.AllKeys(), slipstream.Cursor{}, out) }()
		// The watch is blocked on its first send once its consumer exists
		// and has delivered (nobody reads out).
		poll.True(t, 5*time.Second, "the watch's consumer delivered", func() bool {
			info := e.streamInfo(t, b.Name())
			if info.State.Consumers != 1 {
				return false
			}
			for ci := range e.stream(t, b.Name()).ListConsumers(ctx).Info() {
				return ci.Delivered.Stream > 0
			}
			return false
		})
		cancel()
		select {
		case err := <-result:
			if err != nil {
				t.Fatalf("Watch after cancel = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Watch did not return within 5s of cancel")
		}
		_ = done
		// The consumer goes with it.
		poll.True(t, 5*time.Second, "consumer removed", func() bool {
			return e.streamInfo(t, b.Name()).State.Consumers == 0
		})
	})
	t.Run("empty_prefixes_watch_nothing", func(t *testing.T) {
		b, _ := open(t, 1)
		put(t, b, "k", "v")
		for _, c := range []slipstream.Cursor{{}, slipstream.CursorFromUint64(1)} {
			w := startWatch(t, b, slipstream.Prefixes(), c)
			if err := w.waitResult(t, time.Second); err != nil {
				t.Fatalf("Watch(Prefixes()) = %v, want nil at once", err)
			}
			select {
			case u := <-w.updates:
				t.Fatalf("empty scope delivered %+v", u)
			default:
			}
		}
		if n := e.streamInfo(t, b.Name()).State.Consumers; n != 0 {
			t.Fatalf("%d consumers created for an empty scope", n)
		}
	})
	t.Run("non_token_aligned_prefix_is_rejected", func(t *testing.T) {
		b, _ := open(t, 1)
		for _, s := range []slipstream.Scope{slipstream.Prefix("node"), slipstream.Prefixes("a.", "b")} {
			w := startWatch(t, b, s, slipstream.Cursor{})
			if err := w.waitResult(t, time.Second); !errors.Is(err, slipstream.ErrInvalidScope) {
				t.Fatalf("Watch(%s) = %v, want ErrInvalidScope", s, err)
			}
		}
	})
	t.Run("max_cursor_is_refused", func(t *testing.T) {
		b, _ := open(t, 1)
		put(t, b, "k", "v")
		w := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(math.MaxUint64))
		err := w.waitResult(t, time.Second)
		if !errors.Is(err, slipstream.ErrCursorOverflow) || errors.Is(err, slipstream.ErrCursorExpired) {
			t.Fatalf("Watch after MaxUint64 = %v, want ErrCursorOverflow", err)
		}
	})
	t.Run("zero_and_non_revision_cursors_state_sync", func(t *testing.T) {
		b, _ := open(t, 1)
		put(t, b, "a", "1")
		put(t, b, "b", "1")
		tenBytes, _ := slipstream.VersionFromBytes([]byte("0123456789"))
		for _, c := range []slipstream.Cursor{slipstream.CursorFromUint64(0), slipstream.CursorAt(tenBytes)} {
			w := startWatch(t, b, slipstream.AllKeys(), c)
			expect(t, w, slipstream.OpPut, "a", "1")
			expect(t, w, slipstream.OpPut, "b", "1")
			w.stop()
		}
	})
	t.Run("resume_at_head_delivers_live_only", func(t *testing.T) {
		b, done := open(t, 1)
		head := put(t, b, "a", "1")
		w := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(head))
		waitClosed(t, done, "initial values of an empty replay")
		w.none(t, 200*time.Millisecond)
		put(t, b, "b", "2")
		expect(t, w, slipstream.OpPut, "b", "2")
	})
	t.Run("closed_subscription_is_an_error", func(t *testing.T) {
		nc := e.srv.Conn(t)
		b, err := natskv.Open(ctx, nc, natskv.Config{Bucket: "closing", Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		put(t, b, "a", "1")
		w := startWatch(t, b, slipstream.AllKeys(), slipstream.Cursor{})
		expect(t, w, slipstream.OpPut, "a", "1")
		nc.Close()
		err = w.waitResult(t, 5*time.Second)
		if !errors.Is(err, slipstream.ErrWatchClosed) {
			t.Fatalf("Watch after the connection closed = %v", err)
		}
	})
}
