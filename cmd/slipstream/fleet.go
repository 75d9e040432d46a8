package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/fleet"
	"github.com/slipstream-kv/slipstream/internal/fsync"
	"github.com/slipstream-kv/slipstream/lease"
	"github.com/slipstream-kv/slipstream/natskv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/natsobj"
	"github.com/slipstream-kv/slipstream/objstore/storeurl"
	"github.com/slipstream-kv/slipstream/pebblestore"
	"github.com/slipstream-kv/slipstream/protocol"
)

// The fleet: periodic export rounds (-export-to) and the bootstrap of a fold
// from the fleet's latest artifact (-bootstrap-from). docs/FLEET.md
// describes both.

const (
	// LeaseBucket is the KV bucket, on the mirrored NATS server, that holds
	// the export leases (created if missing).
	LeaseBucket = "slipstream-leases"
	// scratchSuffix names the directory beside the fold that holds export
	// rounds, downloads and the fold being swapped in.
	scratchSuffix = ".scratch"
	// pointerCheckDefault is how often a node without -export-to reads
	// the fleet's pointer for status and metrics.
	pointerCheckDefault = time.Minute
	// stateBootstrapping is the /v1/status state while the fold is being
	// replaced by the fleet's latest artifact.
	stateBootstrapping = "bootstrapping"
)

// Bootstrap outcomes, in the log, /v1/status and /metrics.
const (
	bootImported = "imported" // the fold is the artifact's; the watch replays the tail
	bootFallback = "fallback" // no usable artifact: the mirror syncs or resyncs from the bucket
)

// fleetFlags are mirror's fleet flags.
type fleetFlags struct {
	exportTo      string
	exportEvery   time.Duration
	exportKey     string
	nodeID        string
	bootstrapFrom string
	bootstrapKey  string
	nonAtomic     bool
	s3Endpoint    string
	s3Region      string
	s3PathStyle   bool
}

func (ff *fleetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&ff.exportTo, "export-to", "", "publish the fold to this store `URL` every -export-every, on the node that wins the export lease (s3://, nats-object://, file://)")
	fs.DurationVar(&ff.exportEvery, "export-every", 0, "export round `period` (≥ 1s; jittered ±25%); also the lease's ttl")
	fs.StringVar(&ff.exportKey, "export-key", "", "logical `key` of the published artifact (default: the bucket name)")
	fs.StringVar(&ff.nodeID, "node-id", "", "this node's `name` in the export lease (default: hostname-pid)")
	fs.StringVar(&ff.bootstrapFrom, "bootstrap-from", "", "when the fold is missing, empty or its cursor expired, start from the latest artifact at this store `URL`")
	fs.StringVar(&ff.bootstrapKey, "bootstrap-key", "", "logical `key` to bootstrap from (default: -export-key, else the bucket name)")
	fs.BoolVar(&ff.nonAtomic, "non-atomic-pointer-fallback", false, "-export-to file://: overwrite the pointer without CAS (one exporter only)")
	fs.StringVar(&ff.s3Endpoint, "s3-endpoint", "", "s3:// URLs: base `URL` of an S3-compatible server (default: AWS, or AWS_ENDPOINT_URL_S3)")
	fs.StringVar(&ff.s3Region, "s3-region", "", "s3:// URLs: AWS `region`")
	fs.BoolVar(&ff.s3PathStyle, "s3-path-style", false, "s3:// URLs: address the bucket in the path (most S3-compatible servers)")
}

func (ff *fleetFlags) enabled() bool { return ff.exportTo != "" || ff.bootstrapFrom != "" }

// validate checks the fleet flags of a mirror of bucket with scope.
func (ff *fleetFlags) validate(bucket string, scope slipstream.Scope, set map[string]bool) error {
	if ff.exportTo == "" {
		for _, f := range []string{"export-every", "export-key", "node-id", "non-atomic-pointer-fallback"} {
			if set[f] {
				return usageErrorf("mirror", "-%s goes with -export-to", f)
			}
		}
	} else if ff.exportEvery < lease.MinTTL {
		return usageErrorf("mirror", "-export-to needs -export-every of at least %v", lease.MinTTL)
	}
	if ff.bootstrapFrom == "" && set["bootstrap-key"] {
		return usageErrorf("mirror", "-bootstrap-key goes with -bootstrap-from")
	}
	for _, u := range []string{ff.exportTo, ff.bootstrapFrom} {
		if u == "" {
			continue
		}
		if _, err := storeurl.Parse(u); err != nil {
			return usageErrorf("mirror", "%s", err.Error())
		}
	}
	// Every round after a local directory's first would fail: it cannot
	// replace the pointer conditionally. Say so before the first round.
	if loc, err := storeurl.Parse(ff.exportTo); err == nil && loc.Scheme == storeurl.SchemeFile && !ff.nonAtomic {
		return usageErrorf("mirror", "-export-to file:// needs -non-atomic-pointer-fallback (with a single exporter): "+
			"a local directory cannot replace the pointer atomically, so every round after the first would fail")
	}
	if !scope.IsAll() && ((ff.exportTo != "" && ff.exportKey == "") || (ff.bootstrapFrom != "" && ff.bootstrapKey == "" && ff.exportKey == "")) {
		return usageErrorf("mirror", "with -prefix, name the artifact with -export-key or -bootstrap-key: an artifact holds only the keys of the scope it was exported from")
	}
	if ff.exportKey == "" {
		ff.exportKey = bucket
	}
	if ff.bootstrapKey == "" {
		ff.bootstrapKey = ff.exportKey
	}
	if ff.nodeID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "node"
		}
		ff.nodeID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return nil
}

// leaseKey is the lease key of the fleet exporting bucket to url under key:
// nodes share a lease exactly when they publish the same artifact.
func leaseKey(bucket, url, key string) string {
	if loc, err := storeurl.Parse(url); err == nil {
		url = loc.String()
	}
	h := sha256.Sum256([]byte(url + "\n" + key))
	return "export." + bucket + "." + hex.EncodeToString(h[:8])
}

// openTransport opens the store url names; nats-object stores use the
// mirror's own connection nc.
func (ff *fleetFlags) openTransport(ctx context.Context, raw string, nc *nats.Conn) (*objstore.Transport, func(), error) {
	loc, err := storeurl.Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	if loc.Scheme == storeurl.SchemeNATS {
		st, err := natsobj.Open(ctx, nc, natsobj.Config{Bucket: loc.Bucket})
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", loc, err)
		}
		return &objstore.Transport{Store: st, Prefix: loc.Prefix}, func() {}, nil
	}
	tgt, err := storeurl.Open(ctx, raw, storeurl.Config{S3Endpoint: ff.s3Endpoint, S3Region: ff.s3Region, S3PathStyle: ff.s3PathStyle})
	if err != nil {
		return nil, nil, err
	}
	return tgt.Transport(), tgt.Close, nil
}

// probeStore reads key's pointer at url once (objstore.Transport.Check)
// before the mirror starts. A missing bucket or refused credentials are
// configuration errors that no retry fixes: they end the mirror at startup.
// Any other failure (the store unreachable, a timeout) may be transient: it
// is logged, and the export rounds or the bootstrap retry or fall back as
// they do later on.
func probeStore(ctx context.Context, tr *objstore.Transport, url, key string, log *slog.Logger) error {
	err := tr.Check(ctx, key)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, objstore.ErrBucketNotFound), errors.Is(err, objstore.ErrAccessDenied):
		return fmt.Errorf("%s: %w", url, err)
	default:
		log.Warn("store not reachable at startup; the fleet will retry", "store", url, "err", err)
		return nil
	}
}

// wrapFold makes the fold's store swappable, for the bootstrap.
func (ff *fleetFlags) wrapFold(fd *fold) *fold {
	if ff.bootstrapFrom == "" {
		return fd
	}
	return &fold{store: &swapStore{cur: fd.store, backend: fd.Backend}, Backend: fd.Backend, Dir: fd.Dir}
}

// backendName returns the fold's backend: the swapped-in one after a
// bootstrap that changed it.
func (f *fold) backendName() string {
	if s, ok := f.store.(*swapStore); ok {
		return s.backendName()
	}
	return f.Backend
}

// fleetNode is a mirror's fleet side: its exporter, its bootstrap and what
// they report.
type fleetNode struct {
	ff          fleetFlags
	bucketName  string
	bucket      mirrorBucket
	fold        *fold
	scratch     string
	explicitBE  bool // -backend was given: artifacts of another backend are refused
	log         *slog.Logger
	t           *tracker
	term        io.Writer // nil: progress as log lines
	exportTr    *objstore.Transport
	bootTr      *objstore.Transport
	closers     []func()
	lease       *lease.Lease
	leaseKey    string
	pointerTr   *objstore.Transport // the transport whose pointer status reports
	pointerKey  string
	pointerURL  string // the store pointerTr reads, for its errors
	checkEvery  time.Duration
	loopMu      sync.Mutex
	loop        *slipstream.Follower
	firstRun    bool
	expiredNext bool // the last run stopped on an expired resume: bootstrap
	resyncNext  bool // the bootstrap fell back: let the next run resync

	rounds       *prometheus.CounterVec
	roundLatency prometheus.Histogram
	boots        *prometheus.CounterVec
	lastCursor   atomic.Uint64 // last published cursor
	lastBytes    atomic.Uint64 // last exported artifact's payload bytes

	mu struct {
		sync.Mutex
		counts    map[string]uint64
		lastRound *roundStatus
		newest    *artifactStatus
		lastBoot  *bootstrapStatusRecord
	}
}

// newFleetNode builds a fleet node without I/O; startFleet opens what it
// needs.
func newFleetNode(ff fleetFlags, explicitBackend bool, bucketName string, bucket mirrorBucket,
	fd *fold, t *tracker, term io.Writer, log *slog.Logger) *fleetNode {
	n := &fleetNode{
		ff:         ff,
		bucketName: bucketName,
		bucket:     bucket,
		fold:       fd,
		scratch:    filepath.Clean(fd.Dir) + scratchSuffix,
		explicitBE: explicitBackend,
		log:        log.With(slipstream.LogKeyComponent, "fleet"),
		t:          t,
		term:       term,
		firstRun:   true,
		checkEvery: pointerCheckDefault,
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipstream_export_rounds_total",
			Help: "Export rounds by outcome: published, superseded, not_acquired (another node held the lease), skipped (not synced, or nothing new), failed.",
		}, []string{"outcome"}),
		roundLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "slipstream_export_round_duration_seconds",
			Help:    "Duration of the export rounds this node ran (lease won: export, upload, prune).",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 12), // 10ms … ~30min
		}),
		boots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipstream_bootstraps_total",
			Help: "Bootstraps from the fleet's artifact by outcome: imported, fallback (synced or resynced from the bucket instead).",
		}, []string{"outcome"}),
	}
	n.mu.counts = map[string]uint64{}
	return n
}

// startFleet sets up the fleet side of a mirror (nil when no fleet flag is
// set): the transports, the lease bucket on nc's server, and the scratch
// directory beside the fold (emptied: the fold's lock is held).
func startFleet(ctx context.Context, ff fleetFlags, explicitBackend bool, nc *nats.Conn, bucketName string, bucket mirrorBucket,
	fd *fold, t *tracker, term io.Writer, log *slog.Logger) (*fleetNode, error) {
	if !ff.enabled() {
		return nil, nil
	}
	n := newFleetNode(ff, explicitBackend, bucketName, bucket, fd, t, term, log)
	if err := os.RemoveAll(n.scratch); err != nil {
		return nil, fmt.Errorf("clear scratch directory: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			n.close()
		}
	}()
	if ff.exportTo != "" {
		tr, closeFn, err := ff.openTransport(ctx, ff.exportTo, nc)
		if err != nil {
			return nil, fmt.Errorf("-export-to: %w", err)
		}
		n.closers = append(n.closers, closeFn)
		if err := probeStore(ctx, tr, ff.exportTo, ff.exportKey, log); err != nil {
			return nil, fmt.Errorf("-export-to: %w", err)
		}
		tr.NonAtomicPointerFallback = ff.nonAtomic
		tr.Logger = n.log
		n.exportTr = tr
		lb, err := natskv.Open(ctx, nc, natskv.Config{Bucket: LeaseBucket, History: 1, MaxBytes: 8 << 20, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open lease bucket %s: %w", LeaseBucket, err)
		}
		n.leaseKey = leaseKey(bucketName, ff.exportTo, ff.exportKey)
		n.lease = &lease.Lease{KV: lb, Key: n.leaseKey, Holder: ff.nodeID, Logger: log}
		n.pointerTr, n.pointerKey, n.pointerURL, n.checkEvery = tr, ff.exportKey, ff.exportTo, ff.exportEvery
	}
	if ff.bootstrapFrom != "" {
		if ff.bootstrapFrom == ff.exportTo {
			n.bootTr = n.exportTr
		} else {
			tr, closeFn, err := ff.openTransport(ctx, ff.bootstrapFrom, nc)
			if err != nil {
				return nil, fmt.Errorf("-bootstrap-from: %w", err)
			}
			n.closers = append(n.closers, closeFn)
			if err := probeStore(ctx, tr, ff.bootstrapFrom, ff.bootstrapKey, log); err != nil {
				return nil, fmt.Errorf("-bootstrap-from: %w", err)
			}
			tr.Logger = n.log
			n.bootTr = tr
		}
		if n.pointerTr == nil {
			n.pointerTr, n.pointerKey, n.pointerURL = n.bootTr, ff.bootstrapKey, ff.bootstrapFrom
		}
	}
	ok = true
	return n, nil
}

func (n *fleetNode) close() {
	if n == nil {
		return
	}
	for _, c := range n.closers {
		c()
	}
}

// collectors are the fleet's metrics.
func (n *fleetNode) collectors() []prometheus.Collector {
	if n == nil {
		return nil
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	newest := func(f func(a *artifactStatus) float64) func() float64 {
		return func() float64 {
			a := n.newestArtifact()
			if a == nil {
				return 0
			}
			return f(a)
		}
	}
	var cs []prometheus.Collector
	if n.exportTr != nil {
		cs = append(cs, n.rounds, n.roundLatency,
			gauge("slipstream_export_last_published_cursor", "Cursor of the last artifact this node published.",
				func() float64 { return float64(n.lastCursor.Load()) }),
			gauge("slipstream_export_artifact_bytes", "Payload bytes of the last artifact this node exported.",
				func() float64 { return float64(n.lastBytes.Load()) }))
	}
	if n.bootTr != nil {
		cs = append(cs, n.boots)
	}
	return append(cs,
		gauge("slipstream_fleet_artifact_cursor", "Cursor of the fleet's newest published artifact (0 when none).",
			newest(func(a *artifactStatus) float64 { return float64(a.Cursor) })),
		gauge("slipstream_fleet_artifact_age_seconds", "Age of the fleet's newest published artifact, from its creation time.",
			newest(func(a *artifactStatus) float64 { return a.AgeSeconds })),
		gauge("slipstream_fleet_artifact_revisions_behind", "The bucket's head minus the cursor of the fleet's newest published artifact.",
			newest(func(a *artifactStatus) float64 { return float64(a.RevisionsBehind) })),
	)
}

// ---- the loop hooks ----

// setLoop records the running follower (nil between runs).
func (n *fleetNode) setLoop(f *slipstream.Follower) {
	if n == nil {
		return
	}
	n.loopMu.Lock()
	n.loop = f
	n.loopMu.Unlock()
}

// liveLoop is the follower to export, or nil to skip the round: before
// the mirror is synced, while its fold is empty, and while the fleet's
// pointer (as last read) already names the fold's cursor or a newer one —
// an idle bucket is not exported again.
func (n *fleetNode) liveLoop() *slipstream.Follower {
	if state, _, _ := n.t.snapshot(); state != stateSynced {
		return nil
	}
	cur := n.fold.Cursor()
	if cur.IsNone() {
		return nil
	}
	n.mu.Lock()
	newest := n.mu.newest
	n.mu.Unlock()
	if newest != nil && newest.Error == "" && newest.Cursor >= cur.Rank() {
		return nil
	}
	n.loopMu.Lock()
	defer n.loopMu.Unlock()
	return n.loop
}

// errBootstrapWanted is what the watch returns instead of
// slipstream.ErrCursorExpired when a bootstrap should replace the resync.
// It deliberately does not wrap ErrCursorExpired, so the follower stops
// instead of resyncing.
type errBootstrapWanted struct{ cause string }

func (e *errBootstrapWanted) Error() string {
	return "cursor expired; bootstrapping from the fleet's artifact: " + e.cause
}

// expiryWatcher turns the expiry of a resume into errBootstrapWanted.
type expiryWatcher struct{ slipstream.Watcher }

func (w expiryWatcher) Watch(ctx context.Context, scope slipstream.Scope, after slipstream.Cursor, out chan<- slipstream.Update) error {
	err := w.Watcher.Watch(ctx, scope, after, out)
	if !after.IsNone() && errors.Is(err, slipstream.ErrCursorExpired) {
		return &errBootstrapWanted{cause: err.Error()}
	}
	return err
}

// watcher wraps the next run's watcher: with -bootstrap-from, an expired
// resume stops the run for a bootstrap, unless the last bootstrap fell back
// (that run resyncs).
func (n *fleetNode) watcher(w slipstream.Watcher) slipstream.Watcher {
	if n == nil || n.bootTr == nil {
		return w
	}
	if n.resyncNext {
		n.resyncNext = false
		return w
	}
	return expiryWatcher{w}
}

// runEnded reports whether a run stopped for a bootstrap (the mirror then
// goes round at once, without a backoff).
func (n *fleetNode) runEnded(err error) bool {
	var bw *errBootstrapWanted
	if n == nil || !errors.As(err, &bw) {
		return false
	}
	n.log.Warn("cursor expired; bootstrapping from the fleet's latest artifact instead of resyncing",
		slipstream.LogKeyCursor, n.fold.Cursor().String(), "cause", bw.cause)
	n.expiredNext = true
	return true
}

// beforeRun bootstraps the fold when it is due: at the first run on an
// empty fold, and after a run stopped on an expired resume. Only a fold that
// cannot be reopened is an error.
func (n *fleetNode) beforeRun(ctx context.Context) error {
	if n == nil || n.bootTr == nil {
		return nil
	}
	reason := ""
	switch {
	case n.expiredNext:
		reason = "cursor expired"
	case n.firstRun && n.fold.Cursor().IsNone():
		reason = "empty fold"
	}
	n.firstRun, n.expiredNext = false, false
	if reason == "" {
		return nil
	}
	return n.bootstrap(ctx, reason)
}

// ---- bootstrap ----

// manifestBackends maps manifest backends to the command's names.
var manifestBackends = map[string]string{applog.Backend: backendAppLog, pebblestore.Backend: backendPebble}

func artifactBackend(name string, log *slog.Logger) artifact.Backend {
	if name == backendPebble {
		return pebblestore.ArtifactBackend{Logger: log}
	}
	return applog.ArtifactBackend{}
}

// bootstrap replaces the fold with the fleet's latest artifact, or says why
// not and lets the follower sync or resync from the bucket.
func (n *fleetNode) bootstrap(ctx context.Context, reason string) error {
	n.t.setState(stateBootstrapping)
	start := time.Now()
	rec := &bootstrapStatusRecord{Time: start, Reason: reason}
	fallback := func(msg string, args ...any) error {
		rec.Outcome, rec.Message = bootFallback, msg
		n.finishBoot(rec)
		n.resyncNext = reason == "cursor expired"
		what := "syncing from the bucket"
		if n.resyncNext {
			what = "resyncing from the bucket"
		}
		n.log.Warn("bootstrap: "+msg+"; "+what, append(args, "reason", reason)...)
		return nil
	}

	m, err := n.bootTr.Manifest(ctx, n.ff.bootstrapKey)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, objstore.ErrNotPublished) {
			return fallback(underStore(err, n.ff.bootstrapFrom).Error())
		}
		return fallback("no artifact to start from", "key", n.ff.bootstrapKey, "err", err)
	}
	rec.Cursor = m.Cursor.Rank()
	be, known := manifestBackends[m.Backend]
	cur := n.fold.Cursor()
	if !known {
		return fallback("the artifact's backend is unknown to this build", "backend", m.Backend)
	}
	if be != n.fold.backendName() && (n.explicitBE || !cur.IsNone()) {
		return fallback("the artifact's backend differs from the fold's", "artifact_backend", be, "fold_backend", n.fold.backendName())
	}
	st, err := n.bucket.Status(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fallback("the bucket's retained history is unknown", "err", err)
	}
	rank := m.Cursor.Rank()
	switch {
	case m.Cursor.IsNone() || rank == 0:
		return fallback("the artifact has no cursor", "key", n.ff.bootstrapKey)
	case !protocol.ResumeWindowOK(rank, st.FirstSeq):
		return fallback("the artifact is older than the bucket's retained history",
			"artifact_cursor", rank, "first_revision", st.FirstSeq)
	case rank > st.LastSeq:
		return fallback("the artifact is ahead of the bucket (recreated or restored?)",
			"artifact_cursor", rank, "last_revision", st.LastSeq)
	case !cur.IsNone() && rank <= cur.Rank():
		return fallback("the artifact is no newer than the fold", "artifact_cursor", rank, slipstream.LogKeyCursor, cur.Rank())
	}

	n.log.Info("bootstrapping from the fleet's artifact", "reason", reason, "from", n.ff.bootstrapFrom,
		"key", n.ff.bootstrapKey, "artifact_cursor", rank, "backend", be, "bytes", m.Size())
	if err := os.MkdirAll(n.scratch, 0o755); err != nil {
		return fallback("scratch directory unusable", "err", err)
	}
	dest := filepath.Join(n.scratch, "fold")
	if err := os.RemoveAll(dest); err != nil {
		return fallback("scratch directory unusable", "err", err)
	}
	bp := newBootProgress(n.term, n.log)
	im := &fleet.Import{Transport: n.bootTr, Key: n.ff.bootstrapKey, ScratchDir: n.scratch,
		Backends: []artifact.Backend{artifactBackend(be, n.log)}, OnProgress: bp.update}
	res, err := im.Run(ctx, dest)
	bp.abort()
	if err != nil {
		os.RemoveAll(dest)
		if ctx.Err() != nil {
			return nil
		}
		return fallback("the artifact could not be imported", "err", err)
	}
	orig := n.fold.backendName()
	err = n.t.bind.replace(fmt.Sprintf("bootstrapped from the fleet's artifact %q: verifying it against bucket %q before reporting ready",
		n.ff.bootstrapKey, n.bucketName), func() error { return n.swapIn(dest, be) })
	if err != nil {
		return err
	}
	// A manifest names no bucket: compare the imported fold with this one
	// before resuming on it (binding.go). What this cannot decide, the
	// audit after the catch-up does, before the node reports ready.
	if err := checkIdentity(ctx, n.bucket, n.fold, n.bucketName, st.LastSeq); errors.Is(err, errFoldOfOtherBucket) {
		if err := n.freshFold(orig); err != nil {
			return err
		}
		return fallback("the artifact is not a fold of this bucket; starting from a fresh fold", "key", n.ff.bootstrapKey, "err", err)
	} else if err != nil {
		n.log.Warn("bootstrap: the imported fold could not be compared with the bucket; the audit verifies it", "err", err)
	}
	rec.Outcome = bootImported
	rec.Cursor = res.Manifest.Cursor.Rank()
	rec.Bytes = res.Downloaded
	rec.DownloadMS = float64(res.Download.Microseconds()) / 1e3
	rec.ImportMS = float64(res.Install.Microseconds()) / 1e3
	n.finishBoot(rec)
	n.log.Info("bootstrapped from the fleet's artifact; resuming from its cursor", slipstream.LogKeyCursor, rec.Cursor,
		"backend", be, "bytes", res.Downloaded, "download", res.Download.Round(time.Millisecond),
		"import", res.Install.Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func (n *fleetNode) finishBoot(rec *bootstrapStatusRecord) {
	n.boots.WithLabelValues(rec.Outcome).Inc()
	n.mu.Lock()
	n.mu.lastBoot = rec
	n.mu.Unlock()
}

// swapIn replaces the fold's directory with the imported fold at dir and
// reopens it with backend be. The old fold is moved into the scratch
// directory first and removed last; a crash in between leaves the fold
// missing (the next start bootstraps again) or complete, never mixed.
func (n *fleetNode) swapIn(dir, be string) error {
	ss, ok := n.fold.store.(*swapStore)
	if !ok {
		return errors.New("bootstrap: fold is not swappable")
	}
	foldDir := filepath.Clean(n.fold.Dir)
	old := filepath.Join(n.scratch, "old")
	return ss.swap(func(cur store) (store, string, error) {
		if err := cur.Close(); err != nil {
			return nil, "", fmt.Errorf("bootstrap: close the old fold: %w", err)
		}
		if err := os.RemoveAll(old); err != nil {
			return nil, "", fmt.Errorf("bootstrap: %w", err)
		}
		if err := os.Rename(foldDir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("bootstrap: move the old fold aside: %w", err)
		}
		if err := os.Rename(dir, foldDir); err != nil {
			return nil, "", fmt.Errorf("bootstrap: move the imported fold into place: %w", err)
		}
		if err := fsync.Dir(filepath.Dir(foldDir)); err != nil {
			return nil, "", err
		}
		f, err := openBackend(foldDir, be, n.log)
		if err != nil {
			return nil, "", fmt.Errorf("bootstrap: open the imported fold: %w", err)
		}
		if err := os.RemoveAll(old); err != nil {
			n.log.Error("bootstrap: old fold not removed", "dir", old, "err", err)
		}
		return f.store, be, nil
	})
}

// freshFold replaces the fold with an empty one of backend be, bound to the
// bucket: the follower then syncs it from the bucket.
func (n *fleetNode) freshFold(be string) error {
	empty := filepath.Join(n.scratch, "fold")
	if err := os.RemoveAll(empty); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := os.MkdirAll(empty, 0o755); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := n.t.bind.replace("a fresh fold", func() error { return n.swapIn(empty, be) }); err != nil {
		return err
	}
	return n.t.bind.bindNow()
}

// ---- export rounds ----

// runExporter runs the export rounds until ctx ends (with -export-to).
func (n *fleetNode) runExporter(ctx context.Context) {
	if n == nil || n.exportTr == nil {
		return
	}
	e := &fleet.Exporter{
		Round: fleet.ExportRound{Lease: n.lease, Transport: n.exportTr, Key: n.ff.exportKey,
			ScratchDir: n.scratch, Logger: n.log},
		Every:   n.ff.exportEvery,
		Loop:    n.liveLoop,
		OnRound: n.onRound,
	}
	n.log.Info("export rounds starting", "to", n.ff.exportTo, "key", n.ff.exportKey, "every", n.ff.exportEvery,
		"node_id", n.ff.nodeID, "lease_bucket", LeaseBucket, "lease_key", n.leaseKey)
	if err := e.Run(ctx); err != nil {
		n.log.Error("export rounds stopped", "err", err)
	}
}

// onRound records and logs a round.
func (n *fleetNode) onRound(r fleet.Report) {
	rs := &roundStatus{Time: r.Start, DurationMS: float64(r.Duration.Microseconds()) / 1e3}
	switch {
	case r.Skipped:
		rs.Outcome = "skipped"
	case r.Err != nil:
		rs.Outcome, rs.Error = "failed", r.Err.Error()
	default:
		rs.Outcome = r.Result.Outcome.String()
	}
	if m := r.Result.Manifest; m != nil {
		rs.Cursor, rs.Bytes = m.Cursor.Rank(), m.Size()
		n.lastBytes.Store(m.Size())
	}
	n.rounds.WithLabelValues(rs.Outcome).Inc()
	if rs.Outcome != "skipped" && rs.Outcome != fleet.NotAcquired.String() {
		n.roundLatency.Observe(r.Duration.Seconds())
	}
	n.mu.Lock()
	n.mu.counts[rs.Outcome]++
	if rs.Outcome != "skipped" {
		n.mu.lastRound = rs
	}
	n.mu.Unlock()
	took := r.Duration.Round(time.Millisecond)
	switch rs.Outcome {
	case "failed":
		n.log.Warn("export round failed; the lease is released for the next node", "err", r.Err, "took", took)
	case fleet.Published.String():
		n.lastCursor.Store(rs.Cursor)
		n.log.Info("export round published", slipstream.LogKeyCursor, rs.Cursor, "bytes", rs.Bytes,
			"pruned", r.Result.Pruned, "took", took)
		n.checkPointer(context.Background())
	case fleet.Superseded.String():
		n.log.Info("export round superseded by a newer artifact", slipstream.LogKeyCursor, rs.Cursor,
			"remote_cursor", r.Result.Remote.Rank(), "took", took)
	case fleet.NotAcquired.String():
		n.log.Debug("export round: another node holds the lease")
	default:
		n.log.Debug("export round skipped: not synced, or nothing new since the fleet's artifact")
	}
}

// ---- the fleet's newest artifact ----

// watchPointer reads the fleet's pointer periodically until ctx ends.
func (n *fleetNode) watchPointer(ctx context.Context) {
	if n == nil || n.pointerTr == nil {
		return
	}
	tick := time.NewTicker(n.checkEvery)
	defer tick.Stop()
	for {
		n.checkPointer(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (n *fleetNode) checkPointer(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a := &artifactStatus{CheckedAt: time.Now()}
	m, err := n.pointerTr.Manifest(ctx, n.pointerKey)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		a.Error = underStore(err, n.pointerURL).Error()
	} else {
		a.Cursor = m.Cursor.Rank()
		a.Backend = m.Backend
		a.Bytes = m.Size()
		a.CreatedAt = time.Unix(int64(m.CreatedAtUnix), 0).UTC()
	}
	n.mu.Lock()
	n.mu.newest = a
	n.mu.Unlock()
}

// newestArtifact returns the last pointer read, with its age and distance
// from the bucket's head as of now (nil before the first read or when
// there is no artifact).
func (n *fleetNode) newestArtifact() *artifactStatus {
	n.mu.Lock()
	a := n.mu.newest
	n.mu.Unlock()
	if a == nil || a.Error != "" {
		return a
	}
	c := *a
	c.AgeSeconds = max(time.Since(c.CreatedAt).Seconds(), 0)
	if head := n.t.head.Load(); head > c.Cursor {
		c.RevisionsBehind = head - c.Cursor
	}
	return &c
}

// ---- status ----

// fleetStatus is the "fleet" object of GET /v1/status.
type fleetStatus struct {
	NodeID    string           `json:"node_id"`
	Export    *exportStatus    `json:"export,omitempty"`
	Bootstrap *bootstrapStatus `json:"bootstrap,omitempty"`
	Newest    *artifactStatus  `json:"newest_artifact,omitempty"`
}

type exportStatus struct {
	To                  string            `json:"to"`
	Key                 string            `json:"key"`
	Every               string            `json:"every"`
	LeaseBucket         string            `json:"lease_bucket"`
	LeaseKey            string            `json:"lease_key"`
	Rounds              map[string]uint64 `json:"rounds"`
	LastRound           *roundStatus      `json:"last_round,omitempty"`
	LastPublishedCursor uint64            `json:"last_published_cursor"`
}

type roundStatus struct {
	Time       time.Time `json:"time"`
	Outcome    string    `json:"outcome"`
	Cursor     uint64    `json:"cursor,omitempty"`
	Bytes      uint64    `json:"bytes,omitempty"`
	DurationMS float64   `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
}

type bootstrapStatus struct {
	From string                 `json:"from"`
	Key  string                 `json:"key"`
	Last *bootstrapStatusRecord `json:"last,omitempty"`
}

type bootstrapStatusRecord struct {
	Time       time.Time `json:"time"`
	Reason     string    `json:"reason"`
	Outcome    string    `json:"outcome"`
	Cursor     uint64    `json:"cursor,omitempty"`
	Message    string    `json:"message,omitempty"`
	Bytes      int64     `json:"bytes,omitempty"`
	DownloadMS float64   `json:"download_ms,omitempty"`
	ImportMS   float64   `json:"import_ms,omitempty"`
}

type artifactStatus struct {
	Cursor          uint64    `json:"cursor"`
	Backend         string    `json:"backend,omitempty"`
	Bytes           uint64    `json:"bytes,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	AgeSeconds      float64   `json:"age_seconds"`
	RevisionsBehind uint64    `json:"revisions_behind"`
	CheckedAt       time.Time `json:"checked_at"`
	Error           string    `json:"error,omitempty"`
}

// status returns the fleet's part of GET /v1/status (nil without fleet
// flags).
func (n *fleetNode) status() *fleetStatus {
	if n == nil {
		return nil
	}
	fs := &fleetStatus{NodeID: n.ff.nodeID, Newest: n.newestArtifact()}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exportTr != nil {
		es := &exportStatus{To: n.ff.exportTo, Key: n.ff.exportKey, Every: n.ff.exportEvery.String(),
			LeaseBucket: LeaseBucket, LeaseKey: n.leaseKey, Rounds: map[string]uint64{},
			LastPublishedCursor: n.lastCursor.Load()}
		for _, o := range []string{"published", "superseded", "not_acquired", "skipped", "failed"} {
			es.Rounds[o] = n.mu.counts[o]
		}
		if n.mu.lastRound != nil {
			lr := *n.mu.lastRound
			es.LastRound = &lr
		}
		fs.Export = es
	}
	if n.bootTr != nil {
		bs := &bootstrapStatus{From: n.ff.bootstrapFrom, Key: n.ff.bootstrapKey}
		if n.mu.lastBoot != nil {
			lb := *n.mu.lastBoot
			bs.Last = &lb
		}
		fs.Bootstrap = bs
	}
	return fs
}

// setState moves the tracker to state (the fleet's bootstrapping).
func (t *tracker) setState(state string) {
	t.mu.Lock()
	t.setStateLocked(state)
	t.mu.Unlock()
}

// ---- the swappable fold ----

// swapStore is a fold whose store a bootstrap can replace while readers
// (HTTP, status) use it. Calls are serialised with the swap by a RWMutex,
// so a ForEachInRange callback must not call the store again.
type swapStore struct {
	mu      sync.RWMutex
	cur     store
	backend string
}

var _ store = (*swapStore)(nil)

func (s *swapStore) Apply(batch []slipstream.Update, c slipstream.Cursor) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Apply(batch, c)
}

func (s *swapStore) Get(key string) (slipstream.Entry, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Get(key)
}

func (s *swapStore) ForEachInRange(prefix string, fn func(slipstream.Entry) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.ForEachInRange(prefix, fn)
}

func (s *swapStore) Cursor() slipstream.Cursor {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Cursor()
}

func (s *swapStore) ExportTo(dir string) (slipstream.Export, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.ExportTo(dir)
}

func (s *swapStore) Close() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Close()
}

func (s *swapStore) Len() (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Len()
}

func (s *swapStore) Size() (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Size()
}

func (s *swapStore) backendName() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.backend
}

// swap replaces the store with what fn returns, fn being given the current
// one. On error the current store stays (fn may have closed it: the error
// is then fatal to the mirror).
func (s *swapStore) swap(fn func(cur store) (store, string, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, be, err := fn(s.cur)
	if err != nil {
		return err
	}
	s.cur, s.backend = next, be
	return nil
}

// ---- progress ----

// bootProgress shows a bootstrap: the download with the command's byte
// progress (a bar on a terminal, else a log line every progressLogEvery),
// then the import's start and end.
type bootProgress struct {
	term io.Writer // nil: log lines
	log  *slog.Logger

	mu struct {
		sync.Mutex
		download *byteProgress
		start    time.Time
	}
}

func newBootProgress(term io.Writer, log *slog.Logger) *bootProgress {
	return &bootProgress{term: term, log: log}
}

func (p *bootProgress) update(pr fleet.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch pr.Phase {
	case fleet.PhaseDownload:
		if p.mu.download == nil {
			p.mu.download = newByteProgress(p.term, p.log, pr.Total)
		}
		if pr.Finished {
			p.mu.download.finish(true)
			p.log.Info("bootstrap download done", "bytes", pr.Done, "took", time.Since(p.mu.download.start).Round(time.Millisecond))
			return
		}
		p.mu.download.update(pr.Done)
	case fleet.PhaseImport:
		if !pr.Finished {
			p.mu.start = time.Now()
			if p.term != nil {
				fmt.Fprintf(p.term, "import    verifying and installing %s …\n", sizeText(float64(pr.Total)))
			}
			p.log.Info("bootstrap import: verifying and installing the fold", "bytes", pr.Total)
			return
		}
		took := time.Since(p.mu.start).Round(time.Millisecond)
		if p.term != nil {
			// Close the "verifying and installing" line: at -log-level warn
			// it was the last thing on screen, as if still importing.
			fmt.Fprintf(p.term, "import done: %s in %s\n", sizeText(float64(pr.Done)), took)
		}
		p.log.Info("bootstrap import done", "bytes", pr.Done, "took", took)
	}
}

// abort clears a bar left on screen by a failed download.
func (p *bootProgress) abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.download != nil {
		p.mu.download.finish(false)
	}
}
