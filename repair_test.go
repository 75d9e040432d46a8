package slipstream_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/memkv"
)

// readerFunc is a RecordReader with a hook.
type readerFunc func(ctx context.Context, key string) (slipstream.Update, bool, error)

func (f readerFunc) LastRecord(ctx context.Context, key string) (slipstream.Update, bool, error) {
	return f(ctx, key)
}

func TestRepairFoldsWhatItReadsWithoutMovingTheCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		kv := memkv.New()
		for _, k := range []string{"a", "b", "c"} {
			mustPut(t, kv, k, "v-"+k)
		}
		// The fold lacks c and holds gone, which the bucket never had.
		store := seeded(t, cur(3), put("a", "v-a", 1), put("b", "v-b", 2), put("gone", "x", 2))
		rec := &recorder{}
		f := memkvFollower(kv, rec, store)
		r := start(t, f)
		synctest.Wait()

		info, err := f.Repair(ctx, kv, []string{"c", "gone"})
		if err != nil {
			t.Fatal(err)
		}
		if info != (slipstream.RepairInfo{Keys: 2, Folded: 2}) {
			t.Fatalf("RepairInfo = %+v", info)
		}
		if got, want := store.Values(), map[string]string{"a": "v-a", "b": "v-b", "c": "v-c"}; !maps.Equal(got, want) {
			t.Fatalf("fold = %v, want %v", got, want)
		}
		if e, _, _ := store.Get("c"); e.Version != slipstream.VersionFromUint64(3) {
			t.Fatalf("c folded at version %s, want the revision read (3)", e.Version)
		}
		if rank(t, store.Cursor()) != 3 || len(rec.onApplied()) != 0 {
			t.Fatalf("the repair moved the cursor: store %s, OnApplied %v", store.Cursor(), rec.onApplied())
		}
		// The consumer saw the repair like any update.
		if got := rec.values(); len(got) != 2 || got[0] != "v-c" || got[1] != "" {
			t.Fatalf("Apply saw %q, want the put of c and the delete of gone", got)
		}
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRepairLiveUpdateWins: a live update that reaches a key between the
// repair's read and its fold wins; without the marks the older value read
// would be folded after it.
func TestRepairLiveUpdateWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		kv := memkv.New()
		mustPut(t, kv, "k", "old")
		mustPut(t, kv, "other", "1")
		store := seeded(t, cur(2), put("other", "1", 2)) // k missed
		f := memkvFollower(kv, &recorder{}, store)
		r := start(t, f)
		synctest.Wait()

		src := readerFunc(func(ctx context.Context, key string) (slipstream.Update, bool, error) {
			e, ok, err := kv.LastRecord(ctx, key)
			if key == "k" {
				// The read is done; a live write lands and reaches the loop
				// before the repair is folded.
				mustPut(t, kv, "k", "live")
				synctest.Wait()
			}
			return e, ok, err
		})
		info, err := f.Repair(ctx, src, []string{"k"})
		if err != nil {
			t.Fatal(err)
		}
		if info.Skipped != 1 || info.Folded != 0 {
			t.Fatalf("RepairInfo = %+v, want k skipped", info)
		}
		time.Sleep(time.Second) // past the batch window
		if e, _, _ := store.Get("k"); string(e.Value) != "live" {
			t.Fatalf("fold holds k=%q, want the live value", e.Value)
		}
		// A live update after the fold comes after it, too.
		src2 := readerFunc(func(ctx context.Context, key string) (slipstream.Update, bool, error) {
			return put(key, "read", 3), true, nil
		})
		if info, err := f.Repair(ctx, src2, []string{"k"}); err != nil || info.Folded != 1 {
			t.Fatalf("second repair: %+v, %v", info, err)
		}
		mustPut(t, kv, "k", "later")
		time.Sleep(time.Second)
		if e, _, _ := store.Get("k"); string(e.Value) != "later" {
			t.Fatalf("fold holds k=%q, want the update after the repair", e.Value)
		}
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRepairErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		kv := memkv.New()
		mustPut(t, kv, "k", "1")
		store := newMemStore()
		f := memkvFollower(kv, &recorder{}, store)
		if _, err := f.Repair(ctx, kv, []string{"k"}); !errors.Is(err, slipstream.ErrNotRunning) {
			t.Fatalf("Repair while idle = %v, want ErrNotRunning", err)
		}
		r := start(t, f)
		synctest.Wait()
		boom := errors.New("read failed")
		failing := readerFunc(func(context.Context, string) (slipstream.Update, bool, error) {
			return slipstream.Update{}, false, boom
		})
		before := store.Applies()
		if _, err := f.Repair(ctx, failing, []string{"k", "x"}); !errors.Is(err, boom) {
			t.Fatalf("Repair with a failing read = %v", err)
		}
		synctest.Wait()
		if store.Applies() != before {
			t.Fatal("a failed repair folded something")
		}
		// The failed repair stopped watching its keys: a later repair of
		// the same key after a live update still folds.
		mustPut(t, kv, "k", "2")
		time.Sleep(time.Second)
		if info, err := f.Repair(ctx, kv, []string{"k"}); err != nil || info.Folded != 1 || info.Skipped != 0 {
			t.Fatalf("repair after a failed one: %+v, %v", info, err)
		}
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}

		noStore := memkvFollower(kv, &recorder{}, nil)
		r = start(t, noStore)
		synctest.Wait()
		if _, err := noStore.Repair(ctx, kv, []string{"k"}); !errors.Is(err, slipstream.ErrUnsupported) {
			t.Fatalf("Repair without a store = %v, want ErrUnsupported", err)
		}
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRepairAcrossARestartIsRefused: a Run that restarts between the
// repair's read and its fold did not watch the keys; the repair folds
// nothing and reports ErrNotRunning.
func TestRepairAcrossARestartIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		kv := memkv.New()
		mustPut(t, kv, "k", "1")
		store := newMemStore()
		f := memkvFollower(kv, &recorder{}, store)
		r := start(t, f)
		synctest.Wait()
		src := readerFunc(func(ctx context.Context, key string) (slipstream.Update, bool, error) {
			if _, err := r.stop(); err != nil {
				t.Error(err)
			}
			f.Resume = store.Cursor()
			r = start(t, f)
			synctest.Wait()
			return put(key, "stale read", 1), true, nil
		})
		if _, err := f.Repair(ctx, src, []string{"k"}); !errors.Is(err, slipstream.ErrNotRunning) {
			t.Fatalf("Repair across a restart = %v, want ErrNotRunning", err)
		}
		if _, err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRepairRacingLiveUpdatesNeverGoesBack races repairs of a set of keys
// against a writer of the same keys, many times: no fold write ever puts a
// key at a revision below one already folded, and once the writer stops and
// the follower catches up, the fold equals the bucket.
func TestRepairRacingLiveUpdatesNeverGoesBack(t *testing.T) {
	iterations := 60
	if testing.Short() {
		iterations = 10
	}
	for i := range iterations {
		raceRepair(t, uint64(i))
	}
}

func raceRepair(t *testing.T, seed uint64) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rng := rand.New(rand.NewPCG(seed, 7))
	kv := memkv.New()
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	for _, k := range keys {
		mustPut(t, kv, k, "0")
	}
	inner := newMemStore()
	var mu sync.Mutex
	last := map[string]uint64{}
	var violations []string
	store := &hookStore{Store: inner}
	store.apply = func(batch []slipstream.Update, cursor slipstream.Cursor) error {
		mu.Lock()
		for _, u := range batch {
			if r, ok := u.Version.Uint64(); ok {
				if r < last[u.Key] {
					violations = append(violations, fmt.Sprintf("%s %s@%d after @%d", u.Op, u.Key, r, last[u.Key]))
				}
				last[u.Key] = max(last[u.Key], r)
			}
		}
		mu.Unlock()
		return inner.Apply(batch, cursor)
	}
	f := slipstream.NewFollower(kv, func(context.Context, []slipstream.Update) error { return nil })
	f.Store, f.Lister, f.Logger = store, kv, discard
	f.MaxBatchSize, f.MaxBatchDelay = 1+rng.IntN(8), time.Duration(rng.IntN(200))*time.Microsecond
	done := make(chan error, 1)
	go func() {
		_, err := f.Run(ctx)
		done <- err
	}()

	waitCursor := func(target uint64) {
		deadline := time.Now().Add(10 * time.Second)
		for inner.Cursor().Rank() < target {
			if time.Now().After(deadline) {
				t.Fatalf("seed %d: follower at %s, bucket at %d", seed, inner.Cursor(), target)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitCursor(kv.LastRevision()) // running

	var wg sync.WaitGroup
	writes := 100 + rng.IntN(100)
	wrng := rand.New(rand.NewPCG(seed, 11))
	wg.Go(func() {
		for n := range writes {
			k := keys[wrng.IntN(len(keys))]
			var err error
			if wrng.IntN(5) == 0 {
				_, err = kv.Delete(ctx, k)
			} else {
				_, err = kv.Put(ctx, k, fmt.Appendf(nil, "%d", n+1))
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for range 20 {
			if _, err := f.Repair(ctx, kv, keys); err != nil {
				t.Errorf("repair: %v", err)
				return
			}
		}
	})
	wg.Wait()
	waitCursor(kv.LastRevision())
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("seed %d: a fold write went back: %q", seed, violations)
	}
	want := map[string]string{}
	if err := kv.Scan(t.Context(), "", func(e slipstream.Entry) error {
		want[e.Key] = string(e.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := inner.Values(); !maps.Equal(got, want) {
		t.Fatalf("seed %d: fold %v, bucket %v", seed, got, want)
	}
}
