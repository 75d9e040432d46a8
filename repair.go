package slipstream

import "context"

// EntryReader reads one key's latest value from a bucket. A [Follower]
// uses it to repair keys an audit found divergent.
//
// Entry returns the key's latest put, an empty-value put (a CAS tombstone)
// included, with its version; false when the key's latest record is a
// delete or purge marker or the key has no record.
type EntryReader interface {
	Entry(ctx context.Context, key string) (Entry, bool, error)
}

// RepairInfo describes one repair.
type RepairInfo struct {
	Keys    int // keys asked for
	Folded  int // synthetic updates folded: puts of the value read, deletes of keys read absent
	Skipped int // keys left alone because a live update reached them during the repair
}
