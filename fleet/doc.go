// Package fleet runs the fleet's day on top of the fold, the artifact layer,
// the transport and the export lease: export rounds that publish the fold of
// a live loop (at most one node per round), and the bootstrap of a new node
// from the latest published artifact.
//
// # Export round
//
// [ExportRound.Run] follows docs/FLEET.md, step by step:
//
//  1. take the lease for TTL (not won: return, nothing else runs);
//  2. make a round directory under ScratchDir;
//  3. export the fold through the live loop (between two flushes, so the
//     manifest's cursor is the applied cursor);
//  4. upload the artifact (Published, or Superseded when the pointer
//     already names a strictly newer one);
//  5. record the exported cursor in the lease, for both outcomes;
//  6. only after Published, prune payloads strictly below the pointer
//     that are older than 4×TTL;
//  7. remove the round directory, on every path.
//
// Any failure before the upload returned abandons the lease (an empty-value
// tombstone), so the next attempt anywhere in the fleet wins at once.
// The lease only deduplicates work: the transport's monotone pointer alone
// keeps a slow or overrun exporter from publishing over a newer artifact.
//
// [Exporter] runs rounds periodically, jittered, on one node; every node of
// a fleet runs one with the same lease key, so that about one artifact is
// published per period.
//
// # Bootstrap
//
// [Import.Run] (and [ImportRemote]) follows docs/FLEET.md: download the
// artifact the key's pointer names into a scratch directory, verify it and
// install it as a fold at the destination (verified in place and moved, or
// imported by copy across filesystems), and remove the scratch directory, on
// success and failure alike. The new fold's cursor is the artifact's,
// from which a follower resumes and receives exactly the updates after it.
//
// The package imports no fold backend: callers pass the
// [artifact.Backend] values they accept. docs/FLEET.md describes the round,
// the bootstrap and how the command wires them.
package fleet
