// Package artifact implements fold artifacts: a directory holding a fold's
// payload files under data/ and a MANIFEST.json naming the backend, the
// cursor the payload is complete up to, and the size and BLAKE3 digest of
// every file. docs/ARTIFACTS.md describes the layout, the manifest, the
// staging and the checks.
//
// [Export] takes an artifact through a running [slipstream.Follower]
// (flushed first, so the manifest cursor is the applied cursor) and
// [ExportStore] from a fold no follower runs on. [Import] verifies an
// artifact while copying it and installs it as a new fold; [Verify] checks
// one in place. [WriteTar] and [ReadTar] carry an artifact over a stream
// (ReadTar treats the archive as untrusted). Every destination must be
// absent or an empty directory; everything is assembled in a hidden
// directory beside it and appears by one rename, so a failure leaves the
// destination as it was and a crash leaves nothing or a complete artifact
// or fold. Hashing and copying stream through 1 MiB buffers: memory does not
// grow with the fold.
//
// The package imports no backend: [Import], [Verify] and [ReadTar] take the
// [Backend]s the caller accepts (applog.ArtifactBackend,
// pebblestore.ArtifactBackend), and the manifest's backend field picks one.
//
// The manifest is the trust boundary for remote data: [ParseManifest] is
// strict. Every refusal, of a manifest, a payload or a destination, wraps
// [slipstream.ErrArtifactInvalid].
package artifact
