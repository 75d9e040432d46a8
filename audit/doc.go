// Package audit compares a fold with its bucket's current state, key by key,
// and reports every divergence that no cursor check can see.
//
// A fold's cursor proves that every update the watch delivered up to it was
// applied. It cannot prove that the server still holds, or ever delivered,
// what the fold holds: delete markers removed from the middle of the stream
// (PurgeDeletes, per-key TTL markers that expired), a bucket deleted and
// recreated, or a server restored from an older copy that reused revisions.
// [Auditor.Run] closes that gap in one pass.
//
// # Algorithm
//
// The fold's cursor C is read first, then the fold's keys and versions under
// the scope are loaded into a compact index (one arena of key bytes, a
// revision per key and an open-addressing table: memory bounded by the
// fold's own keys, never a second copy of the bucket), then the bucket lists
// the latest record of every key under the scope, headers only. Each listed
// record is compared with the index:
//
//   - stale: the fold holds the key, and the server holds no record for it,
//     or a delete or purge marker at a revision ≤ C;
//   - missed: the server holds a value at a revision ≤ C that the fold lacks
//     or holds at an older revision;
//   - backwards: the server's revision for a key is below the fold's (the
//     server lost a write the fold applied), or the fold's cursor is past the
//     server's last sequence (reported once, with an empty key).
//
// A server record above C is in flight (the watch will deliver it) and is
// ignored. Because the fold is read before the bucket, a key that changes
// during the audit shows up above C on the server side, never as a
// divergence.
//
// The comparison is by revision only, headers only: a record the server
// rewrote at the same revision with a different value (revisions reused by
// a restored server for the same key, or a recreated bucket that happens to
// give a key the same revision) is not seen.
//
// # Repair
//
// [Report.Keys] lists the divergent keys. A running follower repairs them
// with slipstream.Follower.Repair (live updates win over the repair); a fold
// no follower holds is repaired in place with [RepairStore].
package audit
