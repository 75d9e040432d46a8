package slipstream

import (
	"errors"
	"fmt"
)

// Errors of the KV seam. Backends translate their own errors onto these at
// their edge, so callers match with errors.Is and never import a backend's
// dependency to classify an error.
var (
	// ErrNotFound is returned when a key that must exist does not.
	ErrNotFound = errors.New("slipstream: key not found")
	// ErrAlreadyExists is returned by Create when the key's last record is a
	// put (including an empty-value CAS tombstone).
	ErrAlreadyExists = errors.New("slipstream: key already exists")
	// ErrRevisionMismatch is returned by a compare-and-swap write whose
	// expected revision is not the key's latest, including when the key
	// never existed.
	ErrRevisionMismatch = errors.New("slipstream: revision mismatch")
	// ErrCursorExpired is returned by a resuming watch when the history after
	// the cursor is no longer complete (compacted, purged, or the bucket was
	// recreated). The caller must resync from a full watch.
	ErrCursorExpired = errors.New("slipstream: watch cursor expired")
	// ErrCursorAhead is the [ErrCursorExpired] of a resume whose cursor is
	// past the bucket's last revision: the bucket was recreated or restored
	// from an older copy.
	ErrCursorAhead = fmt.Errorf("%w: cursor ahead of the bucket's last revision", ErrCursorExpired)
	// ErrWatch wraps every watch failure: setup errors, a closed
	// subscription, a floor-guard trip, and the fatal conditions of
	// [Follower.Run].
	ErrWatch = errors.New("slipstream: watch error")
	// ErrCursorOverflow is the [ErrWatch] of a resume after revision
	// MaxUint64, whose successor would wrap to 0 (which a NATS client reads
	// as "no resume": a full replay).
	ErrCursorOverflow = fmt.Errorf("%w: resume cursor is MaxUint64", ErrWatch)
	// ErrOverrun is the [ErrWatch] of a live watch whose bucket evicted
	// revisions it had not delivered yet (the live floor guard tripped).
	// A restart resumes, finds the cursor expired and resyncs.
	ErrOverrun = fmt.Errorf("%w: retention overran live watch", ErrWatch)
	// ErrWatchClosed is the [ErrWatch] of a subscription that ended
	// without its context being cancelled.
	ErrWatchClosed = fmt.Errorf("%w: subscription closed", ErrWatch)
	// ErrTimeout is returned when an operation exceeds the library's own
	// bound. A cancelled caller context yields ctx.Err() instead.
	ErrTimeout = errors.New("slipstream: operation timed out")
	// ErrOperationFailed wraps any other backend failure on reads and writes.
	ErrOperationFailed = errors.New("slipstream: operation failed")
	// ErrInvalidKey is returned for a key the backend refuses.
	ErrInvalidKey = errors.New("slipstream: invalid key")
	// ErrInvalidScope is returned for a scope whose prefixes are not
	// token-aligned.
	ErrInvalidScope = errors.New("slipstream: invalid scope")
	// ErrUnsupported is returned for a capability the backend or server lacks.
	ErrUnsupported = errors.New("slipstream: not supported")
)

// Errors of the loop. The fatal conditions of [Follower.Run] are each an
// [ErrWatch], so a caller that restarts on ErrWatch restarts on all of them.
var (
	// ErrInvalidConfig is returned by [Follower.Run] before anything starts
	// when the Follower is misconfigured.
	ErrInvalidConfig = errors.New("slipstream: invalid configuration")
	// ErrResumeAhead is the [ErrInvalidConfig] of a Follower whose Resume
	// is ahead of its Store's cursor: resuming there would skip the updates
	// in between.
	ErrResumeAhead = fmt.Errorf("%w: Resume is ahead of the store's cursor", ErrInvalidConfig)
	// ErrRunning is the [ErrInvalidConfig] of a second concurrent
	// [Follower.Run].
	ErrRunning = fmt.Errorf("%w: follower already running", ErrInvalidConfig)
	// ErrNotRunning is returned by [Follower.Export] when Run is not active.
	ErrNotRunning = errors.New("slipstream: follower not running")
	// ErrStoreFailed stops [Follower.Run] after [MaxStoreFailures]
	// consecutive failed Store.Apply calls. It wraps the last failure.
	ErrStoreFailed = fmt.Errorf("%w: store apply failed repeatedly", ErrWatch)
	// ErrResync stops [Follower.Run] when a cursor-expired resync cannot
	// list the live keys or scan the fold. It wraps the listing's error.
	ErrResync = fmt.Errorf("%w: cursor-expired resync failed", ErrWatch)
	// ErrWatcherContract stops [Follower.Run] when its [Watcher] breaks the
	// Watcher contract (an ErrCursorExpired after updates were sent).
	ErrWatcherContract = fmt.Errorf("%w: watcher broke its contract", ErrWatch)
)

// PanicError is the [ErrWatch] that stops [Follower.Run] when the Watcher,
// Store.Apply or Store.ExportTo panicked: the store (or the watch) is then
// in an unknown state. A panic in Apply, Filter or OnApplied is not caught.
type PanicError struct {
	// Op names what panicked: "watch", "store apply" or "store export".
	Op string
	// Value is what was passed to panic.
	Value any
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("slipstream: %s panicked: %v", e.Op, e.Value)
}

// Unwrap returns [ErrWatch].
func (e *PanicError) Unwrap() error { return ErrWatch }

// Errors of folds ([Store] implementations).
var (
	// ErrInvalidFormat is returned for a fold file that is structurally
	// unusable: bad magic, unsupported version, unknown record type,
	// oversized lengths, non-UTF-8 keys, an oversized stored cursor. The
	// file is left as it was; delete the fold and replay.
	ErrInvalidFormat = errors.New("slipstream: invalid fold format")
	// ErrCorrupt is returned for a checksum mismatch in the middle of a fold
	// log. A torn tail is not corruption: it is truncated and re-folded.
	ErrCorrupt = errors.New("slipstream: fold corrupted (CRC mismatch)")
	// ErrLocked is returned when a fold is already open by another process.
	ErrLocked = errors.New("slipstream: fold is locked by another process")
	// ErrClosed is returned by a Store used after Close.
	ErrClosed = errors.New("slipstream: store closed")
	// ErrArtifactInvalid is returned when an export destination or an
	// artifact fails validation.
	ErrArtifactInvalid = errors.New("slipstream: invalid artifact")
)
