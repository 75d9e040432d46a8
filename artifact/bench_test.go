package artifact_test

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/pebblestore"
	"github.com/slipstream-kv/slipstream/storetest"
)

// BenchmarkArtifact exports and imports a fold of storetest.BenchKeys()
// keys × 256 B (SLIPSTREAM_BENCH_KEYS=1000000 for the 1 M-key run) on each
// backend, beside the same run's physical baseline: copying and
// BLAKE3-hashing the artifact's payload bytes (1 MiB buffers, fsync per
// file). MB/s is payload bytes per second. Extra metrics:
//
//	payload-MB   the artifact's payload size
//	copied-MB    payload bytes the export wrote (not hard-linked from the fold)
//	rss-grow-MB  peak RSS during the phase minus RSS before it (Linux)
//	cpu-s/op     the process's user+system CPU seconds per operation, less
//	             sensitive than wall time to a machine shared with other work
//
// import+open also opens the imported fold (what a new node does before
// it resumes), to set beside hydrating the same keys from a server
// (slipstream bench).
func BenchmarkArtifact(b *testing.B) {
	n := storetest.BenchKeys()
	w := storetest.NewWorkload(n)
	for _, be := range []struct {
		name    string
		backend artifact.Backend
		open    func(b *testing.B, dir string) slipstream.Store
	}{
		{"applog", applog.ArtifactBackend{}, func(b *testing.B, dir string) slipstream.Store {
			s, err := applog.Open(dir, &applog.Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"pebble", pebblestore.ArtifactBackend{Logger: quiet}, func(b *testing.B, dir string) slipstream.Store {
			s, err := pebblestore.Open(dir, &pebblestore.Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	} {
		b.Run(be.name, func(b *testing.B) {
			root := b.TempDir()
			s := be.open(b, filepath.Join(root, "fold"))
			defer s.Close()
			w.Hydrate(b, s)
			art := filepath.Join(root, "art")
			m, err := artifact.ExportStore(s, art)
			if err != nil {
				b.Fatal(err)
			}
			payload := int64(m.Size())
			scratch := filepath.Join(root, "scratch")

			b.Run("baseline-copy+hash", func(b *testing.B) {
				phase(b, payload, func(dst string) { copyAndHash(b, art, dst, m) }, scratch, nil)
			})
			b.Run("export", func(b *testing.B) {
				phase(b, payload, func(dst string) {
					if _, err := artifact.ExportStore(s, dst); err != nil {
						b.Fatal(err)
					}
				}, scratch, func(dst string) { b.ReportMetric(copiedMB(b, dst), "copied-MB") })
			})
			b.Run("import", func(b *testing.B) {
				phase(b, payload, func(dst string) {
					if _, err := artifact.Import(art, dst, be.backend); err != nil {
						b.Fatal(err)
					}
				}, scratch, nil)
			})
			b.Run("import+open", func(b *testing.B) {
				phase(b, payload, func(dst string) {
					if _, err := artifact.Import(art, dst, be.backend); err != nil {
						b.Fatal(err)
					}
					f := be.open(b, dst)
					if f.Cursor() != m.Cursor {
						b.Fatalf("imported fold at %v, want %v", f.Cursor(), m.Cursor)
					}
					if err := f.Close(); err != nil {
						b.Fatal(err)
					}
				}, scratch, nil)
			})
		})
	}
}

// phase times run(dst) b.N times into a fresh dst each, reporting MB/s of
// payload bytes, the payload size and the RSS growth; after, if set, sees
// the last dst.
func phase(b *testing.B, payload int64, run func(dst string), scratch string, after func(dst string)) {
	b.SetBytes(payload)
	runtime.GC()
	before := rss()
	resetPeakRSS()
	var cpu time.Duration
	var dst string
	for i := 0; b.Loop(); i++ {
		dst = filepath.Join(scratch, strconv.Itoa(i))
		c0 := cpuTime()
		run(dst)
		cpu += cpuTime() - c0
		b.StopTimer()
		if after != nil {
			after(dst)
		}
		if err := os.RemoveAll(scratch); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(payload)/(1<<20), "payload-MB")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	if peak := peakRSS(); peak > 0 && before > 0 {
		b.ReportMetric(float64(peak-before)/(1<<20), "rss-grow-MB")
	}
}

// copyAndHash is the physical baseline: every payload file copied into dst
// with a 1 MiB buffer while BLAKE3 hashes it, then fsynced.
func copyAndHash(b *testing.B, art, dst string, m *artifact.Manifest) {
	buf := make([]byte, 1<<20)
	for _, f := range m.Files {
		out := filepath.Join(dst, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			b.Fatal(err)
		}
		in, err := os.Open(filepath.Join(art, filepath.FromSlash(f.Path)))
		if err != nil {
			b.Fatal(err)
		}
		o, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		h := blake3.New(32, nil)
		if _, err := io.CopyBuffer(io.MultiWriter(o, h), struct{ io.Reader }{in}, buf); err != nil {
			b.Fatal(err)
		}
		if err := o.Sync(); err != nil {
			b.Fatal(err)
		}
		o.Close()
		in.Close()
		h.Sum(nil)
	}
}

// copiedMB sums the artifact's payload files that are not hard links.
func copiedMB(b *testing.B, art string) float64 {
	var n int64
	err := filepath.Walk(filepath.Join(art, artifact.DataDir), func(_ string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Nlink == 1 {
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / (1 << 20)
}

// cpuTime returns the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS resets the kernel's peak-RSS mark (Linux).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakRSS() int64 { return procStatus("VmHWM:") }
func rss() int64     { return procStatus("VmRSS:") }

// procStatus reads a kB field of /proc/self/status; 0 where unavailable.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte(field)); ok {
			if f := bytes.Fields(v); len(f) > 0 {
				kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
