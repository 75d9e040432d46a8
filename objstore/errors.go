package objstore

import "errors"

// Errors of the [Store] seam. Every store translates its own errors onto
// these at its edge, so the transport and its callers match with errors.Is and
// never import a store's SDK to classify an error.
var (
	// ErrNotExist is returned when the named object does not exist.
	ErrNotExist = errors.New("objstore: object does not exist")
	// ErrPreconditionFailed is returned by a conditional write that lost:
	// Create on a name that exists, Replace with an ETag that is no longer
	// the object's. Stores also report a conflicting concurrent conditional
	// write (S3's 409) with it: either way the caller re-reads.
	ErrPreconditionFailed = errors.New("objstore: precondition failed")
	// ErrNotImplemented is returned by Replace on a store that cannot
	// replace conditionally. The transport fails closed on it unless built
	// with [Transport.NonAtomicPointerFallback].
	ErrNotImplemented = errors.New("objstore: not implemented by this store")
	// ErrInvalidName is returned for an object name a store cannot hold.
	ErrInvalidName = errors.New("objstore: invalid object name")
	// ErrInvalidURL is returned for a store URL that does not parse or names
	// an unknown scheme.
	ErrInvalidURL = errors.New("objstore: invalid store URL")
	// ErrBucketNotFound is returned when the store's bucket (S3's
	// NoSuchBucket) does not exist: a configuration error, not a transient
	// one.
	ErrBucketNotFound = errors.New("objstore: bucket does not exist")
	// ErrAccessDenied is returned when the store refuses the credentials
	// or the operation (S3's 403: AccessDenied, InvalidAccessKeyId,
	// SignatureDoesNotMatch, …): a configuration error, not a transient one.
	ErrAccessDenied = errors.New("objstore: access denied")
	// ErrNotPublished is returned by [Transport.Manifest] and
	// [Transport.Download] when the key has no pointer: nothing was ever
	// published under it (or the pointer was deleted). The error also
	// matches ErrNotExist and, as the storage spec classifies a missing
	// remote object, slipstream.ErrArtifactInvalid; match ErrNotPublished
	// to tell "nothing published" from "published but invalid".
	ErrNotPublished = errors.New("objstore: no artifact published")
)
