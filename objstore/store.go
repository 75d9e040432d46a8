package objstore

import (
	"context"
	"io"
	"time"
)

// Store is the object store the [Transport] writes artifacts to: a flat
// namespace of named byte objects with conditional writes. Names are
// '/'-separated paths; a store maps them onto its own keys.
//
// Every method may be called concurrently. Errors are translated onto the
// sentinels of this package where one applies; any other error is returned
// as the store saw it (wrapped), and the transport treats it as a backend
// failure.
type Store interface {
	// Get opens the object for reading and returns its attributes, the ETag
	// included. The caller must Close the reader; reading it may fail late
	// (a dropped connection). It returns ErrNotExist when there is no such
	// object.
	Get(ctx context.Context, name string) (io.ReadCloser, Attrs, error)
	// Put writes size bytes read from r as the object, unconditionally,
	// replacing any object of that name. Stores stream large objects (S3
	// uploads parts concurrently, reading them with ReadAt), so r must not
	// change until Put returns. Put is for payloads: content-addressed
	// objects whose overwrites write identical bytes.
	Put(ctx context.Context, name string, r io.ReaderAt, size int64) error
	// Create writes data as the object only if no object of that name
	// exists, atomically: of concurrent Creates exactly one succeeds and the
	// others return ErrPreconditionFailed.
	Create(ctx context.Context, name string, data []byte) error
	// Replace writes data as the object only if the object's current ETag
	// is etag (as returned by Get, passed back verbatim), atomically: of
	// concurrent Replaces with the same etag at most one succeeds. It
	// returns ErrPreconditionFailed when the ETag differs, ErrNotExist (or
	// ErrPreconditionFailed, on stores that cannot tell) when there is no
	// object, and ErrNotImplemented when the store cannot replace
	// conditionally.
	Replace(ctx context.Context, name string, data []byte, etag string) error
	// List returns the attributes of every object whose name starts with
	// prefix (a plain string prefix: "a/b" also matches "a/bc"), sorted by
	// name.
	List(ctx context.Context, prefix string) ([]Attrs, error)
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error
}

// Attrs describes a stored object.
type Attrs struct {
	// Name is the object's name.
	Name string
	// Size is the object's length in bytes.
	Size int64
	// ETag identifies the object's current version for Replace; it is
	// opaque and must be passed back verbatim. Stores without conditional
	// replace may leave it empty.
	ETag string
	// LastModified is when the object was last written, by the store's
	// clock.
	LastModified time.Time
}
