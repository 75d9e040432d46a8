package churn_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/churn"
	"github.com/slipstream-kv/slipstream/memkv"
)

// recorder is a Writer that records each write and stops the churn after n.
type recorder struct {
	*memkv.KV
	n      int
	cancel context.CancelFunc
	byOp   map[slipstream.Op]int
	byKey  map[string]int
}

func (w *recorder) record(op slipstream.Op, key string) {
	w.byOp[op]++
	w.byKey[key]++
	if w.n--; w.n == 0 {
		w.cancel()
	}
}

func (w *recorder) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	w.record(slipstream.OpPut, key)
	return w.KV.Put(ctx, key, value)
}

func (w *recorder) Delete(ctx context.Context, key string) (uint64, error) {
	w.record(slipstream.OpDelete, key)
	return w.KV.Delete(ctx, key)
}

func (w *recorder) Purge(ctx context.Context, key string) (uint64, error) {
	w.record(slipstream.OpPurge, key)
	return w.KV.Purge(ctx, key)
}

func TestChurnWritesTheMixAndRespectsPerKey(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := &recorder{KV: memkv.New(), n: 2000, cancel: cancel, byOp: map[slipstream.Op]int{}, byKey: map[string]int{}}
	g := churn.Generator{
		Key:    func(rng *rand.Rand) string { return []string{"a", "b", "c"}[rng.IntN(3)] },
		PerKey: 700,
		Rand:   rand.New(rand.NewPCG(1, 2)),
	}
	ops, err := g.Run(ctx, w)
	if err != nil || ops != 2000 || w.LastRevision() != 2000 {
		t.Fatalf("Run = %d, %v (%d revisions); want 2000 writes", ops, err, w.LastRevision())
	}
	// 7:2:1 within a generous margin.
	if p, d, g := w.byOp[slipstream.OpPut], w.byOp[slipstream.OpDelete], w.byOp[slipstream.OpPurge]; p < 1200 || d < 250 || g < 100 {
		t.Errorf("writes by op: %v, want about 1400 puts, 400 deletes, 200 purges", w.byOp)
	}
	for k, n := range w.byKey {
		if n > 700 {
			t.Errorf("%d writes to %s, over PerKey 700", n, k)
		}
	}
}
