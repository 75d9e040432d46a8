package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/audit"
	"github.com/slipstream-kv/slipstream/natskv"
)

// Mirror defaults.
const (
	// DefaultBucketMaxBytes caps a bucket that mirror or kv creates (1 GiB)
	// unless -max-bytes says otherwise; -1 means unlimited.
	DefaultBucketMaxBytes = 1 << 30
	// DefaultBatchMax is mirror's -batch-max.
	DefaultBatchMax = 1000

	restartBackoffMin = 200 * time.Millisecond
	restartBackoffMax = 10 * time.Second
	// a run that lasted this long resets the backoff
	restartBackoffReset = 30 * time.Second
	headPollEvery       = 2 * time.Second
)

// MirrorCommand mirrors a bucket into a fold until SIGINT or SIGTERM.
type MirrorCommand struct {
	m *Main

	bucket      string
	foldDir     string
	conn        natsFlags
	prefixes    stringList
	backend     string
	httpAddr    string
	httpCert    string
	httpKey     string
	httpToken   string
	batchMax    int
	batchWindow time.Duration
	listen      string
	natsStore   string
	history     uint
	maxBytes    int64
	maxAge      time.Duration
	replicas    int
	create      bool
	auditEvery  time.Duration
	grace       time.Duration
	asJSON      bool
	fleet       fleetFlags
	logs        logFlags
}

func (c *MirrorCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("mirror")
	fs.StringVar(&c.bucket, "bucket", "", "bucket `name` (required; created if missing on the embedded server, or with -create-bucket)")
	fs.StringVar(&c.foldDir, "fold", "", "fold `directory` (required; created if missing)")
	c.conn.register(fs, "NATS server `URL`; with neither it nor -context, an embedded server with JetStream is started")
	fs.Var(&c.prefixes, "prefix", "mirror only keys under `prefix` (ending in \".\"); repeatable, one consumer")
	fs.StringVar(&c.backend, "backend", "", "fold `backend` for a new fold: applog or pebble (default applog; an existing fold keeps its own)")
	fs.StringVar(&c.httpAddr, "http", "", "serve the fold and status over HTTP on `address` (e.g. 127.0.0.1:8080)")
	fs.StringVar(&c.httpCert, "http-tls-cert", "", "serve HTTPS with this certificate `file` (PEM; with -http-tls-key)")
	fs.StringVar(&c.httpKey, "http-tls-key", "", "private key `file` (PEM) of -http-tls-cert")
	fs.StringVar(&c.httpToken, "http-token-file", "", "require 'Authorization: Bearer <token>' on every route but /healthz and /readyz; the token is this `file`'s content")
	fs.IntVar(&c.batchMax, "batch-max", DefaultBatchMax, "flush after `n` updates")
	fs.DurationVar(&c.batchWindow, "batch-window", slipstream.DefaultMaxBatchDelay, "flush a batch at most `duration` after its first update")
	fs.StringVar(&c.listen, "listen", DefaultListen, "embedded server: client listen `address` (port 0 picks one)")
	fs.StringVar(&c.natsStore, "nats-store", "", "embedded server: JetStream store `directory` (default <fold>.nats)")
	fs.UintVar(&c.history, "history", 1, "new bucket: revisions kept per key (1-64)")
	fs.Int64Var(&c.maxBytes, "max-bytes", DefaultBucketMaxBytes, "new bucket: size limit in `bytes` (-1 unlimited)")
	fs.DurationVar(&c.maxAge, "max-age", 0, "new bucket: expire entries older than `duration` (0 keeps them)")
	fs.IntVar(&c.replicas, "replicas", 1, "new bucket: stream replicas")
	fs.BoolVar(&c.create, "create-bucket", false, "create the bucket if missing (the default on the embedded server; with -nats or -context a missing bucket is an error without it)")
	fs.DurationVar(&c.auditEvery, "audit-every", DefaultAuditEvery, "audit the fold against the bucket every `duration` (0: only after each resume has caught up)")
	fs.DurationVar(&c.grace, "disconnect-grace", DefaultDisconnectGrace, "report not ready (/readyz 503) once NATS has been disconnected for `duration`")
	fs.BoolVar(&c.asJSON, "json", false, "print the final cursor as a JSON object")
	c.fleet.register(fs)
	c.logs.register(fs)
	return fs
}

var bucketNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// scope returns the watch scope of the -prefix flags.
func scopeOf(prefixes []string) slipstream.Scope {
	if len(prefixes) == 0 {
		return slipstream.AllKeys()
	}
	for _, p := range prefixes {
		if p == "" {
			return slipstream.AllKeys()
		}
	}
	return slipstream.Prefixes(prefixes...)
}

func (c *MirrorCommand) validate(set map[string]bool) error {
	switch {
	case c.bucket == "":
		return usageErrorf("mirror", "-bucket is required")
	case !bucketNameRE.MatchString(c.bucket):
		return usageErrorf("mirror", "invalid -bucket %q: use letters, digits, '-' and '_'", c.bucket)
	case c.foldDir == "":
		return usageErrorf("mirror", "-fold is required")
	case c.backend != "" && c.backend != backendAppLog && c.backend != backendPebble:
		return usageErrorf("mirror", "invalid -backend %q: want applog or pebble", c.backend)
	case c.batchMax <= 0:
		return usageErrorf("mirror", "-batch-max must be > 0")
	case c.batchWindow < 0:
		return usageErrorf("mirror", "-batch-window must be ≥ 0")
	case c.history < 1 || c.history > 64:
		return usageErrorf("mirror", "-history must be between 1 and 64")
	case c.maxBytes == 0 || c.maxBytes < -1:
		return usageErrorf("mirror", "-max-bytes must be > 0, or -1 for unlimited")
	case c.maxAge < 0:
		return usageErrorf("mirror", "-max-age must be ≥ 0")
	case c.replicas < 1:
		return usageErrorf("mirror", "-replicas must be ≥ 1")
	case c.auditEvery < 0:
		return usageErrorf("mirror", "-audit-every must be ≥ 0")
	case c.grace < 0:
		return usageErrorf("mirror", "-disconnect-grace must be ≥ 0")
	case (c.httpCert == "") != (c.httpKey == ""):
		return usageErrorf("mirror", "-http-tls-cert and -http-tls-key go together")
	case c.httpAddr == "" && (c.httpCert != "" || c.httpToken != ""):
		return usageErrorf("mirror", "-http-tls-cert, -http-tls-key and -http-token-file need -http")
	case c.conn.remote() && (set["listen"] || set["nats-store"]):
		return usageErrorf("mirror", "-listen and -nats-store configure the embedded server; they do not go with -nats or -context")
	}
	if !set["create-bucket"] {
		c.create = !c.conn.remote()
	}
	if !c.create {
		for _, f := range []string{"history", "max-bytes", "max-age", "replicas"} {
			if set[f] {
				return usageErrorf("mirror", "-%s configures a bucket the mirror creates: add -create-bucket", f)
			}
		}
	}
	if err := scopeOf(c.prefixes).Validate(); err != nil {
		return usageErrorf("mirror", "%v", err)
	}
	return c.fleet.validate(c.bucket, scopeOf(c.prefixes), set)
}

// Run executes the command.
func (c *MirrorCommand) Run(ctx context.Context, args []string) (err error) {
	fs := c.flagSet()
	args, err = parseFlags("mirror", fs, args, c.Usage)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageErrorf("mirror", "unexpected argument %q", args[0])
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.conn.applyEnv(c.m.Getenv)
	if err := c.conn.check("mirror"); err != nil {
		return err
	}
	if err := c.validate(set); err != nil {
		return err
	}
	logger, err := c.m.logger("mirror", c.logs)
	if err != nil {
		return err
	}
	scope := scopeOf(c.prefixes)

	// A fold bound to another bucket or scope is refused before anything
	// is opened, created or connected to: it is left as it was.
	want := newBinding(c.bucket, scope)
	bound, err := checkBinding(c.foldDir, want)
	if err != nil {
		return err
	}

	// The fold first: its lock stops a second mirror before it starts a
	// second embedded server on the same store.
	fd, err := openFold(c.foldDir, c.backend, logger)
	if err != nil {
		return err
	}
	fd = c.fleet.wrapFold(fd)
	defer func() {
		if cerr := fd.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close fold: %w", cerr)
		}
	}()

	// A shutdown (SIGINT, SIGTERM) that interrupts a step of the startup
	// is a stop like any other, whichever step it was.
	startErr := func(err error) error {
		if ctx.Err() != nil {
			return c.stopped(logger, fd)
		}
		return err
	}

	dialCfg, err := c.conn.dialConfig("", "slipstream mirror "+c.bucket)
	if err != nil {
		return err
	}
	if !c.conn.remote() {
		emb, storeDir, err := startFoldServer(ctx, c.listen, c.natsStore, c.foldDir, logger)
		if err != nil {
			return err
		}
		defer emb.Shutdown()
		dialCfg.URL = emb.ClientURL()
		logger.Info("embedded NATS server started", "url", dialCfg.URL, "store", storeDir)
	}
	logger.Debug("connecting to NATS", "config", dialCfg.String())
	nc, err := natskv.Dial(dialCfg)
	if err != nil {
		return startErr(err)
	}
	defer nc.Close()

	var term io.Writer // nil: progress as log lines
	if c.m.stderrIsTerminal() && c.logs.format == "text" {
		term = c.m.Stderr
	}
	t := newTracker(scope, logger, newProgressReporter(term, logger))
	t.conn.grace = c.grace
	t.conn.attach(nc)
	bucket, err := natskv.Open(ctx, nc, natskv.Config{
		Bucket:     c.bucket,
		History:    uint8(c.history),
		MaxBytes:   c.maxBytes,
		MaxAge:     c.maxAge,
		Replicas:   c.replicas,
		Logger:     logger,
		OnProgress: t.onProgress,
		NoCreate:   !c.create,
		// The stream the fold's cursor belongs to: a resume on a bucket
		// recreated since is refused, and the follower resyncs.
		StreamCreated: boundStream(bound),
	})
	if errors.Is(err, natskv.ErrBucketNotFound) {
		return fmt.Errorf("%w: bucket %q on %s (create it, or pass -create-bucket)", errBucketMissing, c.bucket, nc.ConnectedUrlRedacted())
	}
	if err != nil {
		return startErr(fmt.Errorf("open bucket %s: %w", c.bucket, err))
	}
	if t.bind, err = bindFold(ctx, c.foldDir, want, bound, bucket, fd, logger); err != nil {
		return startErr(err)
	}
	t.syncedStream = bucket.SyncedStream
	fl, err := startFleet(ctx, c.fleet, c.backend != "", nc, c.bucket, bucket, fd, t, term, logger)
	if err != nil {
		return startErr(err)
	}
	defer fl.close()

	mr := &mirror{
		bucket:      bucket,
		fold:        fd,
		scope:       scope,
		batchMax:    c.batchMax,
		batchWindow: c.batchWindow,
		log:         logger,
		t:           t,
		audits:      true,
		auditEvery:  c.auditEvery,
		fleet:       fl,
	}

	// The HTTP server outlives the follower (it is stopped after the last
	// flush) and stops the mirror if it fails.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	var wg sync.WaitGroup
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHTTP()
	var httpErr error
	if c.httpAddr != "" {
		var tlsCfg *tls.Config
		if c.httpCert != "" {
			if tlsCfg, err = loadTLS(c.httpCert, c.httpKey); err != nil {
				return err
			}
		}
		var token []byte
		if c.httpToken != "" {
			if token, err = readTokenFile(c.httpToken); err != nil {
				return err
			}
			if tlsCfg == nil {
				logger.Warn("the HTTP bearer token travels in clear text: add -http-tls-cert and -http-tls-key unless a TLS proxy fronts the mirror")
			}
		}
		ln, err := net.Listen("tcp", c.httpAddr)
		if err != nil {
			return fmt.Errorf("listen http: %w", err)
		}
		api := &httpAPI{
			store:   fd,
			status:  func(ctx context.Context) (statusDoc, error) { return mr.status(ctx, c.bucket) },
			ready:   t.readyErr,
			metrics: newMetricsHandler(t, fl.collectors()...),
			artifacts: &artifactHandler{
				export:  mr.exportArtifact,
				scratch: filepath.Dir(filepath.Clean(c.foldDir)),
				log:     logger,
			},
			log:   logger,
			token: token,
		}
		logger.Info("serving http", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "token", token != nil)
		wg.Go(func() {
			if httpErr = serveHTTP(httpCtx, ln, api.handler(), tlsCfg, logger); httpErr != nil {
				stopRun(httpErr)
			}
		})
	}

	logger.Info("mirror starting", "bucket", c.bucket, "fold", c.foldDir, "backend", fd.Backend,
		slipstream.LogKeyScope, scope.String(), slipstream.LogKeyCursor, fd.Cursor().String())
	runErr := mr.run(runCtx)
	stopHTTP()
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	if httpErr != nil {
		return httpErr
	}
	return c.stopped(logger, fd)
}

// stopped reports a shutdown (SIGINT or SIGTERM; also one that arrives
// while the mirror is still starting): the final cursor on stdout, exit 0.
func (c *MirrorCommand) stopped(logger *slog.Logger, fd *fold) error {
	final := fd.Cursor().Rank()
	logger.Info("mirror stopped", slipstream.LogKeyCursor, final)
	if c.asJSON {
		return json.NewEncoder(c.m.Stdout).Encode(struct {
			Cursor  uint64 `json:"cursor"`
			Bucket  string `json:"bucket"`
			Fold    string `json:"fold"`
			Backend string `json:"backend"`
		}{final, c.bucket, c.foldDir, fd.backendName()})
	}
	_, err := fmt.Fprintln(c.m.Stdout, final)
	return err
}

// Usage prints the command's help.
func (c *MirrorCommand) Usage() {
	printUsage(c.m.Stdout, `
Mirror a bucket (or the keys under -prefix, on one consumer) into a fold and
keep it in sync until SIGINT or SIGTERM; then flush, print the final cursor on
stdout and exit 0. A restart resumes from the fold's cursor (delta only); if
the history after it is gone, the mirror resyncs.

Without -nats or -context (nor NATS_URL or NATS_CONTEXT), an embedded NATS
server with JetStream is started, storing its data in <fold>.nats next to the
fold and listening on 127.0.0.1:4222 (see -listen), so 'slipstream kv' and any
NATS client can write to it; the bucket is created there if missing
(-history, -max-bytes, -max-age, -replicas). On a server given by -nats or
-context the bucket must exist, unless -create-bucket is given. The
connection flags are natscli's; each falls back to the environment variable
shown, then to the -context.

A fold remembers the bucket and scope it mirrors (a file beside its data):
a mirror with another -bucket or -prefix refuses it, leaving it untouched.
A fold without that record (imported, bootstrapped, or made by an older
version) is first compared with the bucket at a few points, refused if it
holds another bucket's keys, and reported ready only once the audit after
its first catch-up has verified it (state "verifying" until then).

With -http, the fold is served read-only: GET /v1/kv/{key}, GET
/v1/kv?prefix=P, GET /v1/status, /healthz, /readyz and /metrics; GET
/v1/artifact streams a fresh artifact as a tar ('slipstream export --from').
Bind it to loopback unless it is protected: -http-tls-cert/-http-tls-key serve
HTTPS and -http-token-file requires a bearer token on every route but the
probes.

The fold is audited against the bucket in the background after each start or
restart of the follower has caught up, and every -audit-every: divergent
keys (stale, missed, backwards: see 'slipstream audit -h') are re-read and
repaired through the follower. /v1/status reports the last audit and whether
the fold has been verified since the last resume.

With -export-to URL -export-every DUR, the node takes part in the fleet's
export rounds: each period, the node that wins the export lease publishes its
fold there. With -bootstrap-from URL, a missing, empty or expired fold starts
from the latest artifact there instead of the whole bucket (docs/FLEET.md).

Usage:

	slipstream mirror --bucket NAME --fold DIR [flags]
`, c.flagSet())
}

// mirrorBucket is what a mirror needs of a bucket; *natskv.Bucket has it.
type mirrorBucket interface {
	slipstream.Watcher
	slipstream.KeyLister
	slipstream.RecordReader
	audit.Bucket
	probeBucket
	Status(ctx context.Context) (natskv.Status, error)
}

var _ mirrorBucket = (*natskv.Bucket)(nil)

// mirror runs a Follower from a bucket into a fold, restarting it from the
// fold's cursor when its watch fails.
type mirror struct {
	bucket      mirrorBucket
	fold        *fold
	scope       slipstream.Scope
	batchMax    int
	batchWindow time.Duration
	log         *slog.Logger
	t           *tracker
	audits      bool          // audit after each catch-up and every auditEvery
	auditEvery  time.Duration // 0: only after each catch-up

	current atomic.Pointer[slipstream.Follower] // the running follower, nil between runs
	fleet   *fleetNode                          // nil without -export-to and -bootstrap-from
}

// exportArtifact takes an artifact of the fold through the running
// follower (flushed first, between batches) into dir.
func (m *mirror) exportArtifact(ctx context.Context, dir string) (*artifact.Manifest, error) {
	f := m.current.Load()
	if f == nil {
		return nil, errNoFollower
	}
	return artifact.Export(ctx, f, dir)
}

// fatalRunError reports whether a Follower error must stop the mirror rather
// than restart it: misconfiguration and a fold that cannot be used.
func fatalRunError(err error) bool {
	for _, target := range []error{
		slipstream.ErrInvalidConfig, slipstream.ErrInvalidScope, slipstream.ErrCorrupt,
		slipstream.ErrInvalidFormat, slipstream.ErrClosed, slipstream.ErrLocked,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// run follows until ctx is done. Each Follower resumes from the fold's own
// cursor (never a remembered one); a failed watch (a server restart, a
// floor-guard trip, a lost subscription) restarts it after a backoff.
func (m *mirror) run(ctx context.Context) error {
	var wg sync.WaitGroup
	pollCtx, stopPoll := context.WithCancel(ctx)
	wg.Go(func() { m.pollHead(pollCtx) })
	wg.Go(func() { m.fleet.runExporter(pollCtx) })
	wg.Go(func() { m.fleet.watchPointer(pollCtx) })
	if m.audits {
		wg.Go(func() { m.auditLoop(pollCtx) })
	}
	defer func() {
		stopPoll()
		wg.Wait()
		m.t.stopped()
	}()

	backoff := restartBackoffMin
	for {
		if err := m.fleet.beforeRun(ctx); err != nil {
			return err
		}
		resume := m.fold.Cursor()
		m.t.runStarting(resume)
		f := slipstream.NewFollower(m.fleet.watcher(observedWatcher{bucket: m.bucket, t: m.t, resume: resume}), noApply)
		f.Scope = m.scope
		f.Resume = resume
		f.Store = m.fold
		f.Lister = m.bucket
		f.MaxBatchSize = m.batchMax
		f.MaxBatchDelay = m.batchWindow
		// Room for several batches between the watch and the loop, so
		// the watch keeps receiving while a batch is folded (otherwise the
		// consumer's flow control stalls the server on every flush).
		f.BufferSize = max(slipstream.DefaultBufferSize, 4*m.batchMax)
		f.Logger = m.log
		// Readers see the fold, so the applied cursor reported (and
		// readiness) is the fold's: after a failed store write it lags
		// the loop's until a later flush commits the re-queued batch.
		f.OnFlush = func(fi slipstream.FlushInfo) {
			m.t.onFlush(fi)
			m.t.onApplied(m.fold.Cursor())
		}
		f.OnResync = m.t.onResync

		started := time.Now()
		m.current.Store(f)
		m.fleet.setLoop(f)
		_, err := f.Run(ctx)
		m.fleet.setLoop(nil)
		m.current.Store(nil)
		m.t.runEnded()
		if ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("final flush: %w", err)
			}
			return nil
		}
		if err == nil {
			err = errors.New("watch ended")
		}
		if m.fleet.runEnded(err) {
			continue
		}
		if fatalRunError(err) {
			return err
		}
		if time.Since(started) > restartBackoffReset {
			backoff = restartBackoffMin
		}
		m.t.runFailed(err)
		m.log.Warn("follower stopped; restarting from the fold's cursor", "err", err,
			slipstream.LogKeyCursor, m.fold.Cursor().String(), "retry_in", backoff)
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		backoff = min(backoff*2, restartBackoffMax)
	}
}

func noApply(context.Context, []slipstream.Update) error { return nil }

// pollHead keeps the tracker's server head fresh for lag and metrics.
func (m *mirror) pollHead(ctx context.Context) {
	tick := time.NewTicker(headPollEvery)
	defer tick.Stop()
	for {
		m.refreshHead(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (m *mirror) refreshHead(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if st, err := m.bucket.Status(ctx); err == nil {
		m.t.setHead(st.LastSeq)
	}
}

// status builds GET /v1/status, refreshing the server head first.
func (m *mirror) status(ctx context.Context, bucket string) (statusDoc, error) {
	m.refreshHead(ctx)
	keys, err := m.fold.Keys()
	if err != nil {
		return statusDoc{}, fmt.Errorf("count keys: %w", err)
	}
	state, pending, lastErr := m.t.snapshot()
	connected, downSince := m.t.conn.state()
	var disconnectedSince *time.Time
	if !connected {
		disconnectedSince = &downSince
	}
	cursor, head, caughtTo := m.fold.Cursor().Rank(), m.t.head.Load(), m.t.caughtTo.Load()
	return statusDoc{
		Bucket:            bucket,
		Fold:              m.fold.Dir,
		Backend:           m.fold.backendName(),
		Scope:             m.scope.List(),
		State:             state,
		Ready:             m.t.isReady(),
		Cursor:            cursor,
		Keys:              keys,
		ServerHead:        head,
		CaughtUpTo:        max(cursor, caughtTo),
		Lag:               lagOf(head, cursor, caughtTo),
		Pending:           pending,
		Resyncs:           m.t.resyncs.Load(),
		Restarts:          m.t.restarts.Load(),
		Connected:         connected,
		DisconnectedSince: disconnectedSince,
		Disconnects:       m.t.conn.disconnects.Load(),
		LastError:         lastErr,
		Verifying:         m.t.bind.reason(),
		auditStatus:       m.t.audit.status(),
		Fleet:             m.fleet.status(),
	}, nil
}
