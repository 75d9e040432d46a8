package objstore_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/natskv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/file"
	"github.com/slipstream-kv/slipstream/objstore/mem"
	"github.com/slipstream-kv/slipstream/objstore/natsobj"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
	"github.com/slipstream-kv/slipstream/objstore/s3"
)

// The transport benchmarks move a large artifact (300 MB by default) through
// every store and beside a raw file copy of the same bytes. They are long,
// so they run only with SLIPSTREAM_TRANSPORT_BENCH=1:
//
//	SLIPSTREAM_TRANSPORT_BENCH=1 go test ./objstore -run '^$' -bench BenchmarkTransport -benchtime 3x -timeout 60m
//
// SLIPSTREAM_TRANSPORT_BENCH_MB sets the artifact size. The S3 server
// (gofakes3) and the NATS server run in child processes, so the reported
// peak RSS (VmHWM, reset before each benchmark) is the client's alone; the
// in-memory store holds every object in the benchmark's own process, so its
// RSS includes the stored payload.
const benchEnv = "SLIPSTREAM_TRANSPORT_BENCH"

// serveEnv makes the test binary a benchmark server: "s3" or "nats".
const serveEnv = "SLIPSTREAM_TRANSPORT_BENCH_SERVE"

func TestMain(m *testing.M) {
	switch os.Getenv(serveEnv) {
	case "s3":
		serveS3()
	case "nats":
		serveNATS()
	default:
		os.Exit(m.Run())
	}
}

// serveS3 runs gofakes3 with an in-memory backend and one bucket on
// 127.0.0.1, prints its URL, and exits when stdin closes.
func serveS3() {
	backend := s3mem.New()
	if err := backend.CreateBucket("bench"); err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go http.Serve(l, gofakes3.New(backend).Server())
	fmt.Println("http://" + l.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// serveNATS runs a JetStream server on 127.0.0.1, prints its URL, and exits
// when stdin closes.
func serveNATS() {
	dir, err := os.MkdirTemp("", "slipstream-bench-nats-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		panic("nats server not ready")
	}
	fmt.Println(srv.ClientURL())
	io.Copy(io.Discard, os.Stdin)
	srv.Shutdown()
	os.RemoveAll(dir)
	os.Exit(0)
}

// child starts this test binary as a server of kind and returns its URL.
func child(b *testing.B, kind string) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+kind)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("%s server: %v", kind, err)
	}
	return strings.TrimSpace(line)
}

// bigArtifact writes an artifact whose one data file holds mb MB of
// pseudo-random bytes (the transport neither hashes nor parses payload
// files, so the manifest's digest is a placeholder).
func bigArtifact(b *testing.B, dir string, mb int) int64 {
	b.Helper()
	size := int64(mb) * 1_000_000
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "data", "blob"))
	if err != nil {
		b.Fatal(err)
	}
	chunk := objstoretest.Random(1, 1<<20)
	w := bufio.NewWriterSize(f, 1<<20)
	for n := int64(0); n < size; {
		k := min(int64(len(chunk)), size-n)
		w.Write(chunk[:k])
		chunk[0]++ // no two chunks alike
		n += k
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	m := &artifact.Manifest{
		SchemaVersion: artifact.SchemaVersion, Backend: "bench", BackendVersion: "1",
		Cursor: slipstream.CursorFromUint64(1),
		Files:  []artifact.File{{Path: "data/blob", Size: uint64(size), BLAKE3: strings.Repeat("0", 64)}},
	}
	mb2, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, artifact.ManifestName), mb2, 0o644); err != nil {
		b.Fatal(err)
	}
	return size
}

// resetPeakRSS returns freed memory to the system (the in-memory store of an
// earlier benchmark) and resets VmHWM to the current RSS (Linux);
// peakRSSMiB reads it.
func resetPeakRSS() bool {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kib, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(v)), "kB")), 64)
			return kib / 1024
		}
	}
	return 0
}

func BenchmarkTransport(b *testing.B) {
	if os.Getenv(benchEnv) == "" {
		b.Skipf("set %s=1 to move a large artifact through every store", benchEnv)
	}
	mb := 300
	if v, err := strconv.Atoi(os.Getenv(benchEnv + "_MB")); err == nil && v > 0 {
		mb = v
	}
	work := b.TempDir()
	art := filepath.Join(work, "artifact")
	size := bigArtifact(b, art, mb)

	b.Run("raw-copy", func(b *testing.B) {
		src := filepath.Join(art, "data", "blob")
		dst := filepath.Join(work, "copy")
		measure(b, size, func() {
			in, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			out, err := os.Create(dst)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(out, in); err != nil {
				b.Fatal(err)
			}
			in.Close()
			if err := out.Close(); err != nil {
				b.Fatal(err)
			}
		})
		os.Remove(dst)
	})

	stores := []struct {
		name string
		open func(b *testing.B) objstore.Store
	}{
		{"file", func(b *testing.B) objstore.Store {
			s, err := file.Open(filepath.Join(work, "objects"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"mem", func(b *testing.B) objstore.Store { return mem.New() }},
		{"s3", func(b *testing.B) objstore.Store {
			for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"} {
				b.Setenv(k, v)
			}
			s, err := s3.New(context.Background(), s3.Config{Bucket: "bench", Endpoint: child(b, "s3"), PathStyle: true})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"nats", func(b *testing.B) objstore.Store {
			nc, err := natskv.Dial(natskv.DialConfig{URL: child(b, "nats")})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(nc.Close)
			s, err := natsobj.Open(context.Background(), nc, natsobj.Config{Bucket: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			// Re-uploads republish at the same rank: the file store needs
			// the opt-in for that.
			tr := &objstore.Transport{Store: st.open(b), Prefix: "bench", NonAtomicPointerFallback: true}
			ctx := context.Background()
			b.Run("upload", func(b *testing.B) {
				measure(b, size, func() {
					if _, err := tr.Upload(ctx, "k", art); err != nil {
						b.Fatal(err)
					}
				})
			})
			b.Run("download", func(b *testing.B) {
				if _, err := tr.Manifest(ctx, "k"); err != nil {
					b.Skipf("nothing uploaded: %v", err)
				}
				out := filepath.Join(work, "out")
				measure(b, size, func() {
					if _, err := tr.Download(ctx, "k", out); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					os.RemoveAll(out)
					b.StartTimer()
				})
			})
		})
	}
}

// measure runs op b.N times and reports throughput and the peak RSS seen
// since the benchmark started.
func measure(b *testing.B, size int64, op func()) {
	b.SetBytes(size)
	b.ReportAllocs()
	reset := resetPeakRSS()
	for b.Loop() {
		op()
	}
	if reset {
		b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
	}
}
