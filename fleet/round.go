package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/lease"
	"github.com/slipstream-kv/slipstream/objstore"
)

const (
	// RoundPrefix begins the name of a round's scratch directory under
	// [ExportRound.ScratchDir]. The directory is removed when the round
	// returns, whatever happened.
	RoundPrefix = ".slipstream-export-round-"
	// PruneGraceTTLs is the prune grace of a round in lease ttls: one ttl
	// for a concurrent publisher's upload-to-swap window, three more for
	// slow bootstrap readers holding an older pointer.
	PruneGraceTTLs = 4
	// completeTimeout bounds recording the round in the lease once the
	// artifact is uploaded, even when the round's context has ended.
	completeTimeout = 30 * time.Second
)

// Outcome is how an export round ended without error.
type Outcome uint8

const (
	// NotAcquired means another node holds the lease (or won it first):
	// nothing was exported.
	NotAcquired Outcome = iota
	// Published means the pointer now names this round's artifact.
	Published
	// Superseded means the pointer already named a strictly newer
	// artifact; this round's payload was uploaded and is garbage for a
	// later prune.
	Superseded
)

// String returns "not_acquired", "published" or "superseded" (the labels of
// the command's metrics).
func (o Outcome) String() string {
	switch o {
	case NotAcquired:
		return "not_acquired"
	case Published:
		return "published"
	case Superseded:
		return "superseded"
	default:
		return "Outcome(" + strconv.Itoa(int(o)) + ")"
	}
}

// Result reports an export round that returned no error.
type Result struct {
	// Outcome says whether the round ran and whether its artifact was
	// published.
	Outcome Outcome
	// Manifest is the exported artifact's manifest (nil when NotAcquired).
	Manifest *artifact.Manifest
	// Remote is the cursor of the newer pointer when Superseded.
	Remote slipstream.Cursor
	// Payload is the uploaded payload object's name.
	Payload string
	// Pruned is the number of payloads the prune after a publish deleted.
	Pruned int
}

// ExportRound is one export round of a node (docs/FLEET.md): configure it
// through its fields and call [ExportRound.Run]. A round may be run again;
// concurrent Runs are independent rounds (the lease picks at most one).
type ExportRound struct {
	// Lease is this node's handle on the fleet's export lease. Required.
	Lease *lease.Lease
	// TTL is the lease's time to live: the round's period (whole seconds,
	// at least lease.MinTTL). Payloads are pruned after PruneGraceTTLs×TTL.
	TTL time.Duration
	// Follower is the live loop whose fold is exported, between two
	// flushes. A nil or stopped Follower fails the round with ErrLoopGone
	// (after the lease was won, so it is abandoned).
	Follower *slipstream.Follower
	// Transport publishes the artifact. Required.
	Transport *objstore.Transport
	// Key is the artifact's logical key in the transport. Required.
	Key string
	// ScratchDir holds the round's directory (prefix RoundPrefix): the
	// artifact and the upload's tar. Required; created if missing. Put it
	// on the fold's filesystem: a pebble export hard-links its tables.
	ScratchDir string
	// Logger receives the superseded warning and the failures the round
	// does not return (lease completion, prune, scratch removal); nil means
	// slog.Default().
	Logger *slog.Logger
}

func (r *ExportRound) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *ExportRound) validate() error {
	switch {
	case r.Lease == nil:
		return fmt.Errorf("%w: export round: no Lease", slipstream.ErrInvalidConfig)
	case r.Transport == nil:
		return fmt.Errorf("%w: export round: no Transport", slipstream.ErrInvalidConfig)
	case r.Key == "":
		return fmt.Errorf("%w: export round: no Key", slipstream.ErrInvalidConfig)
	case r.ScratchDir == "":
		return fmt.Errorf("%w: export round: no ScratchDir", slipstream.ErrInvalidConfig)
	}
	return nil
}

// Run runs the round: take the lease for TTL; if won, export the fold
// through the live loop into a round directory under ScratchDir, upload
// it, record the exported cursor in the lease (for both Published and
// Superseded), and after Published prune the key's payloads strictly below
// the pointer that are older than PruneGraceTTLs×TTL. The round directory
// is removed on every path.
//
// A lost lease returns a Result with Outcome NotAcquired and no error,
// at once. Any failure after the lease was won abandons it (so the next
// attempt anywhere wins immediately) and is returned: the lease's own
// errors wrapped with slipstream.ErrOperationFailed, an unusable scratch
// directory, ErrLoopGone (with slipstream.ErrOperationFailed) when the
// loop is not running or stopped before answering, the export's and the
// upload's errors as they are, and ctx.Err() when ctx ends first. A
// failure to record the lease or to prune is logged, not returned: the
// artifact is already uploaded.
func (r *ExportRound) Run(ctx context.Context) (res Result, err error) {
	if err := r.validate(); err != nil {
		return Result{}, err
	}
	log := r.logger()
	guard, err := r.Lease.TryAcquire(ctx, r.TTL)
	if err != nil {
		if errors.Is(err, slipstream.ErrInvalidConfig) {
			return Result{}, fmt.Errorf("export lease: %w", err)
		}
		return Result{}, fmt.Errorf("%w: export lease: %w", slipstream.ErrOperationFailed, err)
	}
	if guard == nil {
		return Result{Outcome: NotAcquired}, nil
	}
	uploaded := false
	defer func() {
		if !uploaded {
			guard.Abandon(ctx)
		}
	}()

	if err := os.MkdirAll(r.ScratchDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("export round: create scratch directory: %w", err)
	}
	roundDir, err := os.MkdirTemp(r.ScratchDir, RoundPrefix+"*")
	if err != nil {
		return Result{}, fmt.Errorf("export round: create round directory: %w", err)
	}
	// removeRound runs last; an export still writing (the caller gave up)
	// moves it to the goroutine that waits for the loop's answer.
	removeRound := func() {
		if rerr := os.RemoveAll(roundDir); rerr != nil {
			log.Error("export round: scratch directory not removed", "dir", roundDir, "err", rerr)
		}
	}
	deferRemoval := false
	defer func() {
		if !deferRemoval {
			removeRound()
		}
	}()

	dest := filepath.Join(roundDir, "artifact")
	m, exportDone, err := r.export(ctx, dest)
	if err != nil {
		if exportDone != nil {
			deferRemoval = true
			go func() {
				<-exportDone
				removeRound()
			}()
		}
		return Result{}, err
	}

	up, err := r.Transport.Upload(ctx, r.Key, dest)
	if err != nil {
		return Result{}, fmt.Errorf("export round: upload %s: %w", r.Key, err)
	}
	uploaded = true
	res = Result{Outcome: Superseded, Manifest: up.Manifest, Remote: up.Remote, Payload: up.Payload}
	if up.Outcome == objstore.Published {
		res.Outcome = Published
	} else {
		log.Warn("export round superseded: the pointer already names a newer artifact",
			"key", r.Key, slipstream.LogKeyCursor, m.Cursor.String(), "remote_cursor", up.Remote.String())
	}

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), completeTimeout)
	cerr := guard.Complete(cctx, m.Cursor)
	cancel()
	if cerr != nil {
		log.Error("export round: lease not completed (the artifact is uploaded)", "key", r.Key, "err", cerr)
	}

	if res.Outcome == Published {
		n, perr := r.Transport.Prune(ctx, r.Key, pruneGrace(r.TTL))
		res.Pruned = n
		if perr != nil {
			log.Error("export round: prune failed (the artifact is published)", "key", r.Key, "pruned", n, "err", perr)
		}
	}
	return res, nil
}

// export runs artifact.Export through the live loop with ctx on the request
// and the reply. When ctx ends first it returns ctx.Err() and a channel
// closed once the loop has answered (until then it may write into dest).
func (r *ExportRound) export(ctx context.Context, dest string) (*artifact.Manifest, <-chan struct{}, error) {
	if r.Follower == nil {
		return nil, nil, loopGone(slipstream.ErrNotRunning)
	}
	type result struct {
		m   *artifact.Manifest
		err error
	}
	done := make(chan result, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		// Not cancelled with ctx: the loop may be writing into dest until
		// it answers, and only then may the round directory go.
		m, err := artifact.Export(context.WithoutCancel(ctx), r.Follower, dest)
		done <- result{m, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			if errors.Is(res.err, slipstream.ErrNotRunning) {
				return nil, nil, loopGone(res.err)
			}
			return nil, nil, fmt.Errorf("export round: export: %w", res.err)
		}
		return res.m, nil, nil
	case <-ctx.Done():
		return nil, finished, fmt.Errorf("export round: export: %w", ctx.Err())
	}
}

func loopGone(err error) error {
	return fmt.Errorf("%w: %w: %w", slipstream.ErrOperationFailed, ErrLoopGone, err)
}

// pruneGrace is PruneGraceTTLs×ttl, saturating.
func pruneGrace(ttl time.Duration) time.Duration {
	if ttl > math.MaxInt64/PruneGraceTTLs {
		return math.MaxInt64
	}
	return PruneGraceTTLs * ttl
}
