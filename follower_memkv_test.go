package slipstream_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/memkv"
	"github.com/slipstream-kv/slipstream/memstore"
)

// End-to-end scenarios on the in-memory bucket: a real state-sync watch,
// resume, compaction and cursor expiry, driven in a synctest bubble.

func mustPut(t *testing.T, kv *memkv.KV, key, value string) uint64 {
	t.Helper()
	rev, err := kv.Put(t.Context(), key, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func mustDelete(t *testing.T, kv *memkv.KV, key string) uint64 {
	t.Helper()
	rev, err := kv.Delete(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// follow runs a Follower on kv until it has been idle past its window, then
// shuts it down and returns the cursor.
func follow(t *testing.T, f *slipstream.Follower) slipstream.Cursor {
	t.Helper()
	r := start(t, f)
	time.Sleep(time.Second)
	c, err := r.stop()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return c
}

func memkvFollower(kv *memkv.KV, rec *recorder, store slipstream.Store) *slipstream.Follower {
	f := newFollower(kv, rec)
	f.Filter = rec.filter(func(slipstream.Update) bool { return true })
	f.Store = store
	if store != nil {
		f.Resume = store.Cursor()
	}
	return f
}

func wantFold(t *testing.T, s *memstore.Store, want map[string]string) {
	t.Helper()
	got := s.Values()
	if len(got) != len(want) {
		t.Fatalf("fold = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("fold = %v, want %v", got, want)
		}
	}
}

func TestMemKVResumeDeliversOnlyTheDelta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		store := newMemStore()
		mustPut(t, kv, "node.a", "1")
		mustPut(t, kv, "node.b", "2")
		c := follow(t, memkvFollower(kv, &recorder{}, store))
		wantCursor(t, "first run cursor", c, 2)
		wantCursor(t, "store cursor", store.Cursor(), 2)

		mustPut(t, kv, "node.c", "3")
		last := mustPut(t, kv, "node.d", "4")
		rec := &recorder{}
		c = follow(t, memkvFollower(kv, rec, store))
		wantCursor(t, "second run cursor", c, last)
		wantValues(t, rec, "3", "4") // resume is exclusive of the cursor
		wantFold(t, store, map[string]string{"node.a": "1", "node.b": "2", "node.c": "3", "node.d": "4"})
	})
}

func TestMemKVLiveUpdatesFlowThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		store := newMemStore()
		rec := &recorder{}
		r := start(t, memkvFollower(kv, rec, store))
		synctest.Wait()
		mustPut(t, kv, "a", "1")
		mustPut(t, kv, "b", "2")
		mustDelete(t, kv, "a")
		time.Sleep(time.Second)
		synctest.Wait()
		wantCursor(t, "OnApplied", rec.lastApplied(), 3)
		wantFold(t, store, map[string]string{"b": "2"})
		c, err := r.stop()
		if err != nil {
			t.Fatal(err)
		}
		wantCursor(t, "returned cursor", c, 3)
	})
}

// gapScenario folds gone and keep, then offline deletes gone, updates keep,
// and compacts so that gone's delete marker and the resume point are
// evicted.
func gapScenario(t *testing.T) (*memkv.KV, *memstore.Store) {
	kv := memkv.New()
	store := newMemStore()
	mustPut(t, kv, "route.gone", "v1")
	mustPut(t, kv, "route.keep", "v1")
	follow(t, memkvFollower(kv, &recorder{}, store))
	wantCursor(t, "first run store cursor", store.Cursor(), 2)

	del := mustDelete(t, kv, "route.gone")
	mustPut(t, kv, "route.keep", "v2")
	mustPut(t, kv, "route.other", "v2")
	kv.Compact(del)
	if kv.FirstRevision() <= 2+1 {
		t.Fatalf("premise: first revision %d must be past the cursor 2 + 1", kv.FirstRevision())
	}
	return kv, store
}

func TestMemKVCursorExpiredResyncDeletesKeysDeletedDuringTheGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv, store := gapScenario(t)
		rec := &recorder{}
		f := memkvFollower(kv, rec, store)
		f.Lister = kv
		c := follow(t, f)
		wantCursor(t, "returned cursor", c, kv.LastRevision())
		wantCursor(t, "store cursor", store.Cursor(), kv.LastRevision())
		wantFold(t, store, map[string]string{"route.keep": "v2", "route.other": "v2"})
		if u := rec.filtered[0]; u.Op != slipstream.OpDelete || u.Key != "route.gone" || !u.Version.IsUnknown() {
			t.Fatalf("first update = %+v, want the synthetic delete of route.gone", u)
		}
	})
}

// The evil twin: without a Lister the fallback is re-list only and the key
// deleted during the gap stays in the fold forever.
func TestMemKVCursorExpiredWithoutListerKeepsStaleKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv, store := gapScenario(t)
		follow(t, memkvFollower(kv, &recorder{}, store))
		wantFold(t, store, map[string]string{"route.gone": "v1", "route.keep": "v2", "route.other": "v2"})
	})
}

// listerFunc adapts a function to slipstream.KeyLister.
type listerFunc func(ctx context.Context, prefix string) ([]string, error)

func (f listerFunc) Keys(ctx context.Context, prefix string) ([]string, error) { return f(ctx, prefix) }

func TestMemKVDeleteAndRecreateDuringGapConverges(t *testing.T) {
	for _, when := range []string{"before listing", "after listing"} {
		t.Run(when, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				kv, store := gapScenario(t)
				lister := slipstream.KeyLister(kv)
				if when == "before listing" {
					mustPut(t, kv, "route.gone", "v3")
				} else {
					lister = listerFunc(func(ctx context.Context, p string) ([]string, error) {
						keys, err := kv.Keys(ctx, p)
						mustPut(t, kv, "route.gone", "v3") // re-created after the listing
						return keys, err
					})
				}
				rec := &recorder{}
				f := memkvFollower(kv, rec, store)
				f.Lister = lister
				follow(t, f)
				wantFold(t, store, map[string]string{"route.gone": "v3", "route.keep": "v2", "route.other": "v2"})
				wantCursor(t, "store cursor", store.Cursor(), kv.LastRevision())
				var ops []string
				for _, u := range rec.filtered {
					if u.Key == "route.gone" {
						ops = append(ops, u.Op.String())
					}
				}
				want := []string{"put"}
				if when == "after listing" {
					want = []string{"delete", "put"} // the ack barrier orders them
				}
				if !slices.Equal(ops, want) {
					t.Fatalf("route.gone saw %v, want %v", ops, want)
				}
			})
		})
	}
}

func TestMemKVLiveRetentionOverrunFailsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		mustPut(t, kv, "a", "1")
		gate := make(chan struct{})
		f := newFollower(kv, &recorder{})
		f.Filter = nil
		f.MaxBatchSize = 1
		f.BufferSize = 1
		f.Apply = func(context.Context, []slipstream.Update) error {
			<-gate // stall the loop so the watch falls behind
			return nil
		}
		r := start(t, f)
		synctest.Wait()
		for range 600 { // more than the watch's buffer and page
			mustPut(t, kv, "b", "x")
		}
		kv.Compact(kv.LastRevision() - 1)
		close(gate)
		_, err := r.wait()
		if !errors.Is(err, slipstream.ErrOverrun) {
			t.Fatalf("Run = %v, want the live retention overrun", err)
		}
	})
}
