// Package lease implements the export lease: at most one exporter per round
// across a fleet, held in one key of a NATS JetStream KV bucket (or any
// bucket with the same compare-and-swap semantics, see [KV]).
//
// The lease deduplicates work and nothing else. Correctness of the published
// artifacts (a pointer that never goes backwards, never torn from its
// payload, never dangling) comes from the transport protocol alone; a fleet
// whose lease misbehaves exports twice, never wrongly.
//
// # Record
//
// The key's value is compact JSON, fields in this order, optional fields
// omitted when absent (see [Record]):
//
//	{"holder_id":"node-a","acquired_at_unix":1718000000,"expires_at_unix":1718000060,
//	 "completed_cursor_hex":"000000000000002a","completed_at_unix":1718000012}
//
// Unknown fields are ignored and optional fields may be null. A value that
// is not a JSON object with the three required fields is unparseable
// ([ErrUnparseable]), and an unparseable lease is free: one corrupt write
// must not wedge the fleet. Times are whole Unix seconds of the local wall
// clock; a clock before the epoch counts as 0 (with a warning), which makes
// every lease written already expired: duplicate exports, never a wedge.
//
// # Protocol
//
// [Lease.TryAcquire] creates the key (create-only: the first writer wins).
// If the key exists it reads it with Entry, which, unlike Get, returns the
// empty-value tombstone an abandoned lease leaves, with its revision. A
// lease that has expired (expiry at or before now), is such a tombstone, or
// is unparseable is taken over by a compare-and-swap Update on the revision
// read; a lost race or a live lease returns a nil guard, at once. Taking
// over a lease whose round completed, or that was abandoned, is routine
// (every round after the first starts so) and is logged at Debug; taking
// over one whose holder never completed its round (it crashed, stalled or
// overran), or an unparseable one, is logged at Info.
//
// [Guard.Complete] records the exported cursor and the completion time by
// compare-and-swap, keeping the expiry (the round occupies its whole
// period); if the lease was taken over meanwhile it logs and succeeds.
// [Guard.Abandon] writes the empty-value tombstone by compare-and-swap
// (DeleteWithVersion) so the next attempt anywhere wins immediately; it
// logs its errors and never returns them. A guard that is only dropped
// leaves the lease held until it expires.
//
// The full description, with the reasons, is docs/LEASE.md.
package lease
