package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/natskv"
)

// BenchCommand measures the mirror against one server, in one run: the
// hydration of N keys through the real mirror path (natskv watch →
// Follower → fold) per backend against raw nats.go WatchAll; then, per
// backend, the lag from a put's acknowledgement to its fold under puts paced
// from a separate process, and the restart of the fold after a delta against
// its fresh hydration.
type BenchCommand struct {
	m *Main

	keys        int
	rounds      int
	valueSize   int
	backends    string
	batchMax    int
	batchWindow time.Duration
	window      int
	natsURL     string
	creds       string
	delta       int
	liveRate    int
	liveFor     time.Duration
	dir         string
	cpuProfile  string
	asJSON      bool
	logs        logFlags
}

// benchBucket is the bucket the benchmark fills (deleted and recreated at
// the start of a run).
const benchBucket = "slipstream_bench"

// liveWorkers is how many goroutines (of the publisher process) pace the
// live puts, each with its own connection and share of the rate, so a slow
// acknowledgement does not hold the others.
const liveWorkers = 8

// benchPhase is one measured hydration.
type benchPhase struct {
	Name string `json:"name"`
	// Round is the round (1..rounds) of a mirror hydration and of the raw
	// run that opens it; the closing raw run has round rounds+1.
	Round      int     `json:"round"`
	Backend    string  `json:"backend,omitempty"`
	Keys       int     `json:"keys"`
	Seconds    float64 `json:"seconds"`
	KeysPerSec float64 `json:"keys_per_sec"`
	PeakRSS    int64   `json:"peak_rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PageFaults int64   `json:"page_faults"`
	GCCycles   uint64  `json:"gc_cycles"`
	GCCPU      float64 `json:"gc_cpu_seconds"`
	// FlushSeconds is the time the follower's loop spent flushing
	// (Apply and the fold's write): the loop receives nothing meanwhile.
	FlushSeconds float64 `json:"flush_seconds,omitempty"`
	// Ratio is a mirror's rate over the faster of the raw runs just before
	// and just after its round (1 for raw runs themselves is not implied:
	// a raw run's ratio is over the fastest raw run).
	Ratio float64 `json:"ratio_vs_raw,omitempty"`
}

// benchSummary is one measure's hydrations over every round: medians, and
// the spread of the ratio.
type benchSummary struct {
	Name           string  `json:"name"`
	Backend        string  `json:"backend,omitempty"`
	Runs           int     `json:"runs"`
	MedianSeconds  float64 `json:"median_seconds"`
	MedianPerSec   float64 `json:"median_keys_per_sec"`
	MedianCPU      float64 `json:"median_cpu_seconds"`
	MedianFlush    float64 `json:"median_flush_seconds,omitempty"`
	MedianFaults   int64   `json:"median_page_faults"`
	MedianGCCycles uint64  `json:"median_gc_cycles"`
	MedianGCCPU    float64 `json:"median_gc_cpu_seconds"`
	MaxPeakRSS     int64   `json:"max_peak_rss_bytes"`
	MedianRatio    float64 `json:"median_ratio_vs_raw,omitempty"`
	MinRatio       float64 `json:"min_ratio_vs_raw,omitempty"`
	MaxRatio       float64 `json:"max_ratio_vs_raw,omitempty"`
}

// benchRestart is one restart of a hydrated fold after a delta.
type benchRestart struct {
	Backend      string  `json:"backend"`
	Delta        int     `json:"delta_keys"`
	Seconds      float64 `json:"seconds"`
	FreshSeconds float64 `json:"fresh_seconds"`
	Ratio        float64 `json:"ratio_vs_fresh"`
	PeakRSS      int64   `json:"peak_rss_bytes"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	PageFaults   int64   `json:"page_faults"`
	GCCycles     uint64  `json:"gc_cycles"`
	// The restart's time, split: the dial, the bucket's open, the fold's
	// open, then the watch to caught up.
	DialSeconds     float64 `json:"dial_seconds"`
	BucketSeconds   float64 `json:"bucket_open_seconds"`
	FoldOpenSeconds float64 `json:"fold_open_seconds"`
	CatchUpSeconds  float64 `json:"catch_up_seconds"`
}

// benchLive is the live lag of one backend: for each put, the time from its
// acknowledgement reaching the publisher to the fold's Apply holding it.
type benchLive struct {
	Backend      string  `json:"backend"`
	TargetRate   int     `json:"target_puts_per_sec"`
	Puts         int     `json:"puts"`
	AchievedRate float64 `json:"achieved_puts_per_sec"`
	P50Millis    float64 `json:"lag_p50_ms"`
	P99Millis    float64 `json:"lag_p99_ms"`
	MaxMillis    float64 `json:"lag_max_ms"`
	// BeforeAck counts puts the fold held before their acknowledgement
	// reached the publisher (counted as a lag of 0).
	BeforeAck int `json:"applied_before_ack"`
	// ToWatchP99Millis is the p99 of the time from a put's acknowledgement
	// to the watch handing it to the loop (the server's and the client
	// library's part; 0 when the hand-off came first).
	ToWatchP99Millis float64 `json:"ack_to_watch_p99_ms"`
	// InLoopP50Millis and InLoopP99Millis are the time from that hand-off
	// to the Apply holding it: the batch window and the flush.
	InLoopP50Millis float64 `json:"watch_to_apply_p50_ms"`
	InLoopP99Millis float64 `json:"watch_to_apply_p99_ms"`
	// Writes counts the fold's Applies (one per flushed batch); WriteP99
	// and WriteMax are how long they took.
	Writes         int     `json:"fold_writes"`
	WriteP99Millis float64 `json:"fold_write_p99_ms"`
	WriteMaxMillis float64 `json:"fold_write_max_ms"`
	PeakRSS        int64   `json:"peak_rss_bytes"`
	CPUSeconds     float64 `json:"cpu_seconds"`
	PageFaults     int64   `json:"page_faults"`
}

// benchReport is the output of `slipstream bench -json`.
type benchReport struct {
	Server      string `json:"server"`
	Keys        int    `json:"keys"`
	Rounds      int    `json:"rounds"`
	ValueSize   int    `json:"value_size"`
	RawBytes    int64  `json:"raw_bytes"`
	BatchMax    int    `json:"batch_max"`
	BatchWindow string `json:"batch_window"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	NumCPU      int    `json:"num_cpu"`
	LoadAverage string `json:"load_average,omitempty"`
	// Environment is what shifts the figures besides the code: the
	// transparent-huge-page mode and the allocator and GC settings.
	Environment   map[string]string `json:"environment"`
	FillSeconds   float64           `json:"fill_seconds"`
	FillPerSec    float64           `json:"fill_keys_per_sec"`
	PhaseRSSReset bool              `json:"phase_rss_reset"`
	Phases        []benchPhase      `json:"phases"`
	Hydration     []benchSummary    `json:"hydration"`
	Live          []benchLive       `json:"live"`
	Restarts      []benchRestart    `json:"restarts"`
}

func (c *BenchCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("bench")
	fs.IntVar(&c.keys, "keys", 200_000, "`number` of keys to hydrate")
	fs.IntVar(&c.rounds, "rounds", 3, "hydration `rounds`: each runs raw WatchAll, then every backend; medians are reported")
	fs.IntVar(&c.valueSize, "value-size", 256, "value size in `bytes`")
	fs.StringVar(&c.backends, "backend", backendAppLog+","+backendPebble, "comma-separated `backends` to measure")
	fs.IntVar(&c.batchMax, "batch-max", DefaultBatchMax, "mirror's -batch-max")
	fs.DurationVar(&c.batchWindow, "batch-window", slipstream.DefaultMaxBatchDelay, "mirror's -batch-window")
	fs.IntVar(&c.window, "publish-window", 4096, "outstanding async publishes while filling")
	fs.StringVar(&c.natsURL, "nats", "", "NATS server `URL` to measure against (its bucket "+benchBucket+" is deleted and recreated); empty starts an embedded server")
	fs.StringVar(&c.creds, "creds", "", "NATS credentials `file`")
	fs.IntVar(&c.delta, "delta", 1000, "`number` of keys overwritten while each fold is closed, before its restart")
	fs.IntVar(&c.liveRate, "live-rate", 10_000, "live puts per `second`, paced from a separate process (0 skips the live phase)")
	fs.DurationVar(&c.liveFor, "live-duration", 5*time.Second, "`duration` of the live phase")
	fs.StringVar(&c.dir, "dir", "", "work `directory` (default: a temporary one, removed afterwards)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phases to `file` (split them with pprof -tagfocus phase=...)")
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
	case c.rounds <= 0:
		return usageErrorf("bench", "-rounds must be > 0")
	case c.valueSize <= 0:
		return usageErrorf("bench", "-value-size must be > 0")
	case c.batchMax <= 0:
		return usageErrorf("bench", "-batch-max must be > 0")
	case c.window <= 0:
		return usageErrorf("bench", "-publish-window must be > 0")
	case c.delta < 0:
		return usageErrorf("bench", "-delta must be >= 0")
	case c.liveRate < 0:
		return usageErrorf("bench", "-live-rate must be >= 0")
	case c.liveRate > 0 && c.liveFor <= 0:
		return usageErrorf("bench", "-live-duration must be > 0")
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

	rep := benchReport{
		Keys: c.keys, Rounds: c.rounds, ValueSize: c.valueSize, RawBytes: int64(c.keys) * int64(len(benchKey(0))+c.valueSize),
		BatchMax: c.batchMax, BatchWindow: c.batchWindow.String(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), LoadAverage: loadAverage(),
		Environment: benchEnvironment(),
	}
	dial := natskv.DialConfig{URL: c.natsURL, CredsFile: c.creds}
	if c.natsURL == "" {
		emb, err := startEmbedded(ctx, embeddedConfig{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "nats"), Logger: logger})
		if err != nil {
			return err
		}
		defer emb.Shutdown()
		dial.URL = emb.ClientURL()
		rep.Server = "embedded nats-server"
	} else {
		rep.Server = "nats-server " + dial.String()
	}

	fill, err := c.fill(ctx, dial, logger)
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

	// Rounds of raw then each backend, and a closing raw run: each mirror
	// run is compared with the faster of the raw runs around it, so neither
	// a cold first read nor a drift of the machine flatters the mirror.
	// Only the last round keeps its mirrors for the live and restart phases.
	rep.PhaseRSSReset = resetPeakRSS()
	raw := func(round int) error {
		var n int
		var d time.Duration
		m, err := c.measure(ctx, "raw WatchAll", func() error {
			n, d, err = rawWatchAll(ctx, dial)
			return err
		})
		if err != nil {
			return err
		}
		if n != c.keys {
			return fmt.Errorf("bench raw WatchAll: %d keys, want %d", n, c.keys)
		}
		rep.Phases = append(rep.Phases, benchPhase{Name: "raw WatchAll", Round: round, Keys: n, Seconds: d.Seconds(),
			KeysPerSec: float64(n) / d.Seconds(), PeakRSS: m.rss, CPUSeconds: m.cpu.Seconds(),
			PageFaults: m.faults, GCCycles: m.gcs, GCCPU: m.gcCPU})
		return nil
	}
	for round := 1; round <= c.rounds; round++ {
		if err := raw(round); err != nil {
			return err
		}
		for _, b := range backends {
			if err := c.benchBackend(ctx, &rep, dial, filepath.Join(dir, "fold-"+b), b, logger, round); err != nil {
				return err
			}
		}
	}
	if err := raw(c.rounds + 1); err != nil {
		return err
	}
	if c.liveRate > 0 {
		// The live baseline: the same paced puts to a raw nats.go watch,
		// with no mirror running: the server's and the client library's
		// share of the lag.
		var lv benchLive
		m, err := c.measure(ctx, "raw live", func() error {
			var err error
			lv, err = c.liveRaw(ctx, dial)
			return err
		})
		if err != nil {
			return err
		}
		lv.PeakRSS, lv.CPUSeconds, lv.PageFaults = m.rss, m.cpu.Seconds(), m.faults
		rep.Live = append([]benchLive{lv}, rep.Live...)
	}
	rep.summarize()
	if c.asJSON {
		enc := json.NewEncoder(c.m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return c.print(rep)
}

// measured is what measure observed around a phase.
type measured struct {
	rss    int64
	cpu    time.Duration
	faults int64
	gcs    uint64
	gcCPU  float64 // seconds of the runtime's estimate of GC CPU
}

// measure runs one phase labelled name (for pprof -tagfocus; goroutines it
// starts inherit the label) after a GC and a reset of the peak-RSS mark.
func (c *BenchCommand) measure(ctx context.Context, name string, f func() error) (measured, error) {
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	cpu0, faults0, gcs0, gcCPU0 := cpuTime(), pageFaults(), gcCycles(), gcCPUSeconds()
	var err error
	pprof.Do(ctx, pprof.Labels("phase", name), func(context.Context) { err = f() })
	if err != nil {
		return measured{}, fmt.Errorf("bench %s: %w", name, err)
	}
	return measured{rss: peakRSS(), cpu: cpuTime() - cpu0, faults: pageFaults() - faults0, gcs: gcCycles() - gcs0,
		gcCPU: gcCPUSeconds() - gcCPU0}, nil
}

// benchBackend measures one backend: a fresh hydration and, in the last
// round, the live lag while that mirror runs, then a restart of its fold
// after a delta written while it was closed.
func (c *BenchCommand) benchBackend(ctx context.Context, rep *benchReport, dial natskv.DialConfig, foldDir, backend string, logger *slog.Logger, round int) error {
	defer os.RemoveAll(foldDir)
	clock := &applyClock{}
	var (
		mr    *benchMirror
		fresh time.Duration
	)
	m, err := c.measure(ctx, backend+" hydration", func() error {
		var err error
		mr, fresh, err = c.startMirror(ctx, dial, foldDir, backend, logger, clock)
		return err
	})
	if err != nil {
		return err
	}
	defer func() {
		if mr != nil {
			_ = mr.close()
		}
	}()
	n, err := mr.fd.Keys()
	if err != nil {
		return err
	}
	if n != c.keys {
		return fmt.Errorf("bench %s: hydrated %d keys, want %d", backend, n, c.keys)
	}
	rep.Phases = append(rep.Phases, benchPhase{Name: "mirror", Round: round, Backend: backend, Keys: n, Seconds: fresh.Seconds(),
		KeysPerSec: float64(n) / fresh.Seconds(), PeakRSS: m.rss, CPUSeconds: m.cpu.Seconds(),
		PageFaults: m.faults, GCCycles: m.gcs, GCCPU: m.gcCPU, FlushSeconds: time.Duration(mr.t.flushNanos.Load()).Seconds()})
	c.progress(logger, backend+" hydration", "round", round, "seconds", fresh.Seconds())
	if round < c.rounds {
		err := mr.close()
		mr = nil
		return err
	}

	if c.liveRate > 0 {
		var lv benchLive
		m, err := c.measure(ctx, backend+" live", func() error {
			var err error
			lv, err = c.live(ctx, dial, clock, mr.t)
			return err
		})
		if err != nil {
			return err
		}
		lv.Backend, lv.PeakRSS, lv.CPUSeconds, lv.PageFaults = backend, m.rss, m.cpu.Seconds(), m.faults
		rep.Live = append(rep.Live, lv)
		c.progress(logger, backend+" live", "p50_ms", lv.P50Millis, "p99_ms", lv.P99Millis)
	}

	err = mr.close()
	mr = nil
	if err != nil {
		return err
	}
	if c.delta > 0 {
		if _, err := c.publish(ctx, dial, c.delta, 7, "slipstream bench delta"); err != nil {
			return fmt.Errorf("bench %s: publish the delta: %w", backend, err)
		}
	}
	var restart time.Duration
	m, err = c.measure(ctx, backend+" restart", func() error {
		var err error
		mr, restart, err = c.startMirror(ctx, dial, foldDir, backend, logger, nil)
		return err
	})
	if err != nil {
		return err
	}
	// FreshSeconds and Ratio are filled by summarize, against the median
	// of this backend's fresh hydrations.
	rep.Restarts = append(rep.Restarts, benchRestart{Backend: backend, Delta: c.delta, Seconds: restart.Seconds(),
		PeakRSS: m.rss, CPUSeconds: m.cpu.Seconds(), PageFaults: m.faults, GCCycles: m.gcs,
		DialSeconds: mr.dialed.Seconds(), BucketSeconds: (mr.bucketOpened - mr.dialed).Seconds(),
		FoldOpenSeconds: (mr.foldOpened - mr.bucketOpened).Seconds(), CatchUpSeconds: (restart - mr.foldOpened).Seconds()})
	c.progress(logger, backend+" restart", "seconds", restart.Seconds())
	return nil
}

// summarize fills each phase's ratio, the per-measure medians, and each
// restart's comparison with the median fresh hydration of its backend.
func (rep *benchReport) summarize() {
	rawRate := map[int]float64{} // round → raw rate
	fastest := 0.0
	for _, p := range rep.Phases {
		if p.Backend == "" {
			rawRate[p.Round] = p.KeysPerSec
			fastest = max(fastest, p.KeysPerSec)
		}
	}
	type group struct {
		name, backend string
		phases        []benchPhase
	}
	var groups []*group
	byKey := map[string]*group{}
	for i := range rep.Phases {
		p := &rep.Phases[i]
		if p.Backend == "" {
			p.Ratio = p.KeysPerSec / fastest
		} else {
			p.Ratio = p.KeysPerSec / max(rawRate[p.Round], rawRate[p.Round+1])
		}
		g := byKey[p.Backend]
		if g == nil {
			g = &group{name: p.Name, backend: p.Backend}
			byKey[p.Backend] = g
			groups = append(groups, g)
		}
		g.phases = append(g.phases, *p)
	}
	rep.Hydration = rep.Hydration[:0]
	for _, g := range groups {
		ps := g.phases
		ratios := sortedOf(ps, func(p benchPhase) float64 { return p.Ratio })
		sum := benchSummary{
			Name: g.name, Backend: g.backend, Runs: len(ps),
			MedianSeconds:  median(ps, func(p benchPhase) float64 { return p.Seconds }),
			MedianPerSec:   median(ps, func(p benchPhase) float64 { return p.KeysPerSec }),
			MedianCPU:      median(ps, func(p benchPhase) float64 { return p.CPUSeconds }),
			MedianFlush:    median(ps, func(p benchPhase) float64 { return p.FlushSeconds }),
			MedianFaults:   int64(median(ps, func(p benchPhase) float64 { return float64(p.PageFaults) })),
			MedianGCCycles: uint64(median(ps, func(p benchPhase) float64 { return float64(p.GCCycles) })),
			MedianGCCPU:    median(ps, func(p benchPhase) float64 { return p.GCCPU }),
			MedianRatio:    median(ps, func(p benchPhase) float64 { return p.Ratio }),
			MinRatio:       ratios[0], MaxRatio: ratios[len(ratios)-1],
		}
		for _, p := range ps {
			sum.MaxPeakRSS = max(sum.MaxPeakRSS, p.PeakRSS)
		}
		rep.Hydration = append(rep.Hydration, sum)
	}
	for i := range rep.Restarts {
		r := &rep.Restarts[i]
		if g := byKey[r.Backend]; g != nil {
			r.FreshSeconds = median(g.phases, func(p benchPhase) float64 { return p.Seconds })
			r.Ratio = r.Seconds / r.FreshSeconds
		}
	}
}

// sortedOf returns f of every phase, sorted.
func sortedOf(ps []benchPhase, f func(benchPhase) float64) []float64 {
	v := make([]float64, len(ps))
	for i, p := range ps {
		v[i] = f(p)
	}
	slices.Sort(v)
	return v
}

// median returns the median of f over the phases (the mean of the middle
// two for an even count).
func median(ps []benchPhase, f func(benchPhase) float64) float64 {
	v := sortedOf(ps, f)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// gcCycles returns the number of completed GC cycles so far.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// gcCPUSeconds returns the runtime's estimate of the CPU time spent in GC
// so far (mark assists, workers and pauses).
func gcCPUSeconds() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return s[0].Value.Float64()
}

func (c *BenchCommand) progress(logger *slog.Logger, phase string, args ...any) {
	logger.Info("bench phase done", append([]any{"phase", phase}, args...)...)
}

func (c *BenchCommand) print(rep benchReport) error {
	w := c.m.Stdout
	fmt.Fprintf(w, "slipstream bench: %d keys × %d B against %s; GOMAXPROCS=%d of %d CPUs; load average %s\n",
		rep.Keys, rep.ValueSize, rep.Server, rep.GOMAXPROCS, rep.NumCPU, orNA(rep.LoadAverage))
	if len(rep.Environment) > 0 {
		keys := slices.Sorted(maps.Keys(rep.Environment))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + rep.Environment[k]
		}
		fmt.Fprintf(w, "environment: %s\n", strings.Join(parts, " "))
	}
	fmt.Fprintf(w, "mirror: batch-max %d, batch-window %s. fill (PublishAsync, window %d): %.2fs, %s keys/s. Rounds: %d.\n\n",
		rep.BatchMax, rep.BatchWindow, c.window, rep.FillSeconds, humanCount(rep.FillPerSec), rep.Rounds)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\tbackend\ttime\tin flush\trate\tCPU\tfaults\tGCs (CPU)\tpeak RSS\tRSS/data\tratio\t")
	rssData := func(rss int64) string {
		if rss <= 0 || rep.RawBytes <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", float64(rss)/float64(rep.RawBytes))
	}
	for _, h := range rep.Hydration {
		flush, backend, name := "-", "-", "hydration, raw WatchAll"
		if h.MedianFlush > 0 {
			flush = fmt.Sprintf("%.2fs", h.MedianFlush)
		}
		ratio := "-"
		if h.Backend != "" {
			backend, name = h.Backend, "hydration, mirror"
			ratio = fmt.Sprintf("%.2f× raw (%.2f–%.2f)", h.MedianRatio, h.MinRatio, h.MaxRatio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2fs\t%s\t%s keys/s\t%.2fs\t%s\t%d (%.2fs)\t%s\t%s\t%s\t\n", name, backend, h.MedianSeconds, flush,
			humanCount(h.MedianPerSec), h.MedianCPU, humanCount(float64(h.MedianFaults)), h.MedianGCCycles, h.MedianGCCPU,
			humanBytes(h.MaxPeakRSS), rssData(h.MaxPeakRSS), ratio)
	}
	for _, r := range rep.Restarts {
		fmt.Fprintf(tw, "restart after a %d-key delta\t%s\t%.2fs\t-\t-\t%.2fs\t%s\t%d\t%s\t%s\t%.2f× fresh\t\n", r.Delta, r.Backend,
			r.Seconds, r.CPUSeconds, humanCount(float64(r.PageFaults)), r.GCCycles, humanBytes(r.PeakRSS), rssData(r.PeakRSS), r.Ratio)
		fmt.Fprintf(tw, "  split: dial; bucket; fold open; catch-up\t%s\t%.0f; %.0f; %.0f; %.0fms\t-\t-\t-\t-\t-\t-\t-\t\t\n", r.Backend,
			1000*r.DialSeconds, 1000*r.BucketSeconds, 1000*r.FoldOpenSeconds, 1000*r.CatchUpSeconds)
	}
	for _, l := range rep.Live {
		if l.Backend == "" {
			fmt.Fprintf(tw, "live lag p50 / p99 (max), raw watch\t-\t%.1f / %.1fms (%.0f)\t-\t%s puts/s\t%.2fs\t%s\t-\t%s\t%s\tthe server's share\t\n",
				l.P50Millis, l.P99Millis, l.MaxMillis, humanCount(l.AchievedRate), l.CPUSeconds, humanCount(float64(l.PageFaults)),
				humanBytes(l.PeakRSS), rssData(l.PeakRSS))
			continue
		}
		fmt.Fprintf(tw, "live lag p50 / p99 (max)\t%s\t%.1f / %.1fms (%.0f)\t-\t%s puts/s\t%.2fs\t%s\t-\t%s\t%s\tp99 %+.1fms vs window\t\n", l.Backend,
			l.P50Millis, l.P99Millis, l.MaxMillis, humanCount(l.AchievedRate), l.CPUSeconds, humanCount(float64(l.PageFaults)),
			humanBytes(l.PeakRSS), rssData(l.PeakRSS), l.P99Millis-float64(c.batchWindow)/float64(time.Millisecond))
		fmt.Fprintf(tw, "  split: ack→watch p99; watch→fold p50 / p99\t%s\t%.1fms; %.1f / %.1fms\t-\t-\t-\t-\t-\t-\t-\t\t\n", l.Backend,
			l.ToWatchP99Millis, l.InLoopP50Millis, l.InLoopP99Millis)
		fmt.Fprintf(tw, "  fold writes: count; p99 (max)\t%s\t%d; %.2fms (%.1f)\t-\t-\t-\t-\t-\t-\t-\t\t\n", l.Backend,
			l.Writes, l.WriteP99Millis, l.WriteMaxMillis)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	rss := "peak RSS per phase (kernel mark reset before each)"
	if !rep.PhaseRSSReset {
		rss = "peak RSS is the process's peak so far (no per-phase reset on this OS)"
	}
	_, err := fmt.Fprintf(w, `
Hydration: from the dial to every key folded; medians over %d rounds, each
mirror run against the faster of the raw WatchAll runs just before and after
its round (the ratio's range in brackets). Restart: from the dial (the fold's
open included) to caught up, against that backend's median fresh hydration.
Live lag: from a put's acknowledgement at the publisher to the Apply holding
it, puts paced at -live-rate from %d connections of a separate process while the last round's mirror
runs, split where the watch hands each put to the loop: the server's and
the client library's part, then the loop's (window and fold); the raw watch
row is the same puts to a plain nats.go watch with no mirror running. 'in flush' is the time the loop spent applying batches; CPU is the
process's user+system time (an embedded server included); faults are the
process's page faults (each costs microseconds on some virtual machines);
GCs are completed GC cycles (the runtime's estimate of their CPU); RSS/data divides by the keys and values; %s.
`, rep.Rounds, liveWorkers, rss)
	return err
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

func humanBytes(n int64) string {
	if n <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// benchEnvironment returns the settings that move the figures: the
// kernel's transparent-huge-page mode (Linux) and, when set, GLIBC_TUNABLES
// (Pebble's memtables come from the C allocator), GOGC, GOMEMLIMIT and
// GODEBUG.
func benchEnvironment() map[string]string {
	env := map[string]string{}
	if b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled"); err == nil {
		mode := strings.TrimSpace(string(b))
		if i, j := strings.IndexByte(mode, '['), strings.IndexByte(mode, ']'); i >= 0 && j > i {
			mode = mode[i+1 : j]
		}
		env["thp"] = mode
	}
	for _, k := range []string{"GLIBC_TUNABLES", "GOGC", "GOMEMLIMIT", "GODEBUG"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	return env
}

// loadAverage returns the 1, 5 and 15-minute load averages where the OS
// reports them (Linux), else "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// benchKey is the key of entry i.
func benchKey(i int) string { return fmt.Sprintf("k.%09d", i) }

// fill deletes and recreates the bucket, then publishes every key with
// windows of async publishes straight to the KV subjects.
func (c *BenchCommand) fill(ctx context.Context, dial natskv.DialConfig, logger *slog.Logger) (time.Duration, error) {
	nc, err := natskv.Dial(withName(dial, "slipstream bench fill"))
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, fmt.Errorf("jetstream: %w", err)
	}
	if err := js.DeleteKeyValue(ctx, benchBucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0, fmt.Errorf("delete the previous bench bucket: %w", err)
	}
	if _, err := natskv.Open(ctx, nc, natskv.Config{Bucket: benchBucket, MaxBytes: -1, Logger: logger}); err != nil {
		return 0, fmt.Errorf("create bucket: %w", err)
	}
	return c.publish(ctx, dial, c.keys, 0, "slipstream bench fill")
}

// publish writes n values with windows of async publishes: every key in
// order when seed is 0, else n keys drawn at random (overwrites).
func (c *BenchCommand) publish(ctx context.Context, dial natskv.DialConfig, n int, seed uint64, name string) (time.Duration, error) {
	nc, err := natskv.Dial(withName(dial, name))
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(c.window))
	if err != nil {
		return 0, fmt.Errorf("jetstream: %w", err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), 1}))
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
	for i := range n {
		fillValue(rng, val)
		k := i
		if seed != 0 {
			k = rng.IntN(c.keys)
		}
		f, err := js.PublishAsync(kvSubject(k), val)
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

func kvSubject(i int) string { return "$KV." + benchBucket + "." + benchKey(i) }

func fillValue(rng *rand.Rand, val []byte) {
	for j := 0; j < len(val); j += 8 {
		v := rng.Uint64()
		for k := 0; k < 8 && j+k < len(val); k++ {
			val[j+k] = byte(v >> (8 * k))
		}
	}
}

func withName(d natskv.DialConfig, name string) natskv.DialConfig {
	d.Name = name
	return d
}

// rawWatchAll is the baseline: a fresh connection, nats.go's KV WatchAll to
// the nil initial-values marker, touching each value. The time runs from
// the dial to the marker.
func rawWatchAll(ctx context.Context, dial natskv.DialConfig) (int, time.Duration, error) {
	start := time.Now()
	nc, err := natskv.Dial(withName(dial, "slipstream bench raw"))
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

// benchMirror is a running mirror of the bench bucket.
type benchMirror struct {
	// When its start had dialed, opened the bucket and opened the fold,
	// from the start.
	dialed, bucketOpened, foldOpened time.Duration

	nc   *nats.Conn
	fd   *fold
	t    *tracker
	stop context.CancelFunc
	errc chan error
}

// startMirror runs the mirror's path (a fresh connection, natskv bucket,
// supervised Follower, fold) until the tracker reports it caught up: every
// key folded at its cursor. The time runs from the dial, the fold's open
// included, to that moment. With clock set, the fold's applies are timed
// through it.
func (c *BenchCommand) startMirror(ctx context.Context, dial natskv.DialConfig, foldDir, backend string, logger *slog.Logger, clock *applyClock) (*benchMirror, time.Duration, error) {
	start := time.Now()
	nc, err := natskv.Dial(withName(dial, "slipstream bench "+backend))
	if err != nil {
		return nil, 0, fmt.Errorf("connect: %w", err)
	}
	dialed := time.Since(start)
	scope := slipstream.AllKeys()
	t := newTracker(scope, logger, nil)
	onProgress := t.onProgress
	if clock != nil {
		onProgress = func(p natskv.Progress) {
			t.onProgress(p)
			clock.received(p.Revision)
		}
	}
	bucket, err := natskv.Open(ctx, nc, natskv.Config{Bucket: benchBucket, Logger: logger, OnProgress: onProgress})
	if err != nil {
		nc.Close()
		return nil, 0, fmt.Errorf("open bucket: %w", err)
	}
	bucketOpened := time.Since(start)
	fd, err := openFold(foldDir, backend, logger)
	if err != nil {
		nc.Close()
		return nil, 0, err
	}
	foldOpened := time.Since(start)
	if clock != nil {
		clock.store = fd.store
		fd.store = clock
	}
	mr := &mirror{bucket: bucket, fold: fd, scope: scope, batchMax: c.batchMax, batchWindow: c.batchWindow, log: logger, t: t}
	runCtx, stop := context.WithCancel(ctx)
	h := &benchMirror{nc: nc, fd: fd, t: t, stop: stop, errc: make(chan error, 1),
		dialed: dialed, bucketOpened: bucketOpened, foldOpened: foldOpened}
	go func() { h.errc <- mr.run(runCtx) }()
	select {
	case <-t.readyCh:
		return h, time.Since(start), nil
	case err := <-h.errc:
		h.errc <- err
		_ = h.close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, 0, fmt.Errorf("mirror stopped before catching up: %w", err)
	}
}

// close stops the mirror and closes its fold and connection.
func (h *benchMirror) close() error {
	h.stop()
	err := <-h.errc
	if cerr := h.fd.Close(); err == nil {
		err = cerr
	}
	h.nc.Close()
	return err
}

// applyClock wraps a fold's store and, while armed, records when each
// Apply returned and the cursor it made durable, and when the watch handed
// each revision to the loop.
type applyClock struct {
	store
	armed    atomic.Bool
	mu       sync.Mutex
	marks    []applyMark
	receipts []applyMark     // revision handed to the loop, in delivery order
	writes   []time.Duration // how long each of the fold's Applies took
}

// received records, while armed, that the watch handed revision rev to the
// loop (0: not an entry).
func (a *applyClock) received(rev uint64) {
	if rev == 0 || !a.armed.Load() {
		return
	}
	now := time.Now()
	a.mu.Lock()
	a.receipts = append(a.receipts, applyMark{cursor: rev, at: now})
	a.mu.Unlock()
}

type applyMark struct {
	cursor uint64
	at     time.Time
}

func (a *applyClock) Apply(batch []slipstream.Update, cursor slipstream.Cursor) error {
	start := time.Now()
	err := a.store.Apply(batch, cursor)
	if err == nil && a.armed.Load() {
		now := time.Now()
		a.mu.Lock()
		a.marks = append(a.marks, applyMark{cursor: cursor.Rank(), at: now})
		a.writes = append(a.writes, now.Sub(start))
		a.mu.Unlock()
	}
	return err
}

// ackMark is a live put: its stream sequence and when its acknowledgement
// reached the publisher.
type ackMark struct {
	seq uint64
	at  time.Time
}

// live paces puts of random existing keys at c.liveRate for c.liveFor from
// a separate process (runPublisher), waits for the fold to hold the last of
// them, and returns the lag from each put's acknowledgement to the Apply
// that held it.
func (c *BenchCommand) live(ctx context.Context, dial natskv.DialConfig, clock *applyClock, t *tracker) (benchLive, error) {
	clock.mu.Lock()
	clock.marks, clock.receipts, clock.writes = clock.marks[:0], clock.receipts[:0], clock.writes[:0]
	clock.mu.Unlock()
	clock.armed.Store(true)
	defer clock.armed.Store(false)

	all, sent, err := c.publishLive(ctx, dial, "the fold", t.applied.Load, nil)
	if err != nil {
		return benchLive{}, err
	}
	clock.armed.Store(false)
	clock.mu.Lock()
	marks, receipts, writes := slices.Clone(clock.marks), slices.Clone(clock.receipts), slices.Clone(clock.writes)
	clock.mu.Unlock()
	slices.Sort(writes)
	lags, early, err := liveLags(all, marks)
	if err != nil {
		return benchLive{}, err
	}
	// The same lag, split at the watch's hand-off to the loop: the server
	// and client library's part, then the loop's (window and fold).
	toWatch, _, err := liveLags(all, receipts)
	if err != nil {
		return benchLive{}, fmt.Errorf("receipts: %w", err)
	}
	inLoop, err := loopLags(receipts, marks)
	if err != nil {
		return benchLive{}, err
	}
	return benchLive{TargetRate: c.liveRate, Puts: len(all), AchievedRate: float64(len(all)) / sent.Seconds(),
		P50Millis: millis(percentile(lags, 0.50)), P99Millis: millis(percentile(lags, 0.99)),
		MaxMillis: millis(lags[len(lags)-1]), BeforeAck: early,
		ToWatchP99Millis: millis(percentile(toWatch, 0.99)), InLoopP50Millis: millis(percentile(inLoop, 0.50)),
		InLoopP99Millis: millis(percentile(inLoop, 0.99)), Writes: len(writes),
		WriteP99Millis: millis(percentile(writes, 0.99)), WriteMaxMillis: millis(writes[len(writes)-1])}, nil
}

// liveLags matches each acknowledged put with the first Apply whose cursor
// covers its sequence (marks are in apply order, cursors ascending) and
// returns the lags in ascending order, counting as 0 the puts applied
// before their acknowledgement arrived (early).
func liveLags(acks []ackMark, marks []applyMark) (lags []time.Duration, early int, err error) {
	if len(acks) == 0 {
		return nil, 0, errors.New("no put was acknowledged")
	}
	lags = make([]time.Duration, 0, len(acks))
	for _, a := range acks {
		i, _ := slices.BinarySearchFunc(marks, a.seq, func(m applyMark, seq uint64) int {
			switch {
			case m.cursor < seq:
				return -1
			case m.cursor > seq:
				return 1
			}
			return 0
		})
		if i == len(marks) {
			return nil, 0, fmt.Errorf("no apply covers sequence %d", a.seq)
		}
		d := marks[i].at.Sub(a.at)
		if d < 0 {
			d, early = 0, early+1
		}
		lags = append(lags, d)
	}
	slices.Sort(lags)
	return lags, early, nil
}

// publishLive runs the live puts (-live-rate for -live-duration, from the
// publisher process) and waits until reached, what the measured consumer
// has taken, covers the last of them; ended (nil: never) closes if that
// consumer stops.
func (c *BenchCommand) publishLive(ctx context.Context, dial natskv.DialConfig, what string, reached func() uint64, ended <-chan struct{}) ([]ackMark, time.Duration, error) {
	total := max(int(float64(c.liveRate)*c.liveFor.Seconds()), 1)
	all, sent, err := c.runPublisher(ctx, dial, total)
	if err != nil {
		return nil, 0, err
	}
	last := uint64(0)
	for _, a := range all {
		last = max(last, a.seq)
	}
	deadline := time.Now().Add(time.Minute)
	for reached() < last {
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("%s did not reach sequence %d within a minute of the last put (at %d)", what, last, reached())
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-ended:
			return nil, 0, fmt.Errorf("%s ended before sequence %d", what, last)
		case <-time.After(time.Millisecond):
		}
	}
	return all, sent, nil
}

// liveRaw runs the live puts against a raw nats.go KV watch of new updates
// and returns the lag from each put's acknowledgement to the watch
// delivering it.
func (c *BenchCommand) liveRaw(ctx context.Context, dial natskv.DialConfig) (benchLive, error) {
	nc, err := natskv.Dial(withName(dial, "slipstream bench raw live"))
	if err != nil {
		return benchLive{}, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return benchLive{}, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.KeyValue(ctx, benchBucket)
	if err != nil {
		return benchLive{}, fmt.Errorf("bind bucket: %w", err)
	}
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return benchLive{}, fmt.Errorf("watch: %w", err)
	}
	defer w.Stop()
	var (
		mu       sync.Mutex
		receipts []applyMark
		latest   atomic.Uint64
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			now := time.Now()
			mu.Lock()
			receipts = append(receipts, applyMark{cursor: e.Revision(), at: now})
			mu.Unlock()
			latest.Store(e.Revision())
		}
	}()
	all, sent, err := c.publishLive(ctx, dial, "the raw watch", latest.Load, done)
	if err != nil {
		return benchLive{}, err
	}
	mu.Lock()
	got := slices.Clone(receipts)
	mu.Unlock()
	lags, early, err := liveLags(all, got)
	if err != nil {
		return benchLive{}, err
	}
	return benchLive{TargetRate: c.liveRate, Puts: len(all), AchievedRate: float64(len(all)) / sent.Seconds(),
		P50Millis: millis(percentile(lags, 0.50)), P99Millis: millis(percentile(lags, 0.99)),
		MaxMillis: millis(lags[len(lags)-1]), BeforeAck: early, ToWatchP99Millis: millis(percentile(lags, 0.99))}, nil
}

// loopLags returns, in ascending order, the time from each receipt to the
// first Apply whose cursor covers it.
func loopLags(receipts, marks []applyMark) ([]time.Duration, error) {
	acks := make([]ackMark, len(receipts))
	for i, r := range receipts {
		acks[i] = ackMark{seq: r.cursor, at: r.at}
	}
	lags, _, err := liveLags(acks, marks)
	return lags, err
}

// percentile returns the q-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Usage prints the command's help.
func (c *BenchCommand) Usage() {
	printUsage(c.m.Stdout, `
Measure the mirror against one server, in one run. The bucket is filled with
-keys keys of -value-size random bytes (async publishes), then:

  - hydration: raw nats.go WatchAll to the initial-values marker, the
    mirror's own path (natskv watch → Follower → fold) into a fresh fold of
    each -backend, and raw WatchAll again; keys/s and the ratio to the
    faster raw run;
  - live lag, per backend, while that mirror runs: puts of existing keys
    paced at -live-rate for -live-duration from a separate process; p50 and
    p99 of the time from each put's acknowledgement to its fold;
  - restart, per backend: the fold is closed, -delta keys are overwritten,
    and the mirror is started again on it; the time to catch up (the fold's
    open included) against that backend's fresh hydration.

Peak RSS and CPU are reported per phase. By default an embedded
nats-server runs on a temporary directory; -nats measures against a
separate server (its bucket `+benchBucket+` is deleted and recreated).

Usage:

	slipstream bench [-nats URL] [-keys 200000] [-value-size 256] [-backend applog,pebble]
`, c.flagSet())
}
