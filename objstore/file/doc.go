// Package file implements an objstore.Store on a local directory, for a
// single host or a shared filesystem: each object is a file under the
// directory, at its name's path.
//
// Create is atomic (a temporary file is hard-linked into place, and the link
// fails if the name exists), but the store cannot replace conditionally:
// Replace returns objstore.ErrNotImplemented. A transport on it therefore
// publishes a key's first pointer safely and fails closed on every later one
// unless built with objstore.Transport.NonAtomicPointerFallback.
//
// Object names are '/'-separated relative paths with no empty, "." or ".."
// segment and no backslash. An object cannot share its name with a
// directory of other objects ("a" and "a/b").
package file
