package slipstream_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/storetest"
)

// sliceWatcher sends a fixed slice of updates, then returns (the stream
// closes). It keeps no state, so one value serves every iteration.
type sliceWatcher struct{ ups []slipstream.Update }

func (w sliceWatcher) Watch(ctx context.Context, _ slipstream.Scope, _ slipstream.Cursor, out chan<- slipstream.Update) error {
	done := ctx.Done()
	for _, u := range w.ups {
		// A send that does not block needs no select over ctx; only a
		// full channel waits on both.
		select {
		case out <- u:
			continue
		default:
		}
		select {
		case out <- u:
		case <-done:
			return nil
		}
	}
	return nil
}

// BenchmarkFollowerBatch1000 measures the loop's own per-update overhead:
// one complete Run over 1,000 puts delivered by an in-memory watcher that
// then closes the stream — receive, cursor tracking, Filter, batching (window 10 ms, max 100, buffer 256), flush — with a no-op
// Apply, no Store, no Lister and no exports.
func BenchmarkFollowerBatch1000(b *testing.B) {
	const n = 1000
	value := make([]byte, 256)
	for i := range value {
		value[i] = 0x42
	}
	ups := make([]slipstream.Update, n)
	for i := range ups {
		ups[i] = slipstream.Put(fmt.Sprintf("node.region-%d", i), value, slipstream.VersionFromUint64(uint64(i)))
	}
	f := slipstream.NewFollower(sliceWatcher{ups: ups}, func(context.Context, []slipstream.Update) error { return nil })
	f.Filter = keepPuts
	f.Logger = discard
	ctx := context.Background()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	cpu0 := storetest.CPUTime()
	for b.Loop() {
		c, err := f.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if rank(b, c) != n-1 {
			b.Fatalf("cursor %v, want %d", c, n-1)
		}
	}
	cpu := storetest.CPUTime() - cpu0
	runtime.ReadMemStats(&after)
	iters := float64(b.N)
	if cpu > 0 {
		// Per second of the process's CPU time: steadier than wall clock
		// on a shared machine.
		b.ReportMetric(n*iters/cpu.Seconds(), "updates/cpu-s")
	}
	b.ReportMetric(n*iters/b.Elapsed().Seconds(), "updates/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/(n*iters), "allocs/update")
	b.ReportMetric(b.Elapsed().Seconds()*1e9/(n*iters), "ns/update")
}
