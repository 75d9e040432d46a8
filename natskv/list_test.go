package natskv_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/churn"
	"github.com/slipstream-kv/slipstream/natskv"
)

// TestListingCrossCheckIsByName: a key created during a listing must not
// mask a key the listing dropped. The created key is written after the
// stream's state was first read, so a count-only check sees as many keys as
// the stream held when the listing began.
func TestListingCrossCheckIsByName(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		list func(b *natskv.Bucket) ([]string, error)
	}{
		{"Keys", func(b *natskv.Bucket) ([]string, error) { return b.Keys(t.Context(), "") }},
		{"Scan", func(b *natskv.Bucket) ([]string, error) {
			var keys []string
			err := b.Scan(t.Context(), "", func(en slipstream.Entry) error {
				keys = append(keys, en.Key)
				return nil
			})
			return keys, err
		}},
		{"Keys prefix", func(b *natskv.Bucket) ([]string, error) { return b.Keys(t.Context(), "k.") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.open(t, natskv.Config{Bucket: "byname-" + strings.ReplaceAll(tc.name, " ", "-")})
			for i := range 10 {
				put(t, b, keyN("k.", i), "v")
			}
			var created atomic.Int32
			natskv.SetListed(b, func() {
				// Each attempt sees a key created during it.
				put(t, b, keyN("k.new", int(created.Add(1))), "v")
			})
			natskv.SetDropListed(b, func(key string) bool { return key == "k.3" })
			keys, err := tc.list(b)
			if !errors.Is(err, natskv.ErrShortListing) || !errors.Is(err, slipstream.ErrOperationFailed) {
				t.Fatalf("listing = %v, %v; want ErrShortListing: k.3 was dropped", keys, err)
			}
			// Without the drop, the same churn lists every key.
			natskv.SetDropListed(b, nil)
			keys, err = tc.list(b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if !slices.Contains(keys, keyN("k.", i)) {
					t.Fatalf("listing %v lacks %s", keys, keyN("k.", i))
				}
			}
		})
	}
}

// TestListingUnderChurn lists while keys are created, updated and deleted:
// no false alarm, and every key untouched during the listing is listed.
func TestListingUnderChurn(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "churn-list", MaxBytes: 64 << 20})
	const n = 2000
	fillKeys(t, e, "churn-list", "stable.", 0, n, 16)
	fillKeys(t, e, "churn-list", "hot.", 0, 200, 16)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var churnErr error
	gen := churn.Generator{Key: func(rng *rand.Rand) string {
		if rng.IntN(2) == 0 {
			return keyN("hot.", rng.IntN(200))
		}
		return keyN("fresh.", rng.IntN(1_000_000))
	}}
	wg.Go(func() { _, churnErr = gen.Run(ctx, b) })
	defer func() {
		stop()
		wg.Wait()
		if churnErr != nil {
			t.Error(churnErr)
		}
	}()
	for range 5 {
		keys, err := b.Keys(t.Context(), "")
		if err != nil {
			t.Fatalf("Keys under churn: %v", err)
		}
		have := make(map[string]bool, len(keys))
		for _, k := range keys {
			have[k] = true
		}
		for i := range n {
			if !have[keyN("stable.", i)] {
				t.Fatalf("Keys under churn lacks stable.%d", i)
			}
		}
	}
}
