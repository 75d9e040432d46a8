// Package memkv implements an in-memory key-value bucket with the semantics
// of a NATS JetStream KV bucket, for tests, examples and synctest bubbles.
//
// A [KV] keeps a log of records (puts, delete markers, purge markers) with
// revisions 1, 2, 3, … It implements [slipstream.Watcher] (state-sync watch,
// resume after a cursor, cursor expiry) and [slipstream.KeyLister], and the
// reads and writes of a bucket, including compare-and-swap.
//
// History can be made to disappear the ways a real server loses it:
// [KV.Compact] evicts the head of the log (as MaxAge or limits do) and
// [KV.Purge] removes a key's earlier records. A resume whose cursor is below
// the retained head fails with [slipstream.ErrCursorExpired], one ahead of
// the last revision with [slipstream.ErrCursorAhead]; a live watch that
// falls behind an eviction fails with [slipstream.ErrOverrun].
//
// # Concurrency
//
// All methods are safe for concurrent use. Blocking waits are on channels, so
// watches are durably blocked inside a testing/synctest bubble.
package memkv
