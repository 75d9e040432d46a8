package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/natskv"
)

// BenchCommand measures hydration: N keys through the real mirror path
// (natskv watch → Follower → fold) per backend, against raw nats.go WatchAll
// to the initial-values marker, in the same run on the same embedded server.
type BenchCommand struct {
	m *Main

	keys        int
	valueSize   int
	backends    string
	batchMax    int
	batchWindow time.Duration
	window      int
	dir         string
	cpuProfile  string
	asJSON      bool
	lastFlush   time.Duration // time the last hydration spent in flushes
	logs        logFlags
}

// benchBucket is the bucket the benchmark fills.
const benchBucket = "slipstream_bench"

// benchPhase is one measured hydration.
type benchPhase struct {
	Name       string  `json:"name"`
	Keys       int     `json:"keys"`
	Seconds    float64 `json:"seconds"`
	KeysPerSec float64 `json:"keys_per_sec"`
	PeakRSS    int64   `json:"peak_rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// FlushSeconds is the time the follower's loop spent flushing
	// (Apply and the fold's write): the loop receives nothing meanwhile.
	FlushSeconds float64 `json:"flush_seconds,omitempty"`
	Ratio        float64 `json:"ratio_vs_raw,omitempty"`
}

// benchReport is the output of `slipstream bench -json`.
type benchReport struct {
	Keys          int          `json:"keys"`
	ValueSize     int          `json:"value_size"`
	BatchMax      int          `json:"batch_max"`
	BatchWindow   string       `json:"batch_window"`
	GOMAXPROCS    int          `json:"gomaxprocs"`
	FillSeconds   float64      `json:"fill_seconds"`
	FillPerSec    float64      `json:"fill_keys_per_sec"`
	PhaseRSSReset bool         `json:"phase_rss_reset"`
	Phases        []benchPhase `json:"phases"`
}

func (c *BenchCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("bench")
	fs.IntVar(&c.keys, "keys", 200_000, "`number` of keys to hydrate")
	fs.IntVar(&c.valueSize, "value-size", 256, "value size in `bytes`")
	fs.StringVar(&c.backends, "backend", backendAppLog+","+backendPebble, "comma-separated `backends` to measure")
	fs.IntVar(&c.batchMax, "batch-max", DefaultBatchMax, "mirror's -batch-max")
	fs.DurationVar(&c.batchWindow, "batch-window", slipstream.DefaultMaxBatchDelay, "mirror's -batch-window")
	fs.IntVar(&c.window, "publish-window", 4096, "outstanding async publishes while filling")
	fs.StringVar(&c.dir, "dir", "", "work `directory` (default: a temporary one, removed afterwards)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the hydration phases to `file`")
	fs.BoolVar(&c.asJSON, "json", false, "print a JSON report")
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *BenchCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("bench", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageErrorf("bench", "unexpected argument %q", args[0])
	}
	var backends []string
	for b := range strings.SplitSeq(c.backends, ",") {
		b = strings.TrimSpace(b)
		if b != backendAppLog && b != backendPebble {
			return usageErrorf("bench", "invalid -backend %q: want applog and/or pebble", b)
		}
		backends = append(backends, b)
	}
	switch {
	case c.keys <= 0:
		return usageErrorf("bench", "-keys must be > 0")
	case c.valueSize <= 0:
		return usageErrorf("bench", "-value-size must be > 0")
	case c.batchMax <= 0:
		return usageErrorf("bench", "-batch-max must be > 0")
	case c.window <= 0:
		return usageErrorf("bench", "-publish-window must be > 0")
	}
	logger, err := c.m.logger("bench", c.logs)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp(c.dir, "slipstream-bench-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(dir)

	emb, err := startEmbedded(ctx, embeddedConfig{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "nats"), Logger: logger})
	if err != nil {
		return err
	}
	defer emb.Shutdown()
	url := emb.ClientURL()

	rep := benchReport{
		Keys: c.keys, ValueSize: c.valueSize, BatchMax: c.batchMax,
		BatchWindow: c.batchWindow.String(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	fill, err := c.fill(ctx, url, logger)
	if err != nil {
		return err
	}
	rep.FillSeconds, rep.FillPerSec = fill.Seconds(), float64(c.keys)/fill.Seconds()
	c.progress(logger, "filled", "seconds", fill.Seconds())

	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	// raw, each backend, raw again: the ratio is taken against the faster
	// raw run, so a cold first read does not flatter the mirror.
	rep.PhaseRSSReset = resetPeakRSS()
	measure := func(name string, f func() (int, time.Duration, error)) error {
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS()
		c.lastFlush = 0
		cpu0 := cpuTime()
		var (
			n   int
			d   time.Duration
			err error
		)
		// The label lets a -cpuprofile be split by phase (pprof -tagfocus);
		// goroutines the phase starts (its connection's) inherit it.
		pprof.Do(ctx, pprof.Labels("phase", name), func(context.Context) { n, d, err = f() })
		cpu := cpuTime() - cpu0
		if err != nil {
			return fmt.Errorf("bench %s: %w", name, err)
		}
		if n != c.keys {
			return fmt.Errorf("bench %s: hydrated %d keys, want %d", name, n, c.keys)
		}
		rep.Phases = append(rep.Phases, benchPhase{Name: name, Keys: n, Seconds: d.Seconds(),
			KeysPerSec: float64(n) / d.Seconds(), PeakRSS: peakRSS(), CPUSeconds: cpu.Seconds(),
			FlushSeconds: c.lastFlush.Seconds()})
		c.progress(logger, name, "seconds", d.Seconds())
		return nil
	}
	if err := measure("raw WatchAll", func() (int, time.Duration, error) { return rawWatchAll(ctx, url) }); err != nil {
		return err
	}
	for _, b := range backends {
		foldDir := filepath.Join(dir, "fold-"+b)
		if err := measure(b, func() (int, time.Duration, error) { return c.hydrate(ctx, url, foldDir, b, logger) }); err != nil {
			return err
		}
		os.RemoveAll(foldDir)
	}
	if err := measure("raw WatchAll", func() (int, time.Duration, error) { return rawWatchAll(ctx, url) }); err != nil {
		return err
	}
	raw := max(rep.Phases[0].KeysPerSec, rep.Phases[len(rep.Phases)-1].KeysPerSec)
	for i := range rep.Phases {
		rep.Phases[i].Ratio = rep.Phases[i].KeysPerSec / raw
	}
	if c.asJSON {
		enc := json.NewEncoder(c.m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return c.print(rep)
}

func (c *BenchCommand) progress(logger *slog.Logger, phase string, args ...any) {
	logger.Info("bench phase done", append([]any{"phase", phase}, args...)...)
}

func (c *BenchCommand) print(rep benchReport) error {
	w := c.m.Stdout
	fmt.Fprintf(w, "slipstream bench: %d keys × %d B, embedded nats-server, GOMAXPROCS=%d, batch-max %d, batch-window %s\n",
		rep.Keys, rep.ValueSize, rep.GOMAXPROCS, rep.BatchMax, rep.BatchWindow)
	fmt.Fprintf(w, "fill (PublishAsync, window %d): %.2fs, %s keys/s\n\n", c.window, rep.FillSeconds, humanCount(rep.FillPerSec))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\ttime\tin flush\tkeys/s\tCPU\tpeak RSS\tvs raw\t")
	for _, p := range rep.Phases {
		flush := "-"
		if p.FlushSeconds > 0 {
			flush = fmt.Sprintf("%.2fs", p.FlushSeconds)
		}
		fmt.Fprintf(tw, "%s\t%.2fs\t%s\t%s\t%.2fs\t%s\t%.2f×\t\n", p.Name, p.Seconds, flush, humanCount(p.KeysPerSec), p.CPUSeconds, humanBytes(p.PeakRSS), p.Ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	rss := "peak RSS per phase (kernel mark reset before each)"
	if !rep.PhaseRSSReset {
		rss = "peak RSS is the process's peak so far (no per-phase reset on this OS)"
	}
	_, err := fmt.Fprintf(w, "\n'in flush' is the time the follower's loop spent applying and folding batches;\nCPU is the process's user+system time, the in-process server included;\n%s.\n", rss)
	return err
}

func humanBytes(n int64) string {
	if n <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// fill creates the bucket and publishes the keys with windows of async
// publishes straight to the KV subjects.
func (c *BenchCommand) fill(ctx context.Context, url string, logger *slog.Logger) (time.Duration, error) {
	nc, err := natskv.Dial(natskv.DialConfig{URL: url, Name: "slipstream bench fill"})
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	if _, err := natskv.Open(ctx, nc, natskv.Config{Bucket: benchBucket, MaxBytes: -1, Logger: logger}); err != nil {
		return 0, fmt.Errorf("create bucket: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(c.window))
	if err != nil {
		return 0, fmt.Errorf("jetstream: %w", err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	val := make([]byte, c.valueSize)
	futures := make([]jetstream.PubAckFuture, 0, c.window)
	wait := func() error {
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Minute):
			return errors.New("publish acks did not arrive within a minute")
		}
		for _, f := range futures {
			select {
			case err := <-f.Err():
				return fmt.Errorf("publish: %w", err)
			default:
			}
		}
		futures = futures[:0]
		return nil
	}
	start := time.Now()
	for i := range c.keys {
		for j := 0; j < len(val); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(val); k++ {
				val[j+k] = byte(v >> (8 * k))
			}
		}
		f, err := js.PublishAsync(fmt.Sprintf("$KV.%s.k.%09d", benchBucket, i), val)
		if err != nil {
			return 0, fmt.Errorf("publish: %w", err)
		}
		futures = append(futures, f)
		if len(futures) == c.window {
			if err := wait(); err != nil {
				return 0, err
			}
		}
	}
	if err := wait(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// rawWatchAll is the baseline: a fresh connection, nats.go's KV WatchAll to
// the nil initial-values marker, touching each value. The time runs from
// the dial to the marker.
func rawWatchAll(ctx context.Context, url string) (int, time.Duration, error) {
	start := time.Now()
	nc, err := natskv.Dial(natskv.DialConfig{URL: url, Name: "slipstream bench raw"})
	if err != nil {
		return 0, 0, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, 0, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.KeyValue(ctx, benchBucket)
	if err != nil {
		return 0, 0, fmt.Errorf("bind bucket: %w", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("watch: %w", err)
	}
	defer w.Stop()
	n, sum := 0, 0
	for e := range w.Updates() {
		if e == nil {
			break
		}
		n++
		sum += len(e.Value())
	}
	if sum == 0 {
		return 0, 0, errors.New("watch delivered no values")
	}
	return n, time.Since(start), nil
}

// hydrate runs the mirror's path (a fresh connection, natskv bucket,
// supervised Follower, fold) until the tracker reports it caught up: every
// key folded at its cursor. The time runs from the dial to that moment.
func (c *BenchCommand) hydrate(ctx context.Context, url, foldDir, backend string, logger *slog.Logger) (int, time.Duration, error) {
	start := time.Now()
	nc, err := natskv.Dial(natskv.DialConfig{URL: url, Name: "slipstream bench " + backend})
	if err != nil {
		return 0, 0, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	scope := slipstream.AllKeys()
	t := newTracker(scope, logger, nil)
	bucket, err := natskv.Open(ctx, nc, natskv.Config{Bucket: benchBucket, Logger: logger, OnProgress: t.onProgress})
	if err != nil {
		return 0, 0, fmt.Errorf("open bucket: %w", err)
	}
	fd, err := openFold(foldDir, backend, logger)
	if err != nil {
		return 0, 0, err
	}
	defer fd.Close()
	mr := &mirror{bucket: bucket, fold: fd, scope: scope, batchMax: c.batchMax, batchWindow: c.batchWindow, log: logger, t: t}
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- mr.run(runCtx) }()
	select {
	case <-t.readyCh:
	case err := <-errc:
		stop()
		if err == nil {
			err = ctx.Err()
		}
		return 0, 0, fmt.Errorf("mirror stopped before catching up: %w", err)
	}
	took := time.Since(start)
	c.lastFlush = time.Duration(t.flushNanos.Load())
	stop()
	if err := <-errc; err != nil {
		return 0, 0, err
	}
	n, err := fd.Keys()
	return n, took, err
}

// Usage prints the command's help.
func (c *BenchCommand) Usage() {
	printUsage(c.m.Stdout, `
Measure hydration. An embedded nats-server is started on a temporary
directory and a bucket is filled with -keys keys of -value-size random bytes
(async publishes). Then, in the same run, the bucket is hydrated by raw
nats.go WatchAll to the initial-values marker, by the mirror's own path
(natskv watch → Follower → fold) into each -backend, and by raw WatchAll
again. For each: keys/s, peak RSS and the ratio against the faster raw run.

Usage:

	slipstream bench [-keys 200000] [-value-size 256] [-backend applog,pebble]
`, c.flagSet())
}
