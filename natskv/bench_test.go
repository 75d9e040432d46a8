package natskv_test

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/natskv"
)

// benchKeys is the bucket size of the hydration benchmarks: 100,000 keys,
// or SLIPSTREAM_BENCH_KEYS (e.g. 1000000).
func benchKeys(b *testing.B) int {
	if s := os.Getenv("SLIPSTREAM_BENCH_KEYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("SLIPSTREAM_BENCH_KEYS=%q", s)
		}
		return n
	}
	return 100_000
}

const benchValueSize = 256

// benchBucket starts a server and fills a bucket with n keys of 256 B.
func benchBucket(b *testing.B, n int) (*env, *natskv.Bucket) {
	b.Helper()
	e := newEnv(b)
	bk := e.open(b, natskv.Config{Bucket: "bench", MaxBytes: -1})
	start := time.Now()
	fill(b, e, "bench", n, benchValueSize)
	b.Logf("filled %d keys in %v", n, time.Since(start))
	return e, bk
}

// followUntil runs a Follower with a no-op Apply from resume until it has
// applied revision last, and returns how long that took.
func followUntil(b *testing.B, bk *natskv.Bucket, resume slipstream.Cursor, last uint64) time.Duration {
	return followScopeUntil(b, bk, slipstream.AllKeys(), resume, last)
}

// followScopeUntil is followUntil for a scope.
func followScopeUntil(b *testing.B, bk *natskv.Bucket, scope slipstream.Scope, resume slipstream.Cursor, last uint64) time.Duration {
	reached := make(chan struct{})
	var closed atomic.Bool
	f := slipstream.NewFollower(bk, func(context.Context, []slipstream.Update) error { return nil })
	f.Scope = scope
	f.Resume = resume
	f.Logger = quietLogger()
	f.OnApplied = func(c slipstream.Cursor) {
		if c.Rank() >= last && closed.CompareAndSwap(false, true) {
			close(reached)
		}
	}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := f.Run(ctx)
		done <- err
	}()
	select {
	case <-reached:
	case err := <-done:
		b.Fatalf("follower stopped early: %v", err)
	}
	d := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return d
}

// rawUntilDone runs nats.go's own watch until its "initial values done"
// marker and returns how long that took and how many entries it saw.
func rawUntilDone(b *testing.B, kv jetstream.KeyValue, opts ...jetstream.WatchOpt) (time.Duration, int) {
	return rawFilteredUntilDone(b, kv, []string{">"}, opts...)
}

// rawFilteredUntilDone is rawUntilDone for nats.go's WatchFiltered.
func rawFilteredUntilDone(b *testing.B, kv jetstream.KeyValue, filters []string, opts ...jetstream.WatchOpt) (time.Duration, int) {
	start := time.Now()
	w, err := kv.WatchFiltered(b.Context(), filters, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	n := 0
	for e := range w.Updates() {
		if e == nil {
			return time.Since(start), n
		}
		n++
	}
	b.Fatal("raw watch closed")
	return 0, 0
}

func reportPair(b *testing.B, entries int, ours, raw time.Duration, iters int) {
	per := float64(entries) * float64(iters)
	b.ReportMetric(per/ours.Seconds(), "natskv-entries/s")
	b.ReportMetric(per/raw.Seconds(), "raw-entries/s")
	b.ReportMetric(raw.Seconds()/ours.Seconds(), "ratio")
	b.ReportMetric(0, "ns/op") // the pair, not one op, is what is measured
}

// BenchmarkHydration: a state-sync of the whole bucket through the
// Follower into a no-op Apply, against nats.go's WatchAll to its done
// marker, interleaved in the same run on the same server.
func BenchmarkHydration(b *testing.B) {
	n := benchKeys(b)
	e, bk := benchBucket(b, n)
	kv := e.rawKV(b, "bench")
	last := uint64(n)
	var ours, raw time.Duration
	iters := 0
	for b.Loop() {
		ours += followUntil(b, bk, slipstream.Cursor{}, last)
		d, got := rawUntilDone(b, kv)
		if got != n {
			b.Fatalf("raw watch saw %d entries, want %d", got, n)
		}
		raw += d
		iters++
	}
	reportPair(b, n, ours, raw, iters)
}

// BenchmarkResumeDelta: a resume over a 10 % delta (every tenth key
// rewritten after the cursor), Follower against nats.go's resume.
func BenchmarkResumeDelta(b *testing.B) {
	n := benchKeys(b)
	e, bk := benchBucket(b, n)
	cursor := uint64(n)
	delta := n / 10
	fillKeys(b, e, "bench", "k", 0, delta, benchValueSize)
	last := cursor + uint64(delta)
	kv := e.rawKV(b, "bench")
	var ours, raw time.Duration
	iters := 0
	for b.Loop() {
		ours += followUntil(b, bk, slipstream.CursorFromUint64(cursor), last)
		d, got := rawUntilDone(b, kv, jetstream.ResumeFromRevision(cursor+1))
		if got != delta {
			b.Fatalf("raw resume saw %d entries, want %d", got, delta)
		}
		raw += d
		iters++
	}
	reportPair(b, delta, ours, raw, iters)
}

// BenchmarkKeys: the cross-checked Keys listing against nats.go's ListKeys.
func BenchmarkKeys(b *testing.B) {
	n := benchKeys(b)
	e, bk := benchBucket(b, n)
	kv := e.rawKV(b, "bench")
	var ours, raw time.Duration
	iters := 0
	for b.Loop() {
		start := time.Now()
		keys, err := bk.Keys(b.Context(), "")
		if err != nil || len(keys) != n {
			b.Fatalf("Keys = %d, %v", len(keys), err)
		}
		ours += time.Since(start)

		start = time.Now()
		l, err := kv.ListKeys(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for range l.Keys() {
			got++
		}
		raw += time.Since(start)
		if got != n {
			b.Fatalf("ListKeys = %d", got)
		}
		iters++
	}
	reportPair(b, n, ours, raw, iters)
}

// BenchmarkHydrationPrefixes measures the cost of one consumer per watch
// (docs/ARCHITECTURE.md, invariant 7): the
// state sync of a several-prefix scope on ONE multi-filter consumer (what
// Watch does) against one single-filter consumer per prefix run one after
// the other. The bucket holds keys under a., b. and c., written interleaved
// (a.0 b.0 c.0 a.1 ...), and then every 100th a. key is deleted: the
// shape where the server's multi-filter scan is slowest. The scope is a.
// and b. Reported: the Follower's rate, raw
// nats.go's multi-filter WatchFiltered, and the per-prefix sequence.
func BenchmarkHydrationPrefixes(b *testing.B) {
	n := benchKeys(b)
	e := newEnv(b)
	bk := e.open(b, natskv.Config{Bucket: "bench", MaxBytes: -1})
	fillInterleaved(b, e, "bench", []string{"a.", "b.", "c."}, n/3, benchValueSize)
	kv := e.rawKV(b, "bench")
	per := n / 3
	for i := 0; i < per; i += 100 {
		if err := kv.Delete(b.Context(), "a."+strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
	inScope := 2 * per
	st, err := bk.Status(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	scope := slipstream.Prefixes("a.", "b.")
	var ours, multi, single time.Duration
	iters := 0
	for b.Loop() {
		ours += followScopeUntil(b, bk, scope, slipstream.Cursor{}, st.LastSeq)
		d, got := rawFilteredUntilDone(b, kv, []string{"a.>", "b.>"})
		if got != inScope {
			b.Fatalf("multi-filter watch saw %d entries, want %d", got, inScope)
		}
		multi += d
		for _, f := range []string{"a.>", "b.>"} {
			d, got := rawFilteredUntilDone(b, kv, []string{f})
			if got != per {
				b.Fatalf("watch of %s saw %d entries, want %d", f, got, per)
			}
			single += d
		}
		iters++
	}
	total := float64(inScope) * float64(iters)
	b.ReportMetric(total/ours.Seconds(), "natskv-entries/s")
	b.ReportMetric(total/multi.Seconds(), "raw-multi-entries/s")
	b.ReportMetric(total/single.Seconds(), "raw-per-prefix-entries/s")
	b.ReportMetric(multi.Seconds()/ours.Seconds(), "ratio-vs-multi")
	b.ReportMetric(single.Seconds()/ours.Seconds(), "ratio-vs-per-prefix")
	b.ReportMetric(0, "ns/op")
}
