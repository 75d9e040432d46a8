package slipstream_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
)

// The loop's acceptance list (docs/LOOP.md), one Go test per
// scenario. Every test runs in a synctest bubble: time is virtual, and a
// goroutine leaked past Run makes synctest.Test fail.

var discard = slog.New(slog.DiscardHandler)

// newFollower returns a Follower over w that records into rec, with the
// default batching and a Filter that keeps puts.
func newFollower(w slipstream.Watcher, rec *recorder) *slipstream.Follower {
	return &slipstream.Follower{
		Watcher:       w,
		Filter:        rec.filter(keepPuts),
		Apply:         rec.Apply,
		OnApplied:     rec.OnApplied,
		MaxBatchSize:  slipstream.DefaultMaxBatchSize,
		MaxBatchDelay: slipstream.DefaultMaxBatchDelay,
		Logger:        discard,
	}
}

// running is a Run in progress on its own goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	cursor slipstream.Cursor
	err    error
}

func start(t *testing.T, f *slipstream.Follower) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.cursor, r.err = f.Run(ctx)
	}()
	return r
}

// stop shuts the run down and returns its result.
func (r *running) stop() (slipstream.Cursor, error) {
	r.cancel()
	<-r.done
	return r.cursor, r.err
}

// wait returns the result of a run that ends by itself.
func (r *running) wait() (slipstream.Cursor, error) {
	<-r.done
	r.cancel()
	return r.cursor, r.err
}

func mustRun(t *testing.T, f *slipstream.Follower) slipstream.Cursor {
	t.Helper()
	c, err := f.Run(t.Context())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return c
}

func wantCursor(t *testing.T, what string, got slipstream.Cursor, want uint64) {
	t.Helper()
	if got.IsNone() || rank(t, got) != want {
		t.Fatalf("%s = %v, want %d", what, got, want)
	}
}

func wantValues(t *testing.T, rec *recorder, want ...string) {
	t.Helper()
	if got := rec.values(); !slices.Equal(got, want) {
		t.Fatalf("applied values = %q, want %q", got, want)
	}
}

func wantIdle(t *testing.T, w *scriptedWatcher) {
	t.Helper()
	if n := w.active.Load(); n != 0 {
		t.Fatalf("%d Watch calls still running after Run returned", n)
	}
}

// #1
func TestFlushOnChannelClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1), put("b", "2", 2), put("c", "3", 3)}}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.MaxBatchDelay = time.Hour // only the close can flush
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 3)
		wantValues(t, rec, "1", "2", "3")
		wantCursor(t, "last OnApplied", rec.lastApplied(), 3)
		wantIdle(t, w)
	})
}

// #2
func TestFlushOnWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1), put("b", "2", 2)}, hold: true}
		rec := &recorder{}
		r := start(t, newFollower(w, rec))
		synctest.Wait()
		if n := rec.applyCalls(); n != 0 {
			t.Fatalf("flushed before the window elapsed: %d Apply calls", n)
		}
		time.Sleep(slipstream.DefaultMaxBatchDelay - time.Nanosecond)
		synctest.Wait()
		if n := rec.applyCalls(); n != 0 {
			t.Fatalf("flushed %v before the window elapsed", time.Nanosecond)
		}
		time.Sleep(40 * time.Millisecond)
		synctest.Wait()
		wantValues(t, rec, "1", "2")
		wantCursor(t, "OnApplied after the window", rec.lastApplied(), 2)
		c, err := r.stop()
		if err != nil {
			t.Fatal(err)
		}
		wantCursor(t, "returned cursor", c, 2)
	})
}

// #3
func TestFlushOnMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ups []slipstream.Update
		for i := range uint64(4) {
			ups = append(ups, put("k"+string(rune('1'+i)), "v", i+1))
		}
		w := &scriptedWatcher{full: ups, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.MaxBatchSize = 4
		f.MaxBatchDelay = time.Hour
		r := start(t, f)
		synctest.Wait() // no virtual time passes: only the max can flush
		if got := rec.batchSizes(); !slices.Equal(got, []int{4}) {
			t.Fatalf("batch sizes = %v, want [4] (a full batch flushes on max, not on the window)", got)
		}
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// #4
func TestFlushOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1), put("b", "2", 2)}, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.MaxBatchDelay = time.Hour
		r := start(t, f)
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := rec.applyCalls(); n != 0 {
			t.Fatalf("%d Apply calls before shutdown with a 1 h window", n)
		}
		c, err := r.stop()
		if err != nil {
			t.Fatal(err)
		}
		wantCursor(t, "returned cursor", c, 2)
		wantCursor(t, "OnApplied", rec.lastApplied(), 2)
		wantValues(t, rec, "1", "2")
		wantIdle(t, w)
	})
}

// #5
func TestCursorAdvancesOnlyAfterApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ups []slipstream.Update
		for i := range uint64(4) {
			ups = append(ups, put("k"+string(rune('1'+i)), "v", i+1))
		}
		w := &scriptedWatcher{full: ups, hold: true}
		var published uint64 // written by OnApplied, read by Apply; both on the loop goroutine
		var seen []uint64
		f := &slipstream.Follower{
			Watcher: w,
			Apply: func(context.Context, []slipstream.Update) error {
				seen = append(seen, published)
				return nil
			},
			OnApplied:     func(c slipstream.Cursor) { published = rank(t, c) },
			MaxBatchSize:  2,
			MaxBatchDelay: time.Hour,
			Logger:        discard,
		}
		r := start(t, f)
		time.Sleep(time.Millisecond)
		c, err := r.stop()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seen, []uint64{0, 2}) {
			t.Fatalf("cursor visible inside Apply = %v, want [0 2] (the previous flush's, never the current batch's)", seen)
		}
		if published != 4 {
			t.Fatalf("final OnApplied = %d, want 4", published)
		}
		wantCursor(t, "returned cursor", c, 4)
	})
}

// #6
func TestCorruptParseEntriesAdvanceCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 5), put("b", "2", 6), put("c", "3", 7)}}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Filter = func(slipstream.Update) bool { return false }
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 7)
		if n := rec.applyCalls(); n != 0 {
			t.Fatalf("Apply called %d times for an all-rejected batch", n)
		}
		wantCursor(t, "OnApplied", rec.lastApplied(), 7)
	})
}

// #6, window variant: a run of rejected updates arms the window too, so the
// cursor advances within MaxBatchDelay even though nothing reaches Apply.
func TestRejectedUpdatesArmTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 5), put("b", "2", 6), put("c", "3", 7)}, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Filter = func(slipstream.Update) bool { return false }
		r := start(t, f)
		time.Sleep(2 * slipstream.DefaultMaxBatchDelay)
		synctest.Wait()
		wantCursor(t, "OnApplied after the window", rec.lastApplied(), 7)
		if rec.applyCalls() != 0 {
			t.Fatal("Apply called for rejected updates")
		}
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// #7
func TestUnknownVersionUpdateDoesNotMoveOrClobberCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		unknown := slipstream.Put("b", []byte("2"), slipstream.Version{})
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 5), unknown}}
		rec := &recorder{}
		c := mustRun(t, newFollower(w, rec))
		wantCursor(t, "returned cursor", c, 5)
		wantValues(t, rec, "1", "2")
	})
}

// #8
func TestCursorExpiredFallsBackToFullWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{
			full:        []slipstream.Update{put("a", "1", 10), put("b", "2", 11)},
			fromExpires: true,
		}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Resume = cur(5)
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 11)
		wantValues(t, rec, "1", "2")
		calls := w.Calls()
		if len(calls) != 2 || rank(t, calls[0].after) != 5 || !calls[1].after.IsNone() {
			t.Fatalf("watch calls = %+v, want resume after 5 then a state-sync watch", calls)
		}
	})
}

// #9
func TestCursorExpiredResyncDeletesStaleKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, cur(2), put("node.a", "1", 1), put("node.b", "2", 2))
		w := &scriptedWatcher{full: []slipstream.Update{put("node.a", "1b", 10)}, fromExpires: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Filter = rec.filter(func(slipstream.Update) bool { return true })
		f.Resume = store.Cursor()
		f.Store = store
		f.Lister = &prefixLister{live: []string{"node.a"}}
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 10)
		var seen []string
		for _, u := range rec.filtered {
			seen = append(seen, u.Op.String()+" "+u.Key)
		}
		if want := []string{"delete node.b", "put node.a"}; !slices.Equal(seen, want) {
			t.Fatalf("Filter saw %q, want %q (synthetic delete before the re-list put)", seen, want)
		}
		if !rec.filtered[0].Version.IsUnknown() {
			t.Fatalf("synthetic delete has version %v, want unknown", rec.filtered[0].Version)
		}
		wantCursor(t, "store cursor", store.Cursor(), 10)
		if got := store.Values(); len(got) != 1 || got["node.a"] != "1b" {
			t.Fatalf("fold = %v, want {node.a: 1b}", got)
		}
	})
}

// #10
func TestCursorExpiredResyncRespectsScope(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, cur(2), put("node.b", "2", 1), put("other.z", "9", 2))
		w := &scriptedWatcher{fromExpires: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Scope = slipstream.Prefix("node.")
		f.Resume = store.Cursor()
		f.Store = store
		f.Lister = &prefixLister{}
		c := mustRun(t, f)
		wantCursor(t, "returned cursor (deletes-only flush)", c, 2)
		wantCursor(t, "store cursor", store.Cursor(), 2)
		got := store.Values()
		if _, ok := got["node.b"]; ok {
			t.Fatal("in-scope stale key node.b survived the resync")
		}
		if got["other.z"] != "9" {
			t.Fatalf("out-of-scope key other.z = %q, want 9", got["other.z"])
		}
		if len(rec.onApplied()) != 0 {
			t.Fatalf("OnApplied called %v for a deletes-only flush", rec.onApplied())
		}
	})
}

// #11
func TestPrefixesScopeDispatchesFullWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a.x", "1", 1), put("b.y", "2", 2)}}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Scope = slipstream.Prefixes("a.", "b.")
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 2)
		wantValues(t, rec, "1", "2")
		calls := w.Calls()
		if len(calls) != 1 || !calls[0].after.IsNone() || !slices.Equal(calls[0].scope.List(), []string{"a.", "b."}) || calls[0].scope.IsAll() {
			t.Fatalf("watch calls = %+v, want one state-sync watch of prefixes [a. b.]", calls)
		}
	})
}

// #12
func TestPrefixesScopeExpiredResumeFallsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a.x", "1", 7)}, fromExpires: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Scope = slipstream.Prefixes("a.")
		f.Resume = cur(3)
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 7)
		wantValues(t, rec, "1")
		calls := w.Calls()
		if len(calls) != 2 || rank(t, calls[0].after) != 3 || !calls[1].after.IsNone() {
			t.Fatalf("watch calls = %+v, want resume after 3 then a state-sync watch", calls)
		}
		for _, c := range calls {
			if !slices.Equal(c.scope.List(), []string{"a."}) {
				t.Fatalf("watch scope = %v, want the one-consumer prefix list [a.]", c.scope)
			}
		}
	})
}

// #13 (in-memory store; TestSnapshotCheckpointMatchesAppliedCursorAppLog
// runs it on the append log).
func TestSnapshotCheckpointMatchesAppliedCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		w := &scriptedWatcher{full: []slipstream.Update{put("node.a", "1", 1), put("node.b", "2", 2)}}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Store = store
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 2)
		if store.Cursor() != c {
			t.Fatalf("store cursor %v != applied cursor %v", store.Cursor(), c)
		}
		if got := store.Values(); len(got) != 2 || got["node.a"] != "1" || got["node.b"] != "2" {
			t.Fatalf("fold = %v", got)
		}
	})
}

// #14
func TestResumeFromCursorDeliversOnlyDelta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{
			full: []slipstream.Update{put("full.x", "FULL", 1)},
			from: []slipstream.Update{put("node.c", "3", 10), put("node.d", "4", 11)},
		}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Resume = cur(9)
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 11)
		wantValues(t, rec, "3", "4")
		if calls := w.Calls(); len(calls) != 1 || rank(t, calls[0].after) != 9 {
			t.Fatalf("watch calls = %+v, want one resume after 9", calls)
		}
	})
}

// #15
func TestPrefixScopeAppliesDeliveredUpdates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("node.a", "1", 1), put("node.b", "2", 2)}}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Scope = slipstream.Prefix("node.")
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 2)
		wantValues(t, rec, "1", "2")
		if calls := w.Calls(); len(calls) != 1 || calls[0].scope.IsAll() || !slices.Equal(calls[0].scope.List(), []string{"node."}) {
			t.Fatalf("watch calls = %+v, want one watch of prefix node.", calls)
		}
	})
}

// #16
func TestPrefixResumeFromCursorDeliversOnlyDelta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{
			full: []slipstream.Update{put("node.x", "FULL", 1)},
			from: []slipstream.Update{put("node.c", "3", 10), put("node.d", "4", 11)},
		}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Scope = slipstream.Prefix("node.")
		f.Resume = cur(9)
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 11)
		wantValues(t, rec, "3", "4")
		if calls := w.Calls(); len(calls) != 1 || rank(t, calls[0].after) != 9 || calls[0].scope.IsAll() {
			t.Fatalf("watch calls = %+v, want one prefix resume after 9", calls)
		}
	})
}

// #17
func TestPrefixCursorExpiredFallsBackToFullPrefixWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{
			full:        []slipstream.Update{put("node.a", "1", 10), put("node.b", "2", 11)},
			fromExpires: true,
		}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Scope = slipstream.Prefix("node.")
		f.Resume = cur(5)
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 11)
		wantValues(t, rec, "1", "2")
		calls := w.Calls()
		if len(calls) != 2 || !calls[1].after.IsNone() || !slices.Equal(calls[1].scope.List(), []string{"node."}) {
			t.Fatalf("watch calls = %+v, want the fallback on the prefix scope", calls)
		}
	})
}

// #18
func TestWatchTaskErrorPropagates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		_, err := newFollower(errorWatcher{}, rec).Run(t.Context())
		if !errors.Is(err, slipstream.ErrWatch) || !errors.Is(err, errInjectedWatch) {
			t.Fatalf("Run = %v, want ErrWatch carrying the injected cause", err)
		}
	})
}

// #19
func TestMixedParseAdvancesCursorOverRejectedEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("keep.a", "1", 5), put("skip.b", "2", 6), put("keep.c", "3", 7)}}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Filter = func(u slipstream.Update) bool { return u.Op == slipstream.OpPut && strings.HasPrefix(u.Key, "keep.") }
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 7)
		wantValues(t, rec, "1", "3")
		wantCursor(t, "OnApplied", rec.lastApplied(), 7)
	})
}

// #20
func TestShutdownWithNoPendingBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{hold: true}
		rec := &recorder{}
		r := start(t, newFollower(w, rec))
		time.Sleep(time.Millisecond)
		c, err := r.stop()
		if err != nil {
			t.Fatal(err)
		}
		if !c.IsNone() {
			t.Fatalf("returned cursor = %v, want none", c)
		}
		if rec.applyCalls() != 0 || len(rec.onApplied()) != 0 {
			t.Fatalf("Apply called %d times, OnApplied %v; want neither", rec.applyCalls(), rec.onApplied())
		}
		wantIdle(t, w)
	})
}

// #21
func TestExportRequestFlushesPendingBatchFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		testExportFlushesPending(t, newMemStore(), func(t *testing.T, dir string) (slipstream.Cursor, map[string]string) {
			s := loadExport(t, dir)
			return s.Cursor(), s.Values()
		})
	})
}

// testExportFlushesPending runs #21 over store; reopen reads an export back.
func testExportFlushesPending(t *testing.T, store slipstream.Store, reopen func(*testing.T, string) (slipstream.Cursor, map[string]string)) {
	w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1), put("b", "2", 2)}, hold: true}
	rec := &recorder{}
	f := newFollower(w, rec)
	f.Store = store
	f.MaxBatchDelay = time.Hour
	r := start(t, f)
	time.Sleep(time.Millisecond)
	synctest.Wait()
	if rec.applyCalls() != 0 {
		t.Fatal("flushed before the export")
	}
	dir := filepath.Join(t.TempDir(), "artifact")
	exp, err := f.Export(t.Context(), dir)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	wantCursor(t, "export cursor", exp.Cursor, 2)
	c, entries := reopen(t, dir)
	wantCursor(t, "reopened export cursor", c, 2)
	if len(entries) != 2 || entries["a"] != "1" || entries["b"] != "2" {
		t.Fatalf("reopened export = %v, want {a:1 b:2}", entries)
	}
	if _, err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

// #22
func TestExportWithEmptyPendingBatchSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1), put("b", "2", 2)}, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Store = store
		r := start(t, f)
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		wantCursor(t, "OnApplied before export", rec.lastApplied(), 2)
		applies := store.Applies()
		dir := filepath.Join(t.TempDir(), "artifact")
		exp, err := f.Export(t.Context(), dir)
		if err != nil {
			t.Fatalf("Export with nothing pending: %v", err)
		}
		wantCursor(t, "export cursor", exp.Cursor, 2)
		if store.Applies() != applies {
			t.Fatalf("the pre-export flush of an empty batch called Store.Apply")
		}
		s := loadExport(t, dir)
		wantCursor(t, "reopened export cursor", s.Cursor(), 2)
		if got := s.Values(); got["a"] != "1" || got["b"] != "2" {
			t.Fatalf("reopened export = %v", got)
		}
		c, err := r.stop()
		if err != nil {
			t.Fatal(err)
		}
		wantCursor(t, "returned cursor", c, 2)
	})
}

// #23
func TestExportWithoutStoreRepliesError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1)}, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		r := start(t, f)
		time.Sleep(time.Millisecond)
		dir := filepath.Join(t.TempDir(), "never-created")
		if _, err := f.Export(t.Context(), dir); !errors.Is(err, slipstream.ErrUnsupported) {
			t.Fatalf("Export without a store = %v, want ErrUnsupported", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("export destination was touched: %v", err)
		}
		c, err := r.stop()
		if err != nil {
			t.Fatal(err)
		}
		wantCursor(t, "returned cursor", c, 1)
	})
}

// #24
func TestExportErrorDoesNotKillWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		occupied := filepath.Join(t.TempDir(), "occupied")
		if err := os.MkdirAll(occupied, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(occupied, "stray"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1)}, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Store = newMemStore()
		r := start(t, f)
		time.Sleep(time.Millisecond)
		if _, err := f.Export(t.Context(), occupied); !errors.Is(err, slipstream.ErrArtifactInvalid) {
			t.Fatalf("Export into a non-empty directory = %v, want ErrArtifactInvalid", err)
		}
		c, err := r.stop()
		if err != nil {
			t.Fatalf("Run after a failed export: %v", err)
		}
		wantCursor(t, "returned cursor", c, 1)
		wantCursor(t, "OnApplied", rec.lastApplied(), 1)
	})
}

// #25. An Export abandoned while queued (its ctx cancelled) and an Export
// after Run returned. Neither disturbs the
// loop, which keeps flushing and shuts down cleanly.
func TestExportSenderDroppedDisarmsChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1)}, hold: true}
		rec := &recorder{}
		gate := make(chan struct{})
		f := newFollower(w, rec)
		f.Store = newMemStore()
		f.Apply = func(ctx context.Context, batch []slipstream.Update) error {
			<-gate // hold the loop so the export request stays queued
			return rec.Apply(ctx, batch)
		}
		r := start(t, f)
		time.Sleep(50 * time.Millisecond) // the window flush is now blocked in Apply
		synctest.Wait()

		ectx, ecancel := context.WithCancel(t.Context())
		exportErr := make(chan error, 1)
		go func() {
			_, err := f.Export(ectx, filepath.Join(t.TempDir(), "abandoned"))
			exportErr <- err
		}()
		synctest.Wait()
		ecancel()
		if err := <-exportErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("abandoned Export = %v, want context.Canceled", err)
		}
		close(gate)
		synctest.Wait()
		wantCursor(t, "OnApplied after the abandoned export", rec.lastApplied(), 1)
		c, err := r.stop()
		if err != nil {
			t.Fatal(err)
		}
		wantCursor(t, "returned cursor", c, 1)
		if _, err := f.Export(t.Context(), t.TempDir()); !errors.Is(err, slipstream.ErrNotRunning) {
			t.Fatalf("Export after Run returned = %v, want ErrNotRunning", err)
		}
	})
}

// #26 (in-memory store; the append-log twin forces a compaction per flush).
func TestSnapshotCompactionFiresAndStaysConsistent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		testOneUpdatePerFlush(t, store)
		wantCursor(t, "store cursor", store.Cursor(), 4)
		if got := store.Values(); len(got) != 2 || got["node.a"] != "4" || got["node.b"] != "3" {
			t.Fatalf("fold = %v, want {node.a:4 node.b:3}", got)
		}
		if store.Applies() != 4 {
			t.Fatalf("%d store applies, want one per update (4)", store.Applies())
		}
	})
}

// testOneUpdatePerFlush runs a1,a2,b3,a4 through store with max 1.
func testOneUpdatePerFlush(t *testing.T, store slipstream.Store) {
	w := &scriptedWatcher{full: []slipstream.Update{
		put("node.a", "1", 1), put("node.a", "2", 2), put("node.b", "3", 3), put("node.a", "4", 4),
	}}
	rec := &recorder{}
	f := newFollower(w, rec)
	f.Store = store
	f.MaxBatchSize = 1
	f.MaxBatchDelay = time.Hour
	c := mustRun(t, f)
	wantCursor(t, "returned cursor", c, 4)
	if got := store.Cursor(); got != c {
		t.Fatalf("store cursor %v != returned %v", got, c)
	}
}

// #27 (in-memory store; the append-log twin reopens the file).
func TestTransientStoreFailureNeverLeavesACursorGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := newMemStore()
		testTransientStoreFailure(t, failFirstApply(inner))
		wantCursor(t, "store cursor", inner.Cursor(), 2)
		if got := inner.Values(); got["node.a"] != "1" || got["node.b"] != "2" {
			t.Fatalf("fold = %v: the failed batch was dropped behind an advancing cursor", got)
		}
	})
}

func testTransientStoreFailure(t *testing.T, store *hookStore) {
	w := &scriptedWatcher{full: []slipstream.Update{put("node.a", "1", 1), put("node.b", "2", 2)}, hold: true}
	rec := &recorder{}
	f := newFollower(w, rec)
	f.Store = store
	f.MaxBatchSize = 1
	f.MaxBatchDelay = time.Millisecond
	r := start(t, f)
	time.Sleep(50 * time.Millisecond)
	c, err := r.stop()
	if err != nil {
		t.Fatal(err)
	}
	wantCursor(t, "returned cursor", c, 2)
	if n := store.calls.Load(); n != 2 {
		t.Fatalf("%d store applies, want 2 (one failed, one cumulative)", n)
	}
}

// #28
func TestResyncListingFailureIsFatalNotDegraded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, cur(1), put("node.a", "1", 1))
		w := &scriptedWatcher{fromExpires: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Resume = store.Cursor()
		f.Store = store
		f.Lister = failingLister{}
		_, err := f.Run(t.Context())
		if !errors.Is(err, slipstream.ErrResync) || !errors.Is(err, slipstream.ErrWatch) || !errors.Is(err, errInjectedListing) {
			t.Fatalf("Run = %v, want an ErrResync wrapping the lister's error", err)
		}
		if len(w.Calls()) != 1 {
			t.Fatalf("watch calls = %+v: the fallback watch started after a failed resync", w.Calls())
		}
		if got := store.Values(); got["node.a"] != "1" {
			t.Fatalf("fold changed after a failed resync: %v", got)
		}
	})
}
