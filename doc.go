// Package slipstream keeps a local, durable, queryable replica (a fold) of a
// key-value bucket in step with the bucket through a resumable watch.
//
// # The invariant
//
// A persisted or reported cursor C means every update with revision ≤ C has
// been applied: the consumer's Apply returned for it. Receipt is never
// enough. A [Follower] advances its cursor only after Apply returns, then
// folds the batch into its [Store] at that cursor, then reports it.
//
// # Pieces
//
//   - [Update], [Entry], [Version] and [Cursor] are the value types.
//   - [Watcher] and [KeyLister] are the bucket seam the loop consumes;
//     package natskv implements them on NATS JetStream and package memkv in
//     memory.
//   - [Store] is the fold contract; packages applog (the default
//     append-only log) and pebblestore (an LSM tree on disk) implement it.
//   - [Follower] is the loop: watch → batch → Apply → advance the cursor →
//     fold → report, with cursor-expired resync, exports and repairs
//     ([Follower.Repair], reading a [RecordReader]) between flushes.
//   - Package audit compares a fold with its bucket key by key and finds
//     what no cursor check can see (delete markers removed from the middle
//     of the stream, a recreated bucket, a server that lost writes); the
//     repair goes through the running Follower.
//
// The root package never imports a backend; cmd/slipstream wires them.
package slipstream
