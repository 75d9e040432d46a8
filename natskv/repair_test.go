package natskv_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/memstore"
	"github.com/slipstream-kv/slipstream/natskv"
)

// TestRepairRacingLiveUpdates races repairs of a set of keys, through a
// running follower, against a writer of the same keys on a real server,
// several times: no fold write ever puts a key at a revision below one
// already folded, and once the writer stops the fold equals the bucket.
func TestRepairRacingLiveUpdates(t *testing.T) {
	e := newEnv(t)
	iterations := 8
	if testing.Short() {
		iterations = 2
	}
	keys := []string{"k0", "k1", "k2", "k3", "k4"}
	for i := range iterations {
		b := e.open(t, natskv.Config{Bucket: fmt.Sprintf("race%d", i), History: 3})
		for _, k := range keys {
			put(t, b, k, "0")
		}
		store := memstore.New()
		store.RecordUpdates()
		n := runNode(t, b, nodeConfig{store: store, lister: b})
		n.waitApplied(t, uint64(len(keys)), 10*time.Second)

		rng := rand.New(rand.NewPCG(uint64(i), 3))
		var wg sync.WaitGroup
		wg.Go(func() {
			for op := range 120 {
				k := keys[rng.IntN(len(keys))]
				var err error
				if rng.IntN(5) == 0 {
					_, err = b.Delete(t.Context(), k)
				} else {
					_, err = b.Put(t.Context(), k, fmt.Appendf(nil, "%d", op+1))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for range 15 {
				if _, err := n.f.Repair(t.Context(), b, keys); err != nil {
					t.Errorf("repair: %v", err)
					return
				}
			}
		})
		wg.Wait()
		n.waitApplied(t, e.streamInfo(t, b.Name()).State.LastSeq, 10*time.Second)
		if _, err := n.stop(); err != nil {
			t.Fatal(err)
		}
		last := map[string]uint64{}
		for _, u := range store.Updates() {
			r, ok := u.Version.Uint64()
			if !ok {
				continue
			}
			if r < last[u.Key] {
				t.Fatalf("iteration %d: %s %s@%d folded after @%d", i, u.Op, u.Key, r, last[u.Key])
			}
			last[u.Key] = r
		}
		wantFold(t, store, bucketSnapshot(t, b))
	}
}
