// Package artifact implements fold artifacts: a directory holding a fold's
// payload files under data/ and a MANIFEST.json naming the backend, the
// cursor the payload is complete up to, and the size and BLAKE3 digest of
// every file. docs/ARTIFACTS.md describes the layout and the manifest.
//
// The manifest is the trust boundary for remote data: [ParseManifest] is
// strict, and every failure wraps [slipstream.ErrArtifactInvalid].
package artifact
