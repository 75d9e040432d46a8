package slipstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
)

// Rules of docs/LOOP.md beyond the acceptance list of follower_test.go,
// plus the Go-specific API surface.

func TestStoreFailStopAfterConsecutiveFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ups []slipstream.Update
		for i := range uint64(20) {
			ups = append(ups, put(fmt.Sprintf("k%02d", i), "v", i+1))
		}
		w := &scriptedWatcher{full: ups, hold: true}
		inner := newMemStore()
		store := &hookStore{Store: inner, apply: func([]slipstream.Update, slipstream.Cursor) error { return errInjectedStore }}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Store = store
		f.MaxBatchSize = 1
		f.MaxBatchDelay = time.Hour
		_, err := f.Run(t.Context())
		if !errors.Is(err, slipstream.ErrStoreFailed) || !errors.Is(err, slipstream.ErrWatch) || !errors.Is(err, errInjectedStore) {
			t.Fatalf("Run = %v, want an ErrStoreFailed fail-stop wrapping the store's error", err)
		}
		// The documented number, not the symbol: changing MaxStoreFailures
		// changes the promise.
		if n := store.calls.Load(); n != 16 || slipstream.MaxStoreFailures != 16 {
			t.Fatalf("%d store applies (MaxStoreFailures %d), want exactly the documented 16", n, slipstream.MaxStoreFailures)
		}
		if !inner.Cursor().IsNone() {
			t.Fatalf("store cursor moved to %v although every apply failed", inner.Cursor())
		}
		wantIdle(t, w)
	})
}

func TestStoreFailStreakResetsOnSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 40
		var ups []slipstream.Update
		for i := range uint64(n) {
			ups = append(ups, put(fmt.Sprintf("k%02d", i), "v", i+1))
		}
		w := &scriptedWatcher{full: ups}
		inner := newMemStore()
		var calls atomic.Int32
		store := &hookStore{Store: inner}
		store.apply = func(b []slipstream.Update, c slipstream.Cursor) error {
			// Fail calls 1–15 and 17–31: two streaks of 15, never 16 in a row.
			if k := calls.Add(1); k != 16 && k < 32 {
				return errInjectedStore
			}
			return inner.Apply(b, c)
		}
		f := newFollower(w, &recorder{})
		f.Store = store
		f.MaxBatchSize = 1
		f.MaxBatchDelay = time.Hour
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, n)
		wantCursor(t, "store cursor", inner.Cursor(), n)
		if got := len(inner.Values()); got != n {
			t.Fatalf("fold holds %d keys, want all %d (re-queued batches committed cumulatively)", got, n)
		}
	})
}

func TestResyncFoldScanFailureIsFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := seeded(t, cur(2), put("node.a", "1", 1), put("node.b", "2", 2))
		store := &hookStore{Store: inner, forEach: func(string, func(slipstream.Entry) error) error {
			return errInjectedScan
		}}
		w := &scriptedWatcher{full: []slipstream.Update{put("node.a", "x", 10)}, fromExpires: true}
		f := newFollower(w, &recorder{})
		f.Resume = inner.Cursor()
		f.Store = store
		f.Lister = &prefixLister{live: []string{"node.a"}}
		_, err := f.Run(t.Context())
		if !errors.Is(err, slipstream.ErrResync) || !errors.Is(err, errInjectedScan) {
			t.Fatalf("Run = %v, want a fatal ErrResync wrapping the fold-scan error", err)
		}
		if calls := w.Calls(); len(calls) != 1 {
			t.Fatalf("watch calls = %+v: the fallback watch started after a failed resync", calls)
		}
		wantCursor(t, "store cursor", inner.Cursor(), 2)
		if got := inner.Values(); len(got) != 2 {
			t.Fatalf("fold changed after a failed resync: %v", got)
		}
		wantIdle(t, w)
	})
}

func TestStorePanicIsFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1)}, hold: true}
		store := &hookStore{Store: newMemStore(), apply: func([]slipstream.Update, slipstream.Cursor) error {
			panic("disk on fire")
		}}
		f := newFollower(w, &recorder{})
		f.Store = store
		f.MaxBatchSize = 1
		_, err := f.Run(t.Context())
		if pe, ok := errors.AsType[*slipstream.PanicError](err); !ok || !errors.Is(err, slipstream.ErrWatch) ||
			pe.Op != "store apply" || pe.Value != "disk on fire" {
			t.Fatalf("Run = %v, want a fatal PanicError from the store apply", err)
		}
		wantIdle(t, w)
	})
}

func TestExportPanicIsFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1)}, hold: true}
		store := &hookStore{Store: newMemStore(), export: func(string) (slipstream.Export, error) {
			panic("export on fire")
		}}
		f := newFollower(w, &recorder{})
		f.Store = store
		r := start(t, f)
		time.Sleep(time.Millisecond)
		_, err := f.Export(t.Context(), t.TempDir())
		if pe, ok := errors.AsType[*slipstream.PanicError](err); !ok || pe.Op != "store export" || pe.Value != "export on fire" {
			t.Fatalf("Export = %v, want the export's PanicError", err)
		}
		_, err = r.wait() // Run ends by itself
		if pe, ok := errors.AsType[*slipstream.PanicError](err); !ok || !errors.Is(err, slipstream.ErrWatch) || pe.Op != "store export" {
			t.Fatalf("Run = %v, want a fatal export PanicError", err)
		}
		wantIdle(t, w)
	})
}

func TestShutdownOutranksReadyUpdate(t *testing.T) {
	// Shutdown is signalled inside the first or second Apply, while nine or
	// eight updates sit ready in the buffer; none of them may be taken.
	for _, cancelAt := range []int{1, 2} {
		t.Run(fmt.Sprintf("cancel in apply %d", cancelAt), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ups []slipstream.Update
				for i := range uint64(10) {
					ups = append(ups, put(fmt.Sprintf("k%d", i), "v", i+1))
				}
				w := &scriptedWatcher{full: ups, hold: true}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				applies := 0
				f := &slipstream.Follower{
					Watcher: w,
					Apply: func(context.Context, []slipstream.Update) error {
						applies++
						synctest.Wait() // the watcher has buffered every update
						if applies == cancelAt {
							cancel() // shutdown now competes with ready updates
						}
						return nil
					},
					MaxBatchSize:  1,
					MaxBatchDelay: time.Hour,
					Logger:        discard,
				}
				c, err := f.Run(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if applies != cancelAt {
					t.Fatalf("Apply called %d times: updates were taken after shutdown was signalled", applies)
				}
				wantCursor(t, "returned cursor", c, uint64(cancelAt))
			})
		})
	}
}

func TestRevisionZeroAndUnknownVersionsNeverMoveCursor(t *testing.T) {
	unknown := slipstream.Version{}
	t.Run("alone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := &scriptedWatcher{full: []slipstream.Update{
				put("z", "0", 0),
				slipstream.Put("u", []byte("u"), unknown),
				slipstream.Delete("d", unknown),
			}}
			rec := &recorder{}
			f := newFollower(w, rec)
			f.Filter = nil // apply everything
			store := newMemStore()
			f.Store = store
			c := mustRun(t, f)
			if !c.IsNone() {
				t.Fatalf("returned cursor = %v, want none", c)
			}
			if len(rec.onApplied()) != 0 {
				t.Fatalf("OnApplied = %v for updates that cannot position a cursor", rec.onApplied())
			}
			if !store.Cursor().IsNone() {
				t.Fatalf("store cursor = %v, want none", store.Cursor())
			}
			if got := store.Values(); got["z"] != "0" || got["u"] != "u" {
				t.Fatalf("fold = %v: unpositioned updates must still be folded", got)
			}
			if len(rec.values()) != 3 {
				t.Fatalf("applied %q, want all three updates", rec.values())
			}
		})
	})
	t.Run("after a positioned update", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := &scriptedWatcher{full: []slipstream.Update{
				put("a", "5", 5),
				put("z", "0", 0),
				slipstream.Put("u", []byte("u"), unknown),
			}}
			rec := &recorder{}
			c := mustRun(t, newFollower(w, rec))
			wantCursor(t, "returned cursor", c, 5)
			wantValues(t, rec, "5", "0", "u")
		})
	})
	t.Run("resume cursor kept", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := &scriptedWatcher{from: []slipstream.Update{put("z", "0", 0)}}
			rec := &recorder{}
			f := newFollower(w, rec)
			f.Resume = cur(7)
			c := mustRun(t, f)
			wantCursor(t, "returned cursor", c, 7)
		})
	})
}

var errApply = errors.New("injected apply failure")

func TestApplyErrorStopsRunWithoutAdvancing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, cur(3), put("a", "1", 3))
		w := &scriptedWatcher{from: []slipstream.Update{put("b", "2", 4), put("c", "3", 5)}, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Resume = store.Cursor()
		f.Store = store
		f.Apply = func(context.Context, []slipstream.Update) error { return errApply }
		c, err := f.Run(t.Context())
		if !errors.Is(err, errApply) {
			t.Fatalf("Run = %v, want the Apply error", err)
		}
		wantCursor(t, "returned cursor", c, 3)
		wantCursor(t, "store cursor", store.Cursor(), 3)
		if got := store.Values(); len(got) != 1 {
			t.Fatalf("fold = %v: the failed batch reached the store", got)
		}
		if store.Applies() != 1 { // the seed's
			t.Fatal("Store.Apply called for a batch whose Apply failed")
		}
		if len(rec.onApplied()) != 0 {
			t.Fatalf("OnApplied = %v after a failed Apply", rec.onApplied())
		}
		wantIdle(t, w)
	})
}

func TestApplyPanicPropagatesAfterWatchStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1)}, hold: true}
		f := newFollower(w, &recorder{})
		f.Store = store
		f.MaxBatchSize = 1
		f.Apply = func(context.Context, []slipstream.Update) error { panic("consumer bug") }
		func() {
			defer func() {
				r := recover()
				if r != "consumer bug" {
					t.Fatalf("recovered %v, want the Apply panic", r)
				}
				// Run's deferred cleanup ran during the unwinding.
				wantIdle(t, w)
			}()
			f.Run(t.Context())
			t.Fatal("Run returned instead of panicking")
		}()
		if !store.Cursor().IsNone() || store.Applies() != 0 {
			t.Fatalf("the panicking batch reached the store (cursor %v)", store.Cursor())
		}
		// The Follower is usable again.
		f.Apply = (&recorder{}).Apply
		w.hold = false
		wantCursor(t, "cursor of the next Run", mustRun(t, f), 1)
	})
}

// countingWatcher counts Watch calls and delivers nothing.
type countingWatcher struct{ calls atomic.Int32 }

func (w *countingWatcher) Watch(context.Context, slipstream.Scope, slipstream.Cursor, chan<- slipstream.Update) error {
	w.calls.Add(1)
	return nil
}

func TestInvalidConfigRefusedBeforeWatching(t *testing.T) {
	noop := func(context.Context, []slipstream.Update) error { return nil }
	cases := []struct {
		name   string
		mutate func(*slipstream.Follower)
	}{
		{"MaxBatchSize zero", func(f *slipstream.Follower) { f.MaxBatchSize = 0 }},
		{"MaxBatchSize negative", func(f *slipstream.Follower) { f.MaxBatchSize = -1 }},
		{"MaxBatchDelay negative", func(f *slipstream.Follower) { f.MaxBatchDelay = -time.Millisecond }},
		{"BufferSize negative", func(f *slipstream.Follower) { f.BufferSize = -1 }},
		{"Apply nil", func(f *slipstream.Follower) { f.Apply = nil }},
		{"Watcher nil", func(f *slipstream.Follower) { f.Watcher = nil }},
		{"prefix not token-aligned", func(f *slipstream.Follower) { f.Scope = slipstream.Prefix("node") }},
		{"one of prefixes not token-aligned", func(f *slipstream.Follower) { f.Scope = slipstream.Prefixes("a.", "b") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &countingWatcher{}
			f := slipstream.NewFollower(w, noop)
			f.Resume = cur(42)
			tc.mutate(f)
			c, err := f.Run(t.Context())
			if !errors.Is(err, slipstream.ErrInvalidConfig) {
				t.Fatalf("Run = %v, want ErrInvalidConfig", err)
			}
			if !errors.Is(f.Validate(), slipstream.ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", f.Validate())
			}
			if w.calls.Load() != 0 {
				t.Fatal("the watcher was called despite the bad configuration")
			}
			wantCursor(t, "returned cursor", c, 42)
		})
	}
	t.Run("valid", func(t *testing.T) {
		w := &countingWatcher{}
		f := slipstream.NewFollower(w, noop)
		f.Scope = slipstream.Prefixes("a.", "")
		f.MaxBatchDelay = 0
		f.Logger = discard
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Run(t.Context()); err != nil || w.calls.Load() != 1 {
			t.Fatalf("Run = %v with %d watch calls, want nil and 1", err, w.calls.Load())
		}
	})
}

// TestResyncAckBarrier proves the synthetic deletes are folded before the
// fallback watch even starts, so no re-list put can be overtaken by a late
// synthetic delete (model: model_resync_test.go).
func TestResyncAckBarrier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, cur(2), put("k.live", "1", 1), put("k.stale", "2", 2))
		var staleAtFallback, liveAtFallback atomic.Int32 // 1 present, 2 absent
		w := &scriptedWatcher{full: []slipstream.Update{put("k.live", "1b", 10)}, fromExpires: true}
		w.beforeFull = func() {
			record := func(key string, into *atomic.Int32) {
				if _, ok, _ := store.Get(key); ok {
					into.Store(1)
				} else {
					into.Store(2)
				}
			}
			record("k.stale", &staleAtFallback)
			record("k.live", &liveAtFallback)
			synctest.Wait() // give a late synthetic delete every chance to land
		}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Resume = store.Cursor()
		f.Store = store
		f.Lister = &prefixLister{live: []string{"k.live"}}
		var resyncs []slipstream.ResyncInfo
		f.OnResync = func(ri slipstream.ResyncInfo) { resyncs = append(resyncs, ri) }
		c := mustRun(t, f)
		if staleAtFallback.Load() != 2 {
			t.Fatal("the fallback watch started before the synthetic delete of k.stale was folded")
		}
		if liveAtFallback.Load() != 1 {
			t.Fatal("the resync deleted a live key")
		}
		if len(resyncs) != 1 || resyncs[0].StaleKeys != 1 || resyncs[0].LiveKeys != 1 {
			t.Fatalf("OnResync = %+v, want one resync of 1 live and 1 stale key", resyncs)
		}
		wantCursor(t, "returned cursor", c, 10)
	})
}

func TestResyncDeletesStaleKeysOnceSortedAcrossOverlappingPrefixes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := seeded(t, cur(5),
			put("a.x.1", "1", 1), put("a.y", "2", 2), put("a.z", "3", 3), put("b.q", "4", 4), put("c.out", "5", 5))
		w := &scriptedWatcher{fromExpires: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Filter = rec.filter(func(slipstream.Update) bool { return true })
		f.Scope = slipstream.Prefixes("b.", "a.", "a.x.")
		f.Resume = store.Cursor()
		f.Store = store
		f.Lister = &prefixLister{live: []string{"a.y"}}
		mustRun(t, f)
		var deleted []string
		for _, u := range rec.filtered {
			deleted = append(deleted, u.Key)
		}
		if want := []string{"a.x.1", "a.z", "b.q"}; !slices.Equal(deleted, want) {
			t.Fatalf("synthetic deletes = %q, want %q: sorted, each once", deleted, want)
		}
		if got := store.Values(); len(got) != 2 || got["c.out"] != "5" || got["a.y"] != "2" {
			t.Fatalf("fold = %v", got)
		}
	})
}

func TestExportBetweenFlushesYieldsAppliedCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ups []slipstream.Update
		for i := range uint64(5) {
			ups = append(ups, put(fmt.Sprintf("k%d", i+1), "v", i+1))
		}
		store := newMemStore()
		w := &scriptedWatcher{full: ups, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Store = store
		f.MaxBatchSize = 3
		f.MaxBatchDelay = time.Hour
		r := start(t, f)
		synctest.Wait()
		wantCursor(t, "OnApplied after the max flush", rec.lastApplied(), 3)
		dir := filepath.Join(t.TempDir(), "exp")
		exp, err := f.Export(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		wantCursor(t, "export cursor", exp.Cursor, 5)
		wantCursor(t, "OnApplied at export", rec.lastApplied(), 5)
		if got := loadExport(t, dir).Values(); len(got) != 5 {
			t.Fatalf("export holds %v, want all five keys", got)
		}
		c, err := r.stop()
		if err != nil {
			t.Fatal(err)
		}
		wantCursor(t, "returned cursor", c, 5)
	})
}

func TestExportAfterTransientStoreFailureCapturesStoreCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := newMemStore()
		var calls atomic.Int32
		store := &hookStore{Store: inner}
		store.apply = func(b []slipstream.Update, c slipstream.Cursor) error {
			if calls.Add(1) <= 2 {
				return errInjectedStore
			}
			return inner.Apply(b, c)
		}
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1)}, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Store = store
		f.MaxBatchSize = 1
		f.MaxBatchDelay = time.Hour
		r := start(t, f)
		synctest.Wait() // first store apply failed
		dir := filepath.Join(t.TempDir(), "exp")
		exp, err := f.Export(t.Context(), dir) // its pre-export flush fails again
		if err != nil {
			t.Fatal(err)
		}
		if !exp.Cursor.IsNone() {
			t.Fatalf("export cursor = %v, want the store's own (none): an artifact never claims unfolded data", exp.Cursor)
		}
		if got := loadExport(t, dir).Values(); len(got) != 0 {
			t.Fatalf("export holds %v, want nothing", got)
		}
		c, err := r.stop() // the shutdown flush commits the re-queued batch
		if err != nil {
			t.Fatal(err)
		}
		wantCursor(t, "returned cursor", c, 1)
		wantCursor(t, "store cursor", inner.Cursor(), 1)
		if got := inner.Values(); got["a"] != "1" {
			t.Fatalf("fold = %v", got)
		}
	})
}

func TestRunTwiceConcurrentlyIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1)}, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		r := start(t, f)
		synctest.Wait()
		c, err := f.Run(t.Context())
		if !errors.Is(err, slipstream.ErrInvalidConfig) || !c.IsNone() {
			t.Fatalf("second concurrent Run = %v, %v; want ErrInvalidConfig and the Resume cursor", c, err)
		}
		if n := len(w.Calls()); n != 1 {
			t.Fatalf("%d watch calls: the refused Run started a watch", n)
		}
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
		// Once the first Run returned, the Follower runs again.
		w.hold = false
		wantCursor(t, "sequential second Run", mustRun(t, f), 1)
	})
}

// panicWatcher panics inside Watch.
type panicWatcher struct{}

func (panicWatcher) Watch(context.Context, slipstream.Scope, slipstream.Cursor, chan<- slipstream.Update) error {
	panic("watcher bug")
}

func TestWatchPanicBecomesErrWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, err := newFollower(panicWatcher{}, &recorder{}).Run(t.Context())
		if pe, ok := errors.AsType[*slipstream.PanicError](err); !ok || !errors.Is(err, slipstream.ErrWatch) || pe.Op != "watch" || pe.Value != "watcher bug" {
			t.Fatalf("Run = %v, want the watcher's PanicError", err)
		}
	})
}

func TestStreamCloseFlushesBeforeSurfacingWatchError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &failAfterWatcher{ups: []slipstream.Update{put("a", "1", 1), put("b", "2", 2)}}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.MaxBatchDelay = time.Hour
		c, err := f.Run(t.Context())
		if !errors.Is(err, slipstream.ErrWatch) {
			t.Fatalf("Run = %v, want the watch error", err)
		}
		wantCursor(t, "returned cursor", c, 2)
		wantValues(t, rec, "1", "2")
		wantCursor(t, "OnApplied", rec.lastApplied(), 2)
	})
}

// failAfterWatcher delivers ups, then fails.
type failAfterWatcher struct{ ups []slipstream.Update }

func (w *failAfterWatcher) Watch(ctx context.Context, _ slipstream.Scope, _ slipstream.Cursor, out chan<- slipstream.Update) error {
	for _, u := range w.ups {
		select {
		case out <- u:
		case <-ctx.Done():
			return nil
		}
	}
	return fmt.Errorf("%w: stream lost", slipstream.ErrWatch)
}

func TestRawBoundFlushesRejectedUpdates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ups []slipstream.Update
		for i := range uint64(4) {
			ups = append(ups, put(fmt.Sprintf("skip.%d", i), "v", i+1))
		}
		store := newMemStore()
		var cursors []uint64
		w := &scriptedWatcher{full: ups, hold: true}
		rec := &recorder{}
		f := newFollower(w, rec)
		f.Filter = func(slipstream.Update) bool { return false }
		f.Store = &hookStore{Store: store, apply: func(b []slipstream.Update, c slipstream.Cursor) error {
			cursors = append(cursors, rank(t, c))
			return store.Apply(b, c)
		}}
		f.MaxBatchSize = 2
		f.MaxBatchDelay = time.Hour
		r := start(t, f)
		synctest.Wait() // no virtual time: only the raw bound can flush
		if !slices.Equal(cursors, []uint64{2, 4}) {
			t.Fatalf("store applies at %v, want [2 4]: a window of rejected updates must flush on max", cursors)
		}
		if rec.applyCalls() != 0 {
			t.Fatal("Apply called for rejected updates")
		}
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestShutdownFlushGetsLiveContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1)}, hold: true}
		var ctxErr error = errors.New("Apply not called")
		f := newFollower(w, &recorder{})
		f.MaxBatchDelay = time.Hour
		f.Apply = func(ctx context.Context, _ []slipstream.Update) error {
			ctxErr = ctx.Err()
			return nil
		}
		r := start(t, f)
		synctest.Wait()
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
		if ctxErr != nil {
			t.Fatalf("shutdown flush ran Apply with ctx error %v, want a live context", ctxErr)
		}
	})
}

func TestOnFlushReportsEveryFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := newMemStore()
		w := &scriptedWatcher{full: []slipstream.Update{put("a", "1", 1), slipstream.Delete("b", slipstream.VersionFromUint64(2))}}
		var infos []slipstream.FlushInfo
		f := newFollower(w, &recorder{})
		f.Store = failFirstApply(inner)
		f.MaxBatchSize = 1
		f.MaxBatchDelay = time.Hour
		f.OnFlush = func(fi slipstream.FlushInfo) { infos = append(infos, fi) }
		mustRun(t, f)
		if len(infos) != 2 {
			t.Fatalf("OnFlush called %d times, want 2: %+v", len(infos), infos)
		}
		if !errors.Is(infos[0].StoreErr, errInjectedStore) || infos[0].StoreFailures != 1 || infos[0].Applied != 1 || !infos[0].Advanced {
			t.Fatalf("first flush = %+v", infos[0])
		}
		if infos[1].StoreErr != nil || infos[1].StoreFailures != 0 || infos[1].Updates != 2 || infos[1].Applied != 0 {
			t.Fatalf("second flush = %+v, want a cumulative commit of 2 updates, 0 applied (delete rejected)", infos[1])
		}
		wantCursor(t, "second flush cursor", infos[1].Cursor, 2)
	})
}

// firehose sends updates with increasing revisions until ctx is cancelled.
type firehose struct{}

func (firehose) Watch(ctx context.Context, _ slipstream.Scope, _ slipstream.Cursor, out chan<- slipstream.Update) error {
	for rev := uint64(1); ; rev++ {
		select {
		case out <- put("k", "v", rev):
		case <-ctx.Done():
			return nil
		}
	}
}

func TestExportNotStarvedByFirehose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		f := newFollower(firehose{}, &recorder{})
		f.Apply = func(context.Context, []slipstream.Update) error { return nil }
		f.Store = store
		f.MaxBatchDelay = time.Hour
		running := make(chan struct{})
		var once sync.Once
		f.OnApplied = func(slipstream.Cursor) { once.Do(func() { close(running) }) }
		r := start(t, f)
		<-running // synctest.Wait would wait forever: the firehose never idles
		for range 3 {
			exp, err := f.Export(t.Context(), filepath.Join(t.TempDir(), "exp"))
			if err != nil {
				t.Fatal(err)
			}
			if exp.Cursor.IsNone() {
				t.Fatal("export under a firehose captured nothing")
			}
		}
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// panicOnCancel holds the stream open, then panics when ctx is cancelled.
type panicOnCancel struct{}

func (panicOnCancel) Watch(ctx context.Context, _ slipstream.Scope, _ slipstream.Cursor, out chan<- slipstream.Update) error {
	select {
	case out <- put("a", "1", 1):
	case <-ctx.Done():
	}
	<-ctx.Done()
	panic("watcher bug at shutdown")
}

func TestWatchPanicDuringShutdownIsLoggedNotReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		f := newFollower(panicOnCancel{}, &recorder{})
		f.Logger = slog.New(slog.NewTextHandler(&buf, nil))
		r := start(t, f)
		synctest.Wait()
		c, err := r.stop()
		if err != nil {
			t.Fatalf("Run = %v, want nil on shutdown", err)
		}
		wantCursor(t, "returned cursor", c, 1)
		if out := buf.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "watcher bug at shutdown") {
			t.Fatalf("log = %q, want the watch panic at ERROR", out)
		}
	})
}
