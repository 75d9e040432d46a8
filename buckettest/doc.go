// Package buckettest implements the conformance suite of the bucket seam:
// the [slipstream.Watcher] and [slipstream.KeyLister] semantics a
// [slipstream.Follower] relies on, run on every bucket implementation with
// one call, as package storetest is for folds.
//
//	func TestBucketConformance(t *testing.T) {
//		buckettest.Run(t, buckettest.Harness{
//			New:   func(t *testing.T) buckettest.Bucket { return memkv.New() },
//			Evict: func(t *testing.T, b buckettest.Bucket, upTo uint64) { b.(*memkv.KV).Compact(upTo) },
//		})
//	}
//
// The checks: a state sync re-lists the latest record of every key in
// scope (delete and purge markers and empty values included) in revision
// order, then streams live changes; a resume delivers strictly after its
// cursor, markers included (a purge removes the key's earlier records);
// revision 0 and the none cursor state-sync; an
// evicted cursor fails with [slipstream.ErrCursorExpired] having sent
// nothing (the Watcher contract), one past the last revision with
// [slipstream.ErrCursorAhead], MaxUint64 with [slipstream.ErrCursorOverflow];
// prefix and several-prefix scopes deliver their keys only, an empty
// several-prefix scope returns at once, an unaligned prefix fails with
// [slipstream.ErrInvalidScope]; Keys lists live keys only (no markers, no
// empty values) under a prefix; cancelling the context ends a watch with
// nil and never closes its channel. A live watch overrun by retention is
// each backend's own test: it needs control of delivery that the seam does
// not give.
package buckettest
