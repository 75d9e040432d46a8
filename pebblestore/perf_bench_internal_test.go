//go:build linux

package pebblestore

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/storetest"
)

// The benchmarks in this file explain where an Apply's time goes on a given
// machine rather than only how long it takes: the calling thread's CPU time
// and page faults, pebble's flushes, compactions and write stalls. See
// docs/OPERATIONS.md ("What bounds the Pebble fold") for the figures.

// usage is what getrusage reports for the process or one thread.
type usage struct {
	cpu           time.Duration
	minflt        int64 // minor page faults
	nvcsw, nivcsw int64 // voluntary (blocked) and involuntary (preempted) context switches
}

// rusageThread is Linux's RUSAGE_THREAD: the calling thread only (lock the
// goroutine to its thread around the measurement).
const rusageThread = 1

func getUsage(b *testing.B, who int) usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		b.Fatal(err)
	}
	return usage{time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt, ru.Nvcsw, ru.Nivcsw}
}

func (u usage) sub(v usage) usage {
	return usage{u.cpu - v.cpu, u.minflt - v.minflt, u.nvcsw - v.nvcsw, u.nivcsw - v.nivcsw}
}

func (u usage) add(v usage) usage {
	return usage{u.cpu + v.cpu, u.minflt + v.minflt, u.nvcsw + v.nvcsw, u.nivcsw + v.nivcsw}
}

// span is an interval during which pebble ran a flush, a compaction or a
// write stall.
type span struct {
	kind       string // "flush", "compaction", "stall"
	start, end time.Time
}

// recorder records pebble's background work from its event listener.
type recorder struct {
	mu      sync.Mutex
	open    map[string]time.Time // by kind and job
	spans   []span
	reasons map[string]int // write stall reasons
}

func newRecorder() *recorder {
	return &recorder{open: map[string]time.Time{}, reasons: map[string]int{}}
}

func (r *recorder) begin(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open[id] = time.Now()
}

func (r *recorder) end(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.open[id]; ok {
		kind, _, _ := strings.Cut(id, " ")
		r.spans = append(r.spans, span{kind, t, time.Now()})
		delete(r.open, id)
	}
}

// tune installs the recorder as pebble's event listener.
func (r *recorder) tune(o *pebble.Options) {
	o.EventListener = &pebble.EventListener{
		FlushBegin:      func(i pebble.FlushInfo) { r.begin(fmt.Sprint("flush ", i.JobID)) },
		FlushEnd:        func(i pebble.FlushInfo) { r.end(fmt.Sprint("flush ", i.JobID)) },
		CompactionBegin: func(i pebble.CompactionInfo) { r.begin(fmt.Sprint("compaction ", i.JobID)) },
		CompactionEnd:   func(i pebble.CompactionInfo) { r.end(fmt.Sprint("compaction ", i.JobID)) },
		WriteStallBegin: func(i pebble.WriteStallBeginInfo) {
			r.begin("stall")
			r.mu.Lock()
			defer r.mu.Unlock()
			r.reasons[i.Reason]++
		},
		WriteStallEnd: func() { r.end("stall") },
	}
}

// within returns the total time spans of kind ran within [from, to].
func (r *recorder) within(kind string, from, to time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d time.Duration
	for _, sp := range r.spans {
		if sp.kind != kind {
			continue
		}
		start, end := sp.start, sp.end
		if start.Before(from) {
			start = from
		}
		if end.After(to) {
			end = to
		}
		d += max(end.Sub(start), 0)
	}
	return d
}

// overlapping returns the kinds of work that overlapped [from, to].
func (r *recorder) overlapping(from, to time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var kinds []string
	add := func(k string, a, b time.Time) {
		if !a.After(to) && !b.Before(from) && !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	for _, sp := range r.spans {
		add(sp.kind, sp.start, sp.end)
	}
	for id, t := range r.open {
		k, _, _ := strings.Cut(id, " ")
		add(k, t, to)
	}
	return kinds
}

// BenchmarkHydrate measures the shape of a mirror's initial load: each
// iteration opens a fresh store, applies puts of every
// SLIPSTREAM_BENCH_KEYS key (256-byte values) in batches of 1,000, no-sync,
// then flushes and waits for the compactions the load started. Memtables
// are sized from the machine and, for comparison, at 16 and 4 MiB.
//
// The applies run on one locked OS thread, whose own CPU time and minor
// page faults (RUSAGE_THREAD) are the cost on the caller's path: pebble
// copies each batch into the memtable in the committing goroutine, while
// flushes and compactions run on others. Metrics: keys/s of the applies
// and keys/s-settled (until pebble is idle again); apply-cpu-ns/key and
// apply-minflt/1kkeys (the applying thread); keys/cpu-s and minflt/1kkeys
// (the process); stall-s and stalls (pebble's write stalls; their reasons
// are logged); compaction-s-in-applies and compaction-s-after (compaction
// time overlapping the applies, then until idle); write-amp (bytes written
// to sstables per byte written to the WAL).
func BenchmarkHydrate(b *testing.B) {
	w := storetest.NewWorkload(storetest.BenchKeys())
	for _, mt := range []int64{0, 16 << 20, 4 << 20} {
		name := "machine"
		if mt > 0 {
			name = fmt.Sprintf("%dMiB", mt>>20)
		}
		b.Run("memtable="+name, func(b *testing.B) {
			batch := make([]slipstream.Update, 0, 1000)
			var applyWall, settledWall, stalled, compIn, compAfter time.Duration
			var apply, proc usage
			var stalls int
			var wamp float64
			for b.Loop() {
				rec := newRecorder()
				s, err := open(b.TempDir(), &Options{MemTableSize: mt, Logger: slog.New(slog.DiscardHandler)}, vfs.Default, rec.tune)
				if err != nil {
					b.Fatal(err)
				}
				runtime.LockOSThread()
				t0 := getUsage(b, rusageThread)
				p0 := getUsage(b, syscall.RUSAGE_SELF)
				start := time.Now()
				for i, k := range w.Keys {
					batch = append(batch, slipstream.Put(k, w.Value(i), slipstream.VersionFromUint64(uint64(i+1))))
					if len(batch) == cap(batch) || i == len(w.Keys)-1 {
						if err := s.Apply(batch, slipstream.CursorFromUint64(uint64(i+1))); err != nil {
							b.Fatal(err)
						}
						batch = batch[:0]
					}
				}
				applied := time.Now()
				t1 := getUsage(b, rusageThread)
				runtime.UnlockOSThread()
				if err := s.db.Flush(); err != nil {
					b.Fatal(err)
				}
				for s.db.Metrics().Compact.NumInProgress > 0 {
					time.Sleep(time.Millisecond)
				}
				settled := time.Now()
				p1 := getUsage(b, syscall.RUSAGE_SELF)
				tot := s.db.Metrics().Total()
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				applyWall += applied.Sub(start)
				settledWall += settled.Sub(start)
				apply = apply.add(t1.sub(t0))
				proc = proc.add(p1.sub(p0))
				stalled += rec.within("stall", start, settled)
				compIn += rec.within("compaction", start, applied)
				compAfter += rec.within("compaction", applied, settled)
				wamp += tot.WriteAmp()
				for reason, n := range rec.reasons {
					stalls += n
					b.Logf("%d write stalls: %s", n, reason)
				}
			}
			keys := float64(b.N * len(w.Keys))
			n := float64(b.N)
			b.ReportMetric(keys/applyWall.Seconds(), "keys/s")
			b.ReportMetric(keys/settledWall.Seconds(), "keys/s-settled")
			b.ReportMetric(float64(apply.cpu.Nanoseconds())/keys, "apply-cpu-ns/key")
			b.ReportMetric(float64(apply.minflt)/keys*1000, "apply-minflt/1kkeys")
			b.ReportMetric(keys/proc.cpu.Seconds(), "keys/cpu-s")
			b.ReportMetric(float64(proc.minflt)/keys*1000, "minflt/1kkeys")
			b.ReportMetric(stalled.Seconds()/n, "stall-s")
			b.ReportMetric(float64(stalls)/n, "stalls")
			b.ReportMetric(compIn.Seconds()/n, "compaction-s-in-applies")
			b.ReportMetric(compAfter.Seconds()/n, "compaction-s-after")
			b.ReportMetric(wamp/n, "write-amp")
		})
	}
}

// BenchmarkLiveApply measures the applies a mirror makes once hydrated:
// SLIPSTREAM_BENCH_KEYS keys are hydrated (batches of 1,000), then batches
// of 100 random overwrites are applied every 10 ms (10,000 puts/s) for 500
// batches, on one locked OS thread. It reports the p50, p99 and max Apply
// latency, the thread's CPU time per Apply (p50, p99) and minor faults per
// Apply, and logs every Apply over 2 ms with its own CPU time, faults,
// voluntary context switches (it blocked: a pebble lock or a write stall),
// involuntary ones (it was preempted: CPU contention), and what overlapped
// it (a flush, a compaction, a write stall, a GC pause).
func BenchmarkLiveApply(b *testing.B) {
	w := storetest.NewWorkload(storetest.BenchKeys())
	for b.Loop() {
		rec := newRecorder()
		s, err := open(b.TempDir(), &Options{Logger: slog.New(slog.DiscardHandler)}, vfs.Default, rec.tune)
		if err != nil {
			b.Fatal(err)
		}
		w.Hydrate(b, s)
		hydrated := time.Now()
		rng := rand.New(rand.NewPCG(1, 2))
		batch := make([]slipstream.Update, 100)
		n := uint64(len(w.Keys))
		type slow struct {
			at, took time.Duration
			u        usage
			what     []string
		}
		var lat, cpus []time.Duration
		var slows []slow
		var faults int64
		runtime.LockOSThread()
		tick := time.NewTicker(10 * time.Millisecond)
		for range 500 {
			<-tick.C
			for j := range batch {
				n++
				batch[j] = slipstream.Put(w.Keys[rng.IntN(len(w.Keys))], w.Value(int(n)), slipstream.VersionFromUint64(n))
			}
			u0 := getUsage(b, rusageThread)
			t0 := time.Now()
			if err := s.Apply(batch, slipstream.CursorFromUint64(n)); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			u := getUsage(b, rusageThread).sub(u0)
			lat = append(lat, t1.Sub(t0))
			cpus = append(cpus, u.cpu)
			faults += u.minflt
			if t1.Sub(t0) > 2*time.Millisecond {
				slows = append(slows, slow{t0.Sub(hydrated), t1.Sub(t0), u, rec.overlapping(t0, t1)})
			}
		}
		tick.Stop()
		runtime.UnlockOSThread()
		var gc debug.GCStats
		debug.ReadGCStats(&gc)
		for i := range slows {
			for _, end := range gc.PauseEnd {
				if at := end.Sub(hydrated); at >= slows[i].at && at <= slows[i].at+slows[i].took {
					slows[i].what = append(slows[i].what, "gc")
					break
				}
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		slices.Sort(lat)
		slices.Sort(cpus)
		q := func(d []time.Duration, p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) }
		b.ReportMetric(q(lat, 0.5), "p50-µs")
		b.ReportMetric(q(lat, 0.99), "p99-µs")
		b.ReportMetric(q(lat, 1), "max-µs")
		b.ReportMetric(q(cpus, 0.5), "cpu-p50-µs")
		b.ReportMetric(q(cpus, 0.99), "cpu-p99-µs")
		b.ReportMetric(float64(faults)/float64(len(lat)), "minflt/apply")
		b.ReportMetric(float64(len(slows)), "over-2ms")
		for _, sl := range slows {
			b.Logf("apply at +%v took %v: thread CPU %v, %d faults, blocked %d, preempted %d; during %v",
				sl.at.Round(time.Millisecond), sl.took.Round(10*time.Microsecond), sl.u.cpu, sl.u.minflt, sl.u.nvcsw, sl.u.nivcsw, sl.what)
		}
	}
}
