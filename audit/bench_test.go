package audit_test

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/audit"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/natskv"
)

// benchKeys is the bucket size of BenchmarkAudit: 100,000 keys, or
// SLIPSTREAM_BENCH_KEYS (e.g. 1000000).
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

// BenchmarkAudit audits a fold of n keys equal to its bucket (embedded
// server, 128-byte values) and, in the same run on the same server, lists
// the bucket's keys with nats.go's ListKeys. It reports both rates, their
// ratio (audit rate / ListKeys rate), and the peak extra live heap of each
// (sampled every 2 ms above the heap after a GC just before; the server is
// in process, so its side of the consumer counts too).
//
//	SLIPSTREAM_BENCH_KEYS=1000000 go test ./audit -run '^$' -bench BenchmarkAudit -benchtime 3x
func BenchmarkAudit(b *testing.B) {
	n := benchKeys(b)
	ctx := b.Context()
	srv := natstest.Start(b)
	nc := srv.Conn(b)
	bk, err := natskv.Open(ctx, nc, natskv.Config{Bucket: "bench", MaxBytes: -1, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	fillBench(b, js, n)
	b.Logf("filled %d keys in %v", n, time.Since(start))

	// The fold: the bucket's keys at their revisions, built from a listing.
	st, err := applog.Open(b.TempDir(), &applog.Options{Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var batch []slipstream.Update
	last, _, err := bk.Latest(ctx, "", func(u slipstream.Update) error {
		batch = append(batch, slipstream.Put(u.Key, []byte("v"), u.Version))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for len(batch) > 0 {
		k := min(len(batch), 10_000)
		if err := st.Apply(batch[:k], slipstream.CursorFromUint64(last)); err != nil {
			b.Fatal(err)
		}
		batch = batch[k:]
	}
	batch = nil
	kv, err := js.KeyValue(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	a := &audit.Auditor{Bucket: bk, Fold: st, Logger: quiet()}

	var ours, raw time.Duration
	var oursPeak, rawPeak uint64
	iters := 0
	for b.Loop() {
		var rep audit.Report
		d, peak := measure(func() {
			rep, err = a.Run(ctx)
		})
		if err != nil || !rep.Equal() || rep.Checked != n {
			b.Fatalf("audit: %v, %d divergences, %d checked", err, len(rep.Divergences), rep.Checked)
		}
		ours += d
		oursPeak = max(oursPeak, peak)

		got := 0
		d, peak = measure(func() {
			var l jetstream.KeyLister
			l, err = kv.ListKeys(ctx)
			if err != nil {
				return
			}
			for range l.Keys() {
				got++
			}
		})
		if err != nil || got != n {
			b.Fatalf("ListKeys: %d keys, %v", got, err)
		}
		raw += d
		rawPeak = max(rawPeak, peak)
		iters++
	}
	total := float64(n) * float64(iters)
	b.ReportMetric(total/ours.Seconds(), "audit-keys/s")
	b.ReportMetric(total/raw.Seconds(), "listkeys-keys/s")
	b.ReportMetric(raw.Seconds()/ours.Seconds(), "ratio")
	b.ReportMetric(float64(oursPeak)/(1<<20), "audit-peak-MiB")
	b.ReportMetric(float64(rawPeak)/(1<<20), "listkeys-peak-MiB")
	b.ReportMetric(0, "ns/op")
}

// measure runs fn and returns how long it took and the peak live heap above
// the heap after a GC just before it.
func measure(fn func()) (time.Duration, uint64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	base := read()
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if h := read(); h > base {
				peak = max(peak, h-base)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	start := time.Now()
	fn()
	d := time.Since(start)
	close(stop)
	wg.Wait()
	return d, peak
}

// fillBench writes keys k0..k<n-1> of 128 bytes with asynchronous publishes
// in windows of 4,096.
func fillBench(b *testing.B, js jetstream.JetStream, n int) {
	b.Helper()
	value := bytes.Repeat([]byte("v"), 128)
	const window = 4096
	futures := make([]jetstream.PubAckFuture, 0, window)
	for i := 0; i < n; {
		futures = futures[:0]
		for ; i < n && len(futures) < window; i++ {
			f, err := js.PublishAsync("$KV.bench.k"+strconv.Itoa(i), value)
			if err != nil {
				b.Fatal(err)
			}
			futures = append(futures, f)
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("async publishes not acknowledged")
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatalf("async publish: %v", err)
			}
		}
	}
}

// genFold yields n keys k0000000… in order at revision i+1, without
// holding them.
type genFold struct{ n int }

func (f genFold) Cursor() slipstream.Cursor { return slipstream.CursorFromUint64(uint64(f.n)) }

func (f genFold) ForEachInRange(prefix string, fn func(slipstream.Entry) error) error {
	var buf []byte
	for i := range f.n {
		buf = strconv.AppendInt(append(buf[:0], 'k'), int64(10_000_000+i), 10)
		if err := fn(slipstream.Entry{Key: string(buf), Version: slipstream.VersionFromUint64(uint64(i + 1))}); err != nil {
			return err
		}
	}
	return nil
}

// genBucket lists the same keys, in reverse order (as a stream's sequence
// order differs from key order), at the same revisions.
type genBucket struct{ n int }

func (g genBucket) Latest(_ context.Context, _ string, fn func(slipstream.Update) error) (uint64, uint64, error) {
	var buf []byte
	for i := g.n - 1; i >= 0; i-- {
		buf = strconv.AppendInt(append(buf[:0], 'k'), int64(10_000_000+i), 10)
		if err := fn(slipstream.Update{Op: slipstream.OpPut, Key: string(buf), Version: slipstream.VersionFromUint64(uint64(i + 1))}); err != nil {
			return 0, 0, err
		}
	}
	return uint64(g.n), uint64(g.n), nil
}

// BenchmarkAuditIndex measures the comparison alone, on a generated fold and
// listing (no server, no store): keys per second and the audit's own peak
// extra heap per key (its index of the fold's keys; 9-byte keys here).
//
//	SLIPSTREAM_BENCH_KEYS=1000000 go test ./audit -run '^$' -bench BenchmarkAuditIndex
func BenchmarkAuditIndex(b *testing.B) {
	n := benchKeys(b)
	a := &audit.Auditor{Bucket: genBucket{n}, Fold: genFold{n}, Logger: quiet()}
	var total time.Duration
	var peak uint64
	iters := 0
	for b.Loop() {
		var rep audit.Report
		var err error
		d, p := measure(func() { rep, err = a.Run(b.Context()) })
		if err != nil || !rep.Equal() || rep.Checked != n {
			b.Fatalf("audit: %v, %d divergences, %d checked", err, len(rep.Divergences), rep.Checked)
		}
		total += d
		peak = max(peak, p)
		iters++
	}
	b.ReportMetric(float64(n)*float64(iters)/total.Seconds(), "keys/s")
	b.ReportMetric(float64(peak)/float64(n), "peak-bytes/key")
	b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
	b.ReportMetric(0, "ns/op")
}
