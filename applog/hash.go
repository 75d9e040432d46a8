package applog

import (
	"hash/maphash"

	"github.com/slipstream-kv/slipstream"
)

// entry is a live key's version and the place of its value in the log,
// stored inline in the table's entry slice: the value is the vlen bytes at
// offset off of the log file the store reads (see [logReader]). The log is
// append-only and a compaction moves every entry to its new file at once,
// so a reader that located a value can read it after releasing the lock.
type entry struct {
	key  string
	off  int64 // the value's offset in the log
	vlen uint32
	ver  slipstream.Version
}

// hashIndex maps keys to entries: an open-addressing table with linear
// probing over entries stored in fixed-size chunks. It replaces
// map[string]*entry to cut the per-entry overhead (no per-entry allocation,
// 8-byte slots at 35–70% load, against roughly 64 bytes of map and 48 of
// entry at a million keys). Chunks never move, so growing never copies
// entries.
//
// A slot is 0 when empty, else fp<<32 | (entry index + 1), where fp is the
// upper half of the key's hash. A key's home slot is fp & mask, so the slot
// alone is enough to move an entry when the table grows or a deletion
// shifts its neighbours back; keys are hashed once, on lookup. Deletion
// shifts entries back instead of leaving tombstones, so lookups of absent
// keys stop at the first empty slot.
//
// Not safe for concurrent mutation; lookups may run concurrently with each
// other.
type hashIndex struct {
	seed   maphash.Seed
	slots  []uint64
	chunks [][]entry // entry i is chunks[i>>chunkBits][i&chunkMask]
	used   uint32    // entries handed out so far
	free   []uint32  // indices of cleared entries, reused first
	n      int
}

const (
	chunkBits = 12
	chunkLen  = 1 << chunkBits
	chunkMask = chunkLen - 1

	minSlots = 64
	// maxLoad is the load factor, in tenths, at which the slots double.
	maxLoad = 7
)

// at returns entry idx.
func (h *hashIndex) at(idx uint32) *entry { return &h.chunks[idx>>chunkBits][idx&chunkMask] }

// atSlot returns the entry an occupied slot points to.
func (h *hashIndex) atSlot(i int) *entry { return h.at(uint32(h.slots[i]) - 1) }

func newHashIndex() hashIndex {
	return hashIndex{seed: maphash.MakeSeed(), slots: make([]uint64, minSlots)}
}

func (h *hashIndex) fingerprint(key string) uint32 {
	return uint32(maphash.String(h.seed, key) >> 32)
}

func (h *hashIndex) fingerprintBytes(key []byte) uint32 {
	return uint32(maphash.Bytes(h.seed, key) >> 32)
}

// find returns the slot holding key (whose fingerprint is fp) and true, or
// the empty slot where it would go and false.
func find[K string | []byte](h *hashIndex, key K, fp uint32) (int, bool) {
	mask := len(h.slots) - 1
	for i := int(fp) & mask; ; i = (i + 1) & mask {
		s := h.slots[i]
		if s == 0 {
			return i, false
		}
		if uint32(s>>32) == fp && h.at(uint32(s)-1).key == string(key) {
			return i, true
		}
	}
}

// get returns the entry for key, or nil. The pointer is valid until the
// next mutation.
func (h *hashIndex) get(key string) *entry { return h.getFP(key, h.fingerprint(key)) }

// getFP is get for a key whose fingerprint is fp.
func (h *hashIndex) getFP(key string, fp uint32) *entry {
	if i, ok := find(h, key, fp); ok {
		return h.atSlot(i)
	}
	return nil
}

// indexOf returns the entry index of key, whose fingerprint is fp; false
// when absent.
func (h *hashIndex) indexOf(key string, fp uint32) (uint32, bool) {
	i, ok := find(h, key, fp)
	if !ok {
		return 0, false
	}
	return uint32(h.slots[i]) - 1, true
}

// prefetch fills fps with the fingerprints of n keys and loads each key's
// home slot, returning a value derived from the loads (for the caller to
// keep, so they are not optimised away). Random slots miss the cache; these
// loads do not depend on each other, so the CPU overlaps their misses, and
// the lookups that follow, which would take them one at a time, hit.
func (h *hashIndex) prefetch(fps []uint32, n int, key func(int) string) uint64 {
	var sum uint64
	mask := len(h.slots) - 1
	for i := range n {
		fp := h.fingerprint(key(i))
		fps[i] = fp
		sum += h.slots[int(fp)&mask]
	}
	return sum
}

// insert adds e, whose key must be absent; fp is the key's fingerprint.
func (h *hashIndex) insert(e entry, fp uint32) {
	if (h.n+1)*10 > len(h.slots)*maxLoad {
		h.grow()
	}
	var idx uint32
	if n := len(h.free); n > 0 {
		idx = h.free[n-1]
		h.free = h.free[:n-1]
	} else {
		idx = h.used
		h.used++
		if int(idx>>chunkBits) == len(h.chunks) {
			h.chunks = append(h.chunks, make([]entry, chunkLen))
		}
	}
	*h.at(idx) = e
	i, _ := find(h, e.key, fp)
	h.slots[i] = uint64(fp)<<32 | uint64(idx+1)
	h.n++
}

// appendEntry stores e, whose key must be absent, in a new entry without
// placing it in a slot; placeAll places such entries. The index must have
// no free entries.
func (h *hashIndex) appendEntry(e entry) {
	idx := h.used
	h.used++
	if int(idx>>chunkBits) == len(h.chunks) {
		h.chunks = append(h.chunks, make([]entry, chunkLen))
	}
	*h.at(idx) = e
	h.n++
}

// placeAll rebuilds the slots for the entries, sized as insert would size
// them for h.n keys, when fps holds the fingerprints of the last fps.n
// entries (appended with appendEntry) and the earlier ones are in slots.
func (h *hashIndex) placeAll(fps *fpChunks) {
	size := len(h.slots)
	for h.n*10 > size*maxLoad {
		size *= 2
	}
	if size != len(h.slots) {
		old := h.slots
		h.slots = make([]uint64, size)
		h.place(old)
	}
	mask := len(h.slots) - 1
	idx := h.used - uint32(fps.n)
	for _, c := range fps.chunks {
		for _, fp := range c {
			idx++ // slots hold the entry index + 1
			j := int(fp) & mask
			for h.slots[j] != 0 {
				j = (j + 1) & mask
			}
			h.slots[j] = uint64(fp)<<32 | uint64(idx)
		}
	}
}

// removeFP is remove for a key whose fingerprint is fp.
func (h *hashIndex) removeFP(key string, fp uint32) bool {
	_, ok := h.take(key, fp)
	return ok
}

// take deletes key, whose fingerprint is fp, and returns its entry; false
// when it was absent.
func (h *hashIndex) take(key string, fp uint32) (entry, bool) {
	i, ok := find(h, key, fp)
	if !ok {
		return entry{}, false
	}
	idx := uint32(h.slots[i]) - 1
	old := *h.at(idx)
	*h.at(idx) = entry{} // release the key and value
	h.free = append(h.free, idx)
	h.n--
	// Shift back every following entry of the cluster whose home slot does
	// not lie cyclically in (i, j], so each stays reachable from its home.
	mask := len(h.slots) - 1
	h.slots[i] = 0
	for j := (i + 1) & mask; h.slots[j] != 0; j = (j + 1) & mask {
		home := int(uint32(h.slots[j]>>32)) & mask
		var stays bool
		if i <= j {
			stays = i < home && home <= j
		} else {
			stays = i < home || home <= j
		}
		if !stays {
			h.slots[i], h.slots[j] = h.slots[j], 0
			i = j
		}
	}
	if len(h.free) > 1024 && len(h.free) > h.n {
		h.compactEntries()
	}
	return old, true
}

// grow doubles the slots and re-places every entry from its stored
// fingerprint.
func (h *hashIndex) grow() {
	old := h.slots
	h.slots = make([]uint64, 2*len(old))
	h.place(old)
}

// place re-places the occupied slots of old into the (larger, empty) slots
// from their stored fingerprints.
func (h *hashIndex) place(old []uint64) {
	mask := len(h.slots) - 1
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := int(uint32(s>>32)) & mask
		for h.slots[i] != 0 {
			i = (i + 1) & mask
		}
		h.slots[i] = s
	}
}

// compactEntries packs the live entries into fresh chunks once more than
// half of the handed-out entries are free (after mass deletes), and shrinks
// the slots to fit.
func (h *hashIndex) compactEntries() {
	old := *h
	*h = hashIndex{seed: old.seed}
	size := minSlots
	for old.n*10 > size*maxLoad/2 {
		size *= 2
	}
	h.slots = make([]uint64, size)
	for i, s := range old.slots {
		if s != 0 {
			h.insert(*old.atSlot(i), uint32(s>>32))
		}
	}
}
