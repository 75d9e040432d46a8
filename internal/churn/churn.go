// Package churn writes a random mix of puts, deletes and purges to a bucket
// until stopped: the background load of the crash, journal and listing
// tests. It drives any bucket with the write methods natskv.Bucket and
// memkv.KV share.
package churn

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Writer is a bucket's write side, as natskv.Bucket and memkv.KV have it.
type Writer interface {
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	Delete(ctx context.Context, key string) (uint64, error)
	Purge(ctx context.Context, key string) (uint64, error)
}

// Generator configures a churn; the zero value writes to "k.000".."k.199"
// as fast as the bucket allows.
type Generator struct {
	// Key picks the key of the next write; nil picks one of "k.000" to
	// "k.199".
	Key func(rng *rand.Rand) string
	// PerKey, if > 0, caps the writes to each key (to stay under a bucket's
	// per-key history, so that nothing is evicted); a key at its cap is
	// skipped.
	PerKey int
	// Pace, if > 0, waits up to this long (uniformly) between two writes.
	Pace time.Duration
	// Rand is the source of every choice; nil seeds one from the clock.
	Rand *rand.Rand
}

// Run writes until ctx ends: a put (7 in 10, a value of 1 to 64 random
// letters), a delete (2 in 10) or a purge (1 in 10) of a key from Key. It
// returns the number of writes, and the first error that is not ctx ending.
func (g Generator) Run(ctx context.Context, w Writer) (int, error) {
	rng := g.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	}
	pick := g.Key
	if pick == nil {
		pick = func(rng *rand.Rand) string { return fmt.Sprintf("k.%03d", rng.IntN(200)) }
	}
	counts := map[string]int{}
	ops := 0
	for ctx.Err() == nil {
		key := pick(rng)
		if g.PerKey > 0 {
			if counts[key] >= g.PerKey {
				continue
			}
			counts[key]++
		}
		var err error
		switch r := rng.IntN(10); {
		case r < 7:
			val := make([]byte, 1+rng.IntN(64))
			for i := range val {
				val[i] = byte('a' + rng.IntN(26))
			}
			_, err = w.Put(ctx, key, val)
		case r < 9:
			_, err = w.Delete(ctx, key)
		default:
			_, err = w.Purge(ctx, key)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ops, nil
			}
			return ops, fmt.Errorf("churn write %d on %s: %w", ops, key, err)
		}
		ops++
		if g.Pace > 0 {
			t := time.NewTimer(rand.N(g.Pace))
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
	return ops, nil
}
