package slipstream

// Store is a durable fold: the node's local replica of a bucket, and the
// cursor up to which it is complete.
//
// # Invariants
//
//   - The fold is a pure function of the log: wiping it and re-applying every
//     update from the beginning yields the same live state.
//   - Cursor-after-apply: a persisted cursor C means every update with
//     revision ≤ C is in the fold. Apply commits the batch's data and the
//     cursor together; a torn write may leave data ahead of the cursor
//     (re-applied harmlessly on resume), never a cursor ahead of its data.
//   - The store is a cache: a mode that does not fsync may lose a tail on
//     power loss, but what survives carries its own matching cursor.
//
// # Concurrency
//
// Apply and ExportTo are called from one goroutine (the [Follower]'s loop)
// and never concurrently with each other. Whether Get and ForEachInRange may
// run concurrently with Apply is documented by each implementation.
//
// Storage calls are blocking local I/O and take no context.
type Store interface {
	// Apply folds batch, in order, and persists cursor with it. Puts insert
	// or overwrite (empty values included); deletes and purges remove the
	// key. An empty batch still persists the cursor. The store does not
	// check that cursors increase. The store must not retain batch.
	Apply(batch []Update, cursor Cursor) error
	// Get returns the live entry for key; false when absent. The entry's
	// Value belongs to the caller.
	Get(key string) (Entry, bool, error)
	// ForEachInRange calls fn for every live entry whose key starts with
	// prefix, in ascending byte order of key, without buffering the whole
	// range. An error from fn stops the scan and is returned. The entry's
	// Value is only valid during the call (the store may reuse its memory
	// for the next entry), and it is never the fold's own memory: fn may
	// write into it, or append to it, without changing the fold.
	ForEachInRange(prefix string, fn func(Entry) error) error
	// Cursor returns the cursor of the last successful Apply, or the one
	// loaded at open (none for a fresh fold).
	Cursor() Cursor
	// ExportTo writes a consistent, self-contained copy of the fold into
	// dir, which must be absent or an empty directory (else an error
	// wrapping [ErrArtifactInvalid]). It is the hook the artifact layer
	// builds on; a running [Follower] calls it between flushes through
	// [Follower.Export].
	ExportTo(dir string) (Export, error)
	// Close releases the store. Further calls return [ErrClosed].
	Close() error
}

// Export describes what [Store.ExportTo] wrote.
type Export struct {
	// Backend names the store implementation ("append-log", "pebble").
	Backend string
	// BackendVersion is the format generation of the written files.
	BackendVersion string
	// Cursor is the fold's cursor at the moment of export.
	Cursor Cursor
	// Files are the written files, relative to the export directory, with
	// forward slashes, sorted.
	Files []string
}
