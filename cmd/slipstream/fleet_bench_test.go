package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/fleet"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/natskv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/file"
	"github.com/slipstream-kv/slipstream/objstore/natsobj"
)

// BenchmarkFleetBootstrap measures a new node becoming ready at the bucket's
// head two ways, in the same run on the same server: a full hydration from
// NATS (the mirror's path), and a bootstrap from the fleet's latest artifact
// (from a local directory and from a NATS object store) followed by the
// tail of updates published after the export (1% of the keys).
//
// Bootstrap phases, through fleet.Import as the mirror runs it: download
// (fetch the payload into a temporary tar and unpack it), install (verify
// every file's size and BLAKE3 and the backend's cursor in place, shown
// apart, then move the payload into place), open (the fold), tail (resume
// the watch from the artifact's cursor until caught up).
//
// It needs SLIPSTREAM_BENCH_FLEET=<keys> (1000000 for the figure);
// SLIPSTREAM_BENCH_FLEET_BACKENDS picks the backends (default pebble,applog).
//
//	SLIPSTREAM_BENCH_FLEET=1000000 go test ./cmd/slipstream -run '^$' -bench FleetBootstrap -benchtime 1x -timeout 60m
func BenchmarkFleetBootstrap(b *testing.B) {
	raw := os.Getenv("SLIPSTREAM_BENCH_FLEET")
	if raw == "" {
		b.Skip("set SLIPSTREAM_BENCH_FLEET=<keys> (1000000 for the 1 M-key figure) to run")
	}
	keys, err := strconv.Atoi(raw)
	if err != nil || keys <= 0 {
		b.Fatalf("SLIPSTREAM_BENCH_FLEET=%q: want a number of keys", raw)
	}
	backends := []string{backendPebble, backendAppLog}
	if s := os.Getenv("SLIPSTREAM_BENCH_FLEET_BACKENDS"); s != "" {
		backends = strings.Split(s, ",")
	}
	ctx := b.Context()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := natstest.Start(b)
	c := &BenchCommand{keys: keys, valueSize: 256, window: 4096, batchMax: DefaultBatchMax, batchWindow: slipstream.DefaultMaxBatchDelay}
	fill, err := c.fill(ctx, natskv.DialConfig{URL: srv.URL()}, logger)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d keys × %d B in %v", keys, c.valueSize, fill.Round(time.Millisecond))
	nc := natstest.Connect(b, srv.URL())
	bucket, err := natskv.Open(ctx, nc, natskv.Config{Bucket: benchBucket, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}

	for _, be := range backends {
		b.Run(be, func(b *testing.B) {
			for b.Loop() {
				dir := b.TempDir()
				// The exporting node: hydrate, then export its fold.
				foldA := filepath.Join(dir, "a")
				if _, _, err := benchHydrate(ctx, c, srv.URL(), foldA, be, logger); err != nil {
					b.Fatal(err)
				}
				fa, err := openFold(foldA, be, logger)
				if err != nil {
					b.Fatal(err)
				}
				art := filepath.Join(dir, "artifact")
				m, err := artifact.ExportStore(fa, art)
				fa.Close()
				if err != nil {
					b.Fatal(err)
				}
				fs, err := file.Open(filepath.Join(dir, "store"))
				if err != nil {
					b.Fatal(err)
				}
				objs, err := natsobj.Open(ctx, nc, natsobj.Config{Bucket: "bench_" + be})
				if err != nil {
					b.Fatal(err)
				}
				stores := []struct {
					name string
					tr   *objstore.Transport
				}{
					{"local directory", &objstore.Transport{Store: fs}},
					{"NATS object store", &objstore.Transport{Store: objs}},
				}
				for _, s := range stores {
					if _, err := s.tr.Upload(ctx, "bench", art); err != nil {
						b.Fatalf("upload to the %s: %v", s.name, err)
					}
				}

				// The 1% tail after the export.
				tail := max(keys/100, 1)
				if err := publishTail(ctx, nc, keys, tail); err != nil {
					b.Fatal(err)
				}
				st, err := bucket.Status(ctx)
				if err != nil {
					b.Fatal(err)
				}
				head := st.LastSeq

				// A new node by full hydration.
				n, full, err := benchHydrate(ctx, c, srv.URL(), filepath.Join(dir, "full"), be, logger)
				if err != nil {
					b.Fatal(err)
				}
				if n != keys {
					b.Fatalf("full hydration folded %d keys, want %d", n, keys)
				}

				fmt.Printf("\n%s, %d keys × %d B, artifact %s (%d files) at cursor %d, tail %d updates to head %d\n",
					be, keys, c.valueSize, sizeText(float64(m.Size())), len(m.Files), m.Cursor.Rank(), tail, head)
				tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintf(tw, "path\tdownload\tinstall\t(verify)\topen\ttail\tready\tspeed-up\t\n")
				fmt.Fprintf(tw, "full hydration from NATS\t\t\t\t\t\t%s\t1.0×\t\n", secs(full))
				b.ReportMetric(full.Seconds(), "s/full-hydration")
				for _, s := range stores {
					ph, err := bootstrapPhases(ctx, s.tr, srv.URL(), filepath.Join(dir, "boot-"+strings.ReplaceAll(s.name, " ", "-")), be, head, logger)
					if err != nil {
						b.Fatalf("bootstrap from the %s: %v", s.name, err)
					}
					ready := ph.download + ph.imp + ph.open + ph.tail
					fmt.Fprintf(tw, "bootstrap from the %s + tail\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f×\t\n", s.name,
						secs(ph.download), secs(ph.imp), secs(ph.verify), secs(ph.open), secs(ph.tail), secs(ready),
						full.Seconds()/ready.Seconds())
					unit := "s/bootstrap-" + strings.Fields(s.name)[len(strings.Fields(s.name))-2]
					b.ReportMetric(ready.Seconds(), unit)
				}
				tw.Flush()
				fmt.Println("install = verify (every file's size and BLAKE3, the backend's cursor) + move into place")
			}
		})
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

type phases struct{ download, verify, imp, open, tail time.Duration }

// bootstrapPhases runs a new node's bootstrap (fleet.Import, as the mirror
// does) from tr's "bench" artifact into dir and resumes it until caught up
// at head, timing each phase.
func bootstrapPhases(ctx context.Context, tr *objstore.Transport, url, dir, be string, head uint64, logger *slog.Logger) (phases, error) {
	var ph phases
	dest := filepath.Join(dir, "fold")
	im := &fleet.Import{Transport: tr, Key: "bench", ScratchDir: filepath.Join(dir, "scratch"),
		Backends: []artifact.Backend{artifactBackend(be, logger)}}
	res, err := im.Run(ctx, dest)
	if err != nil {
		return ph, err
	}
	ph.download, ph.verify, ph.imp = res.Download, res.Verify, res.Install
	start := time.Now()
	fd, err := openFold(dest, be, logger)
	if err != nil {
		return ph, err
	}
	defer fd.Close()
	ph.open = time.Since(start)
	start = time.Now()
	if err := catchUp(ctx, url, fd, logger); err != nil {
		return ph, err
	}
	ph.tail = time.Since(start)
	if c := fd.Cursor().Rank(); c != head {
		return ph, fmt.Errorf("caught up at %d, want the head %d", c, head)
	}
	return ph, nil
}

// catchUp runs the mirror's path on an open fold (a fresh connection,
// natskv bucket, supervised Follower) until it has caught up.
func catchUp(ctx context.Context, url string, fd *fold, logger *slog.Logger) error {
	nc, err := natskv.Dial(natskv.DialConfig{URL: url, Name: "slipstream bench tail"})
	if err != nil {
		return err
	}
	defer nc.Close()
	scope := slipstream.AllKeys()
	t := newTracker(scope, logger, nil)
	bucket, err := natskv.Open(ctx, nc, natskv.Config{Bucket: benchBucket, Logger: logger, OnProgress: t.onProgress})
	if err != nil {
		return err
	}
	mr := &mirror{bucket: bucket, fold: fd, scope: scope, batchMax: DefaultBatchMax, batchWindow: slipstream.DefaultMaxBatchDelay, log: logger, t: t}
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- mr.run(runCtx) }()
	select {
	case <-t.readyCh:
	case err := <-errc:
		stop()
		return fmt.Errorf("mirror stopped before catching up: %w", errors.Join(err, ctx.Err()))
	}
	stop()
	return <-errc
}

// publishTail overwrites n random keys of the benchmark's bucket.
func publishTail(ctx context.Context, nc *nats.Conn, keys, n int) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(7, 7))
	val := make([]byte, 256)
	var futures []jetstream.PubAckFuture
	wait := func() error {
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, f := range futures {
			select {
			case err := <-f.Err():
				return err
			default:
			}
		}
		futures = futures[:0]
		return nil
	}
	for range n {
		for i := range val {
			val[i] = byte(rng.Uint32())
		}
		f, err := js.PublishAsync(fmt.Sprintf("$KV.%s.k.%09d", benchBucket, rng.IntN(keys)), val)
		if err != nil {
			return err
		}
		if futures = append(futures, f); len(futures) == 1000 {
			if err := wait(); err != nil {
				return err
			}
		}
	}
	return wait()
}

// benchHydrate runs the bench's mirror path into foldDir until it has
// caught up and returns the fold's key count and the time from the dial.
func benchHydrate(ctx context.Context, c *BenchCommand, url, foldDir, backend string, logger *slog.Logger) (int, time.Duration, error) {
	h, took, err := c.startMirror(ctx, natskv.DialConfig{URL: url}, foldDir, backend, logger, nil)
	if err != nil {
		return 0, 0, err
	}
	n, lerr := h.fd.Keys()
	if err := h.close(); err != nil {
		return 0, 0, err
	}
	return n, took, lerr
}
