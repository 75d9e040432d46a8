package applog_test

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B, dir string) slipstream.Store {
		s, err := applog.Open(dir, &applog.Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}

// BenchmarkLoad measures opening a compact fold of BenchKeys entries
// (storetest's workload: ~27-byte keys, 256-byte values): the replay, the
// in-RAM table and its key index. MB/s is of log bytes.
func BenchmarkLoad(b *testing.B) {
	dir := b.TempDir()
	w := storetest.NewWorkload(storetest.BenchKeys())
	s, err := applog.Open(dir, &applog.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	w.Hydrate(b, s)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	// Reopen once so the file is compact (the timed loads never rewrite).
	s, err = applog.Open(dir, &applog.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(filepath.Join(dir, applog.FileName))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	var cpu0 time.Duration
	first := true
	for b.Loop() {
		if first {
			cpu0, first = storetest.CPUTime(), false
		}
		s, err := applog.Open(dir, &applog.Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		if n, err := s.Len(); err != nil || n != len(w.Keys) {
			b.Fatalf("loaded %d entries (%v)", n, err)
		}
		s.Close()
	}
	b.ReportMetric(float64(len(w.Keys)*b.N)/b.Elapsed().Seconds(), "entries/s")
	if cpu := storetest.CPUTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(fi.Size())*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
}

// BenchmarkOpenCold is BenchmarkLoad as a restarted process sees it: the
// heap is handed back to the operating system before each open (not
// timed), so the keydir is built in fresh pages, whose faults are reported
// (faults/op) beside the CPU time per open. On a VM where a fresh page
// costs microseconds, faults are a large part of a restart.
func BenchmarkOpenCold(b *testing.B) {
	dir := b.TempDir()
	w := storetest.NewWorkload(storetest.BenchKeys())
	s, err := applog.Open(dir, &applog.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	w.Hydrate(b, s)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	var faults int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		debug.FreeOSMemory()
		cpu0, f0 := storetest.CPUTime(), storetest.PageFaults()
		b.StartTimer()
		s, err := applog.Open(dir, &applog.Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += storetest.CPUTime() - cpu0
		faults += storetest.PageFaults() - f0
		if n, err := s.Len(); err != nil || n != len(w.Keys) {
			b.Fatalf("loaded %d entries (%v)", n, err)
		}
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(faults)/float64(b.N), "faults/op")
	b.ReportMetric(cpu.Seconds()/float64(b.N)*1e3, "cpu-ms/op")
}

// BenchmarkMemory measures the heap a fold of BenchKeys entries holds (the
// HeapInuse delta after GC, with the fold loaded from disk as after a
// restart) against the raw key and value bytes. Values stay in the log (the
// page cache), outside this figure. Run with -benchtime=1x.
func BenchmarkMemory(b *testing.B) {
	dir := b.TempDir()
	w := storetest.NewWorkload(storetest.BenchKeys())
	s, err := applog.Open(dir, &applog.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	w.Hydrate(b, s)
	s.Close()
	raw := w.RawBytes(len(w.Keys))
	var perEntry float64
	for b.Loop() {
		before := heapInuse()
		s, err := applog.Open(dir, &applog.Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		after := heapInuse()
		perEntry = float64(after-before) / float64(len(w.Keys))
		runtime.KeepAlive(s)
		s.Close()
	}
	b.ReportMetric(perEntry, "heap-B/entry")
	b.ReportMetric(float64(raw)/float64(len(w.Keys)), "raw-B/entry")
	b.ReportMetric(perEntry*float64(len(w.Keys))/float64(raw), "x-raw")
}

func heapInuse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
