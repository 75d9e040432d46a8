package applog

import (
	"bytes"
	"slices"
	"strings"

	"github.com/slipstream-kv/slipstream"
)

// table is the in-RAM part of the fold, a keydir: a hash index from each
// live key to its version and the place of its value in the log, for point
// reads, and an ordered key index for range scans. Values stay in the log
// (see [logReader]). Mutations need the store's write lock; lookups need at
// least its read lock, or the single-writer lock (the hash index changes
// only under both).
type table struct {
	h   hashIndex
	idx index

	// Replayed PUTs not yet folded in (see put), and whether any folded
	// PUT overwrote a live key since the last flush.
	pend      []pendingPut
	overwrote bool
	touched   uint64 // keeps prefetch loads alive

	// A replay into an empty table starts in sorted mode: as long as its
	// PUTs come in strictly ascending key order (the body of a compacted
	// log), none can overwrite another, so put appends them to the entries
	// without looking them up, and endSorted places them all in slots sized
	// for their exact number. The first record out of order, or a delete,
	// ends the mode; so does the end of the replay. No estimate of the
	// log's key count is ever made, so nothing is sized for keys that are
	// not there. Nothing grows by copying either: the fingerprints are kept
	// in fixed-size chunks, like the entries, and the key index is built
	// from the entries, in one exactly sized slice, when first needed (see
	// unindexed; a slice grown by doubling would copy every element about
	// twice, into fresh pages, which cost more than the copy on some
	// machines).
	sorted    bool
	sortedFPs fpChunks // fingerprints of the entries appended in sorted mode
	sortedKey keyPack  // keys of the entries appended in sorted mode
	lastKey   []byte   // the last key appended in sorted mode
	// unindexed is the length of the sorted run that starts the entries
	// (entries [0, unindexed)) while its keys are not yet in the key
	// index: indexRun puts them there when first needed — a scan, a
	// compaction, a delete (which could free one of those entries), an
	// overdue refresh — so a fold that only overwrites or inserts a few
	// keys after a restart never builds the index.
	unindexed int

	// live is the size of the PUT records a compaction would write for the
	// live entries: what the log must hold at least. The rest is garbage.
	live int64
}

// putLen is the encoded size of a PUT record of a vlen-byte value.
func putLen[K string | []byte](key K, vlen int, v slipstream.Version) int64 {
	return int64(putHeaderLen + len(key) + vlen + 1 + v.Len())
}

// pendingPut is a replayed PUT whose key still aliases the log.
type pendingPut struct {
	key  []byte
	off  int64 // the value's offset in the log
	vlen uint32
	ver  slipstream.Version
	fp   uint32
}

// pendingPuts is how many replayed PUTs put holds before folding them in.
const pendingPuts = 32

// index orders the keys of a table without sorting on every scan. base and
// delta are sorted, duplicate-free and published: once built they are never
// written again, so a reader may iterate a captured pair without a lock.
// Both may name keys deleted since (a scan checks each key against the hash
// index) and the same key may sit in both (a scan emits it once).
type index struct {
	base    []string // keys as of the last full build
	delta   []string // keys inserted since base was built
	pending []string // keys inserted since delta was built, unsorted; writer-private
	dead    int      // deletes since base was built
}

func newTable() *table { return &table{h: newHashIndex()} }

// put takes a replayed PUT whose value starts at offset off of the log
// (the key aliases the log and is copied; the value is not kept). In sorted
// mode (see table.sorted) it appends the entry at once. Otherwise it hashes
// the key now but folds the PUT in later, a few dozen at a time, loading
// their home slots together first so the misses overlap (see
// hashIndex.prefetch). It returns false: flush, which the replay calls
// before the log's bytes move and at the end, reports overwrites.
func (t *table) put(key, value []byte, v slipstream.Version, off int) bool {
	if !t.sorted && t.h.used == 0 && len(t.pend) == 0 {
		t.sorted = true // an empty table: a sorted run may start
	}
	if t.sorted {
		if t.h.n == 0 || bytes.Compare(key, t.lastKey) > 0 {
			t.sortedKey.add(&t.h, key) // the entry's key is set when the pack is full
			t.h.appendEntry(entry{off: int64(off), vlen: uint32(len(value)), ver: v})
			t.sortedFPs.add(t.h.fingerprintBytes(key))
			t.live += putLen(key, len(value), v)
			t.lastKey = append(t.lastKey[:0], key...)
			return false
		}
		t.endSorted()
	}
	t.pend = append(t.pend, pendingPut{key: key, off: int64(off), vlen: uint32(len(value)), ver: v, fp: t.h.fingerprintBytes(key)})
	if len(t.pend) >= pendingPuts {
		t.foldPending()
	}
	return false
}

// endSorted leaves sorted mode: it sizes the slots for the entries the
// sorted run appended (the load factor insert keeps) and places them. The
// run started on an empty table, so its entries are entries [0, n); their
// keys go into the key index later (see unindexed).
func (t *table) endSorted() {
	if !t.sorted {
		return
	}
	t.sorted = false
	t.sortedKey.flush(&t.h)
	t.h.placeAll(&t.sortedFPs)
	t.unindexed = t.sortedFPs.n
	t.sortedFPs, t.sortedKey, t.lastKey = fpChunks{}, keyPack{}, nil
}

// keyPack gives the keys of a sorted run their memory a pack at a time:
// it copies each key into a buffer and, when the buffer is full or the run
// ends, makes the buffer one string, which the entries' keys are slices
// of. A load then allocates one string per keyPackBytes of keys instead of
// one per key, and touches fewer fresh pages (no per-object size-class
// rounding). A pack stays in memory while any of its keys does: at most
// the key bytes the load read.
type keyPack struct {
	buf   []byte
	ends  []int  // where each key in buf ends
	first uint32 // the entry index of the first key in buf
}

const keyPackBytes = 64 << 10

// add copies the key of entry h.used (about to be appended) into the pack.
func (p *keyPack) add(h *hashIndex, key []byte) {
	if len(p.buf)+len(key) > cap(p.buf) {
		p.flush(h)
		if cap(p.buf) < len(key) {
			p.buf = make([]byte, 0, max(keyPackBytes, len(key)))
		}
	}
	if len(p.ends) == 0 {
		p.first = h.used
	}
	p.buf = append(p.buf, key...)
	p.ends = append(p.ends, len(p.buf))
}

// flush sets the keys of the entries in the pack, slices of one new string.
func (p *keyPack) flush(h *hashIndex) {
	if len(p.ends) == 0 {
		return
	}
	s := string(p.buf)
	start := 0
	for j, end := range p.ends {
		h.at(p.first + uint32(j)).key = s[start:end]
		start = end
	}
	p.buf, p.ends = p.buf[:0], p.ends[:0]
}

// indexRun puts the keys of the unindexed sorted run into the key index:
// they are in ascending order and without duplicates, so into an empty
// index they go as its base, in one exactly sized slice; otherwise they
// are pending, like any insert. Until a delete, the run's entries hold
// their keys (an overwrite keeps the key; inserts append after them, or
// reuse an entry a delete freed), so removeFP calls indexRun first.
func (t *table) indexRun() {
	n := t.unindexed
	if n == 0 {
		return
	}
	t.unindexed = 0
	keys := make([]string, n)
	for i := range keys {
		keys[i] = t.h.at(uint32(i)).key
	}
	x := &t.idx
	if len(x.base) == 0 && len(x.delta) == 0 && x.dead == 0 {
		x.base = keys // pending keys, inserted after the run, are other keys
	} else {
		x.pending = append(x.pending, keys...)
	}
}

// fpChunks is a list of key fingerprints stored in fixed-size chunks, so
// that it grows without copying.
type fpChunks struct {
	chunks [][]uint32
	n      int
}

func (c *fpChunks) add(fp uint32) {
	if c.n&chunkMask == 0 {
		c.chunks = append(c.chunks, make([]uint32, 0, chunkLen))
	}
	last := &c.chunks[len(c.chunks)-1]
	*last = append(*last, fp)
	c.n++
}

// finish ends a replay: pending PUTs are folded in and sorted mode ends, so
// the table answers lookups.
func (t *table) finish() {
	t.foldPending()
	t.endSorted()
}

// flush folds the pending PUTs in and reports whether any PUT since the
// last flush overwrote a live key.
func (t *table) flush() bool {
	t.foldPending()
	o := t.overwrote
	t.overwrote = false
	return o
}

func (t *table) foldPending() {
	// Load every home slot first, in a tight loop, so the misses overlap.
	var sum uint64
	mask := len(t.h.slots) - 1
	for i := range t.pend {
		sum += t.h.slots[int(t.pend[i].fp)&mask]
	}
	t.touched += sum
	for i := range t.pend {
		p := &t.pend[i]
		if j, ok := find(&t.h, p.key, p.fp); ok {
			t.overwrite(t.h.atSlot(j), p.off, p.vlen, p.ver)
			t.overwrote = true
			continue
		}
		k := string(p.key)
		t.h.insert(entry{key: k, off: p.off, vlen: p.vlen, ver: p.ver}, p.fp)
		t.live += putLen(k, int(p.vlen), p.ver)
		t.idx.pending = append(t.idx.pending, k)
	}
	clear(t.pend) // drop the aliases of the log
	t.pend = t.pend[:0]
}

// overwrite points e at a new value (the log is append-only: the old
// value stays where it was, for readers that located it).
func (t *table) overwrite(e *entry, off int64, vlen uint32, v slipstream.Version) {
	t.live -= putLen(e.key, int(e.vlen), e.ver)
	e.off, e.vlen, e.ver = off, vlen, v
	t.live += putLen(e.key, int(e.vlen), e.ver)
}

// del folds a replayed DELETE, after the PUTs before it.
func (t *table) del(key []byte) {
	t.endSorted()
	t.foldPending()
	t.remove(string(key))
}

// apply folds one update whose value (for a put) the log holds at offset
// off. The key is copied on insert so the table never pins the caller's
// memory.
func (t *table) apply(u *slipstream.Update, off int64) { t.applyFP(u, t.h.fingerprint(u.Key), off) }

// applyFP is apply for an update whose key's fingerprint is fp.
func (t *table) applyFP(u *slipstream.Update, fp uint32, off int64) {
	if u.Op != slipstream.OpPut {
		t.removeFP(u.Key, fp)
		return
	}
	if i, ok := find(&t.h, u.Key, fp); ok {
		t.overwrite(t.h.atSlot(i), off, uint32(len(u.Value)), u.Version)
		return
	}
	k := strings.Clone(u.Key)
	t.h.insert(entry{key: k, off: off, vlen: uint32(len(u.Value)), ver: u.Version}, fp)
	t.live += putLen(k, len(u.Value), u.Version)
	t.idx.pending = append(t.idx.pending, k)
}

func (t *table) remove(key string) { t.removeFP(key, t.h.fingerprint(key)) }

func (t *table) removeFP(key string, fp uint32) {
	t.indexRun() // before take frees (and may renumber) the run's entries
	if e, ok := t.h.take(key, fp); ok {
		t.live -= putLen(e.key, int(e.vlen), e.ver)
		t.idx.dead++
	}
}

// get returns the live entry for key, or nil; valid until the next
// mutation.
func (t *table) get(key string) *entry { return t.h.get(key) }

// needsRefresh reports whether a scan must fold pending keys in (or rebuild
// the base) before reading the index.
func (t *table) needsRefresh() bool {
	x := &t.idx
	return t.unindexed > 0 || len(x.pending) > 0 || len(x.delta)+x.dead > len(x.base)/8+1024
}

// overdue reports whether the index has grown so stale that the writer
// should refresh it even if nobody scans: it bounds the memory held by
// pending keys and by deleted keys still in base. An unindexed sorted run
// counts as base (it is the base the refresh would build), so a few
// thousand inserts after a restart do not make an Apply index the run.
func (t *table) overdue() bool {
	x := &t.idx
	return len(x.pending)+x.dead > (len(x.base)+t.unindexed)/2+4096
}

// refresh folds pending keys into delta and, once delta and the deletes are
// a sizable fraction of base, merges delta into a new base without the
// deleted keys. Amortised, each insert or delete costs O(1) key moves plus
// the sort of its own batch. The caller holds the write lock.
func (t *table) refresh() {
	t.indexRun()
	x := &t.idx
	if len(x.pending) > 0 {
		slices.Sort(x.pending)
		switch {
		case len(x.base) == 0 && len(x.delta) == 0 && x.dead == 0:
			// Nothing was deleted since the index was empty, so every
			// pending key is live: the sorted pending keys become the base
			// as they are (the bulk of a load).
			x.base = clipTight(slices.Compact(x.pending))
			x.pending = nil
		case len(x.base) == 0 && len(x.delta) == 0:
			x.base = mergeKeys(nil, x.pending, t.liveFilter())
			x.dead = 0
		default:
			x.delta = mergeKeys(x.delta, x.pending, nil)
		}
		if cap(x.pending) > 1024 {
			x.pending = nil
		} else {
			x.pending = x.pending[:0]
		}
	}
	if len(x.delta)+x.dead > len(x.base)/8+1024 {
		x.base = mergeKeys(x.base, x.delta, t.liveFilter())
		x.delta, x.dead = nil, 0
	}
}

// clipTight returns keys without spare capacity, copying them when the
// spare is large (a slice grown by append during a load may have up to
// twice the capacity it needs, which would be held for the life of the
// fold).
func clipTight(keys []string) []string {
	if cap(keys)-len(keys) > len(keys)/16 {
		return slices.Clone(keys)
	}
	return slices.Clip(keys)
}

// liveFilter returns the hash index to filter deleted keys out of a merge,
// or nil when nothing was deleted since base was built: then every indexed
// key is live and the merge needs no lookups.
func (t *table) liveFilter() *hashIndex {
	if t.idx.dead == 0 {
		return nil
	}
	return &t.h
}

// mergeKeys merges two sorted slices into a new sorted slice without
// duplicates, keeping only keys present in live when live is not nil.
func mergeKeys(a, b []string, live *hashIndex) []string {
	if live == nil && (len(a) == 0 || len(b) == 0 || a[len(a)-1] < b[0]) {
		return appendKeys(a, b)
	}
	out := make([]string, 0, len(a)+len(b))
	keep := func(k string) {
		if n := len(out); n > 0 && out[n-1] == k {
			return
		}
		if live != nil && live.get(k) == nil {
			return
		}
		out = append(out, k)
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			keep(a[i])
			i++
		case b[j] < a[i]:
			keep(b[j])
			j++
		default:
			keep(a[i])
			i++
			j++
		}
	}
	for ; i < len(a); i++ {
		keep(a[i])
	}
	for ; j < len(b); j++ {
		keep(b[j])
	}
	return slices.Clip(out)
}

// appendKeys is mergeKeys without a filter for a duplicate-free a whose
// keys all sort before b's (the usual case while a fold hydrates from a
// bucket listed in key order): a copies as it is, b drops its duplicates.
func appendKeys(a, b []string) []string {
	out := make([]string, len(a), len(a)+len(b))
	copy(out, a)
	for _, k := range b {
		if n := len(out); n > len(a) && out[n-1] == k {
			continue
		}
		out = append(out, k)
	}
	return slices.Clip(out)
}

// keyIter walks the union of two published index slices in ascending order,
// once per key, restricted to a prefix. Keys may be dead; the caller checks.
type keyIter struct {
	a, b   []string
	prefix string
}

func newKeyIter(base, delta []string, prefix string) *keyIter {
	i, _ := slices.BinarySearch(base, prefix)
	j, _ := slices.BinarySearch(delta, prefix)
	return &keyIter{a: base[i:], b: delta[j:], prefix: prefix}
}

// next returns the next key with the prefix; false at the end.
func (it *keyIter) next() (string, bool) {
	var k string
	switch {
	case len(it.a) > 0 && len(it.b) > 0:
		switch {
		case it.a[0] < it.b[0]:
			k, it.a = it.a[0], it.a[1:]
		case it.b[0] < it.a[0]:
			k, it.b = it.b[0], it.b[1:]
		default:
			k, it.a, it.b = it.a[0], it.a[1:], it.b[1:]
		}
	case len(it.a) > 0:
		k, it.a = it.a[0], it.a[1:]
	case len(it.b) > 0:
		k, it.b = it.b[0], it.b[1:]
	default:
		return "", false
	}
	if !strings.HasPrefix(k, it.prefix) {
		it.a, it.b = nil, nil
		return "", false
	}
	return k, true
}

func (t *table) size() int { return t.h.n }
