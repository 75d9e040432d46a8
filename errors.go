package slipstream

import "errors"

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
	ErrCursorExpired = errors.New("slipstream: watch cursor expired (compacted)")
	// ErrWatch wraps every watch failure: setup errors, a closed
	// subscription, a floor-guard trip, and the fatal conditions of
	// [Follower.Run].
	ErrWatch = errors.New("slipstream: watch error")
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

// Errors of the loop.
var (
	// ErrInvalidConfig is returned by [Follower.Run] before anything starts
	// when the Follower is misconfigured.
	ErrInvalidConfig = errors.New("slipstream: invalid configuration")
	// ErrNotRunning is returned by [Follower.Export] when Run is not active.
	ErrNotRunning = errors.New("slipstream: follower not running")
)

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
