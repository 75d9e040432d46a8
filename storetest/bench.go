package storetest

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
)

// BenchOpener opens the fold in dir for a benchmark; it fails b on error.
type BenchOpener func(b *testing.B, dir string) slipstream.Store

// Benchmark sizes. SLIPSTREAM_BENCH_KEYS overrides the key space (a multiple
// of 1,000; e.g. 1000000); the default keeps a run short on a small machine.
const (
	DefaultBenchKeys = 100_000
	BenchValueLen    = 256
	routesPerService = 1000
	poolSize         = 1 << 20
)

// BenchKeys returns the benchmark key space: SLIPSTREAM_BENCH_KEYS rounded
// down to a multiple of 1,000, or DefaultBenchKeys.
func BenchKeys() int {
	if s := os.Getenv("SLIPSTREAM_BENCH_KEYS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= routesPerService {
			return n / routesPerService * routesPerService
		}
	}
	return DefaultBenchKeys
}

// Workload is the key and value generator of the benchmarks: keys
// route.svc-NNNNNN.NNNNNNNN with 1,000 routes per service, values sliced
// from a 1 MiB xorshift64* pool.
type Workload struct {
	Keys []string
	pool []byte
}

// NewWorkload returns the workload over n keys.
func NewWorkload(n int) *Workload {
	w := &Workload{Keys: make([]string, n), pool: make([]byte, poolSize)}
	for i := range w.Keys {
		w.Keys[i] = fmt.Sprintf("route.svc-%06d.%08d", i/routesPerService, i)
	}
	x := uint64(0x5EED5EED5EED5EED)
	for i := range w.pool {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		w.pool[i] = byte((x * 0x2545F4914F6CDD1D) >> 56)
	}
	return w
}

// Value returns the BenchValueLen-byte value of update i (a slice of the
// pool: the store copies what it keeps).
func (w *Workload) Value(i int) []byte {
	off := (i * 7919) % (poolSize - BenchValueLen)
	return w.pool[off : off+BenchValueLen]
}

// ServicePrefix returns the prefix of service s: its 1,000 routes.
func ServicePrefix(s int) string { return fmt.Sprintf("route.svc-%06d.", s) }

// RawBytes returns the key and value bytes of n workload entries.
func (w *Workload) RawBytes(n int) int64 {
	var t int64
	for _, k := range w.Keys[:n] {
		t += int64(len(k) + BenchValueLen)
	}
	return t
}

// Hydrate applies puts of every key, 1,000 per batch, cursor = entries so
// far.
func (w *Workload) Hydrate(tb testing.TB, s slipstream.Store) {
	tb.Helper()
	batch := make([]slipstream.Update, 0, 1000)
	for i, k := range w.Keys {
		batch = append(batch, slipstream.Put(k, w.Value(i), slipstream.VersionFromUint64(uint64(i+1))))
		if len(batch) == cap(batch) || i == len(w.Keys)-1 {
			if err := s.Apply(batch, slipstream.CursorFromUint64(uint64(i+1))); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// Bench runs the whole workload: BenchApply and BenchRead.
func Bench(b *testing.B, open BenchOpener) {
	b.Run("Apply", func(b *testing.B) { BenchApply(b, open) })
	b.Run("Read", func(b *testing.B) { BenchRead(b, open) })
}

// BenchApply measures Apply throughput with BenchValueLen-byte values in
// batches of 100 and 1,000 (sub-benchmarks batch=100, batch=1000), cycling
// over BenchKeys keys: inserts first, then overwrites. It reports
// updates/s (wall clock) and updates/cpu-s (per second of the process's
// CPU time, background work included). Compactions and flushes the backend
// does along the way are part of the cost.
func BenchApply(b *testing.B, open BenchOpener) {
	w := NewWorkload(BenchKeys())
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s := open(b, b.TempDir())
			defer s.Close()
			batch := make([]slipstream.Update, n)
			b.SetBytes(int64(n) * (int64(len(w.Keys[0])) + BenchValueLen))
			b.ReportAllocs()
			i := 0
			var cpu0 time.Duration
			for b.Loop() {
				if i == 0 {
					cpu0 = CPUTime()
				}
				for j := range batch {
					batch[j] = slipstream.Put(w.Keys[i%len(w.Keys)], w.Value(i), slipstream.VersionFromUint64(uint64(i+1)))
					i++
				}
				if err := s.Apply(batch, slipstream.CursorFromUint64(uint64(i))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "updates/s")
			if cpu := CPUTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(i)/cpu.Seconds(), "updates/cpu-s")
			}
		})
	}
}

// Settler is implemented by stores that can compact themselves for reads
// (pebblestore); BenchRead settles after hydrating, as a server would before
// serving.
type Settler interface{ Settle() error }

// BenchRead hydrates BenchKeys keys once, then measures point reads of
// present keys (Get), of absent keys (GetMiss), and 1,000-entry prefix
// scans of one service (Range1000), with random keys drawn outside the
// timed body's setup.
func BenchRead(b *testing.B, open BenchOpener) {
	w := NewWorkload(BenchKeys())
	s := open(b, b.TempDir())
	defer s.Close()
	w.Hydrate(b, s)
	if st, ok := s.(Settler); ok {
		if err := st.Settle(); err != nil {
			b.Fatal(err)
		}
	}
	rng := uint64(0x9E3779B97F4A7C15)
	next := func() uint64 {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return rng
	}
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			k := w.Keys[next()%uint64(len(w.Keys))]
			if _, ok, err := s.Get(k); !ok || err != nil {
				b.Fatalf("Get(%q) = %v, %v", k, ok, err)
			}
		}
		cpu.report(b, b.N, "cpu-ns/op")
	})
	b.Run("GetMiss", func(b *testing.B) {
		misses := make([]string, 1024)
		for i := range misses {
			misses[i] = fmt.Sprintf("route.svc-9%06d.%08d", next()%1_000_000, i)
		}
		b.ReportAllocs()
		i := 0
		cpu := startCPU()
		for b.Loop() {
			if _, ok, err := s.Get(misses[i%len(misses)]); ok || err != nil {
				b.Fatalf("miss found: %v %v", ok, err)
			}
			i++
		}
		cpu.report(b, b.N, "cpu-ns/op")
	})
	b.Run("Range1000", func(b *testing.B) {
		services := len(w.Keys) / routesPerService
		prefixes := make([]string, services)
		for i := range prefixes {
			prefixes[i] = ServicePrefix(i)
		}
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			n := 0
			err := s.ForEachInRange(prefixes[next()%uint64(services)], func(slipstream.Entry) error { n++; return nil })
			if err != nil || n != routesPerService {
				b.Fatalf("range: %d entries, %v", n, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/routesPerService, "ns/entry")
		cpu.report(b, b.N*routesPerService, "cpu-ns/entry")
	})
}

// cpuClock measures the process's CPU time over a benchmark loop: on a
// shared machine, wall time per operation also counts the time other
// processes held the CPU.
type cpuClock struct{ start time.Duration }

func startCPU() cpuClock { return cpuClock{CPUTime()} }

// report adds the CPU nanoseconds per op over n ops (nothing where the
// platform does not report CPU time).
func (c cpuClock) report(b *testing.B, n int, unit string) {
	if d := CPUTime() - c.start; d > 0 && n > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(n), unit)
	}
}
