package applog

import "slices"

// arena holds the table's values in large slabs instead of one heap object
// per value: an Apply or a load copies each value into the current slab,
// which saves an allocation per update and leaves the garbage collector a
// few large pointer-free objects to track instead of one per entry.
//
// A slab is written only past its fill point and never reused, so a value
// handed to a reader stays valid and unchanged for as long as the reader
// holds it (the garbage collector keeps a dropped slab alive while anything
// points into it). An overwritten or deleted value becomes dead space in its
// slab. A slab whose values are all dead is dropped at once (a workload that
// overwrites keys in the order it wrote them frees whole slabs and copies
// nothing); once dead space exceeds a quarter of the slabs, the emptiest
// slabs are evacuated: a walk over the entries copies their live values into
// fresh slabs, a bounded number of entries per step so no single Apply
// holds the lock for long, and drops them when the walk ends. Slab bytes
// are thus at most about 4/3 of the live value bytes, plus the slabs being
// filled or evacuated.
//
// Empty values and values over maxInline bytes are not in a slab (their
// slab id is 0): they are their own allocations, as before.
type arena struct {
	slabs []*slab // by id; slabs[0] is always nil; dropped slabs are nil
	cur   uint32  // slab being filled; 0 = none
	used  int64   // bytes handed out of the slabs still held
	live  int64   // bytes of live values in them

	// Evacuation in progress (evac != nil): the slabs to empty, and the
	// next entry index the walk visits. gen is the entry layout generation
	// the walk started under: compactEntries renumbers entries, and the
	// walk then starts over.
	evac []bool // by slab id
	pos  uint32
	gen  uint64
}

type slab struct {
	buf  []byte // len: bytes handed out; cap: the slab size
	live int    // bytes of live values
}

const (
	minSlab = 64 << 10
	maxSlab = 1 << 20
	// maxInline is the largest value stored in a slab.
	maxInline = 32 << 10
	// minEvacDead is the dead space below which no evacuation starts, so
	// small folds do not churn.
	minEvacDead = 1 << 20
)

// emptyValue is the value of an empty entry: non-nil (an empty value is a
// present entry), shared, and never written.
var emptyValue = []byte{}

// alloc copies v into the arena and returns the copy, capped to its length
// so that appending to it cannot reach a neighbour, and the id of its slab
// (0 when v is not in a slab).
func (a *arena) alloc(v []byte) ([]byte, uint32) {
	n := len(v)
	if n == 0 {
		return emptyValue, 0
	}
	if n > maxInline {
		return cloneBytes(v), 0
	}
	s := a.slab(a.cur)
	if s == nil || cap(s.buf)-len(s.buf) < n {
		s = a.newSlab()
	}
	off := len(s.buf)
	s.buf = append(s.buf, v...)
	s.live += n
	a.live += int64(n)
	a.used += int64(n)
	return s.buf[off : off+n : off+n], a.cur
}

func (a *arena) slab(id uint32) *slab {
	if id == 0 {
		return nil
	}
	return a.slabs[id]
}

// newSlab starts a new current slab. Slabs grow from minSlab to maxSlab so
// a small fold stays small. The unused tail of the previous slab counts as
// dead.
func (a *arena) newSlab() *slab {
	if len(a.slabs) == 0 {
		a.slabs = append(a.slabs, nil)
	}
	if old := a.slab(a.cur); old != nil && old.live == 0 && !a.evacuating(a.cur) {
		a.drop(a.cur)
	}
	size := min(maxSlab, minSlab<<min(len(a.slabs)-1, 8))
	s := &slab{buf: make([]byte, 0, size)}
	a.slabs = append(a.slabs, s)
	a.cur = uint32(len(a.slabs) - 1)
	return s
}

// release marks n bytes of slab id dead (an overwritten or deleted value),
// dropping the slab once nothing in it is live.
func (a *arena) release(id uint32, n int) {
	s := a.slab(id)
	if s == nil || n == 0 {
		return
	}
	s.live -= n
	a.live -= int64(n)
	if s.live == 0 && id != a.cur && !a.evacuating(id) {
		a.drop(id)
	}
}

func (a *arena) drop(id uint32) {
	a.used -= int64(len(a.slabs[id].buf))
	a.live -= int64(a.slabs[id].live)
	a.slabs[id] = nil
}

func (a *arena) evacuating(id uint32) bool { return int(id) < len(a.evac) && a.evac[id] }

// dead returns the bytes of overwritten and deleted values still held.
func (a *arena) dead() int64 { return a.used - a.live }

// startEvacuation picks the emptiest slabs (not the current one) holding
// enough dead space to bring it down to an eighth of the arena, and starts
// a walk that moves their live values out. It reports false when there is
// nothing worth evacuating.
func (a *arena) startEvacuation(gen uint64) bool {
	type cand struct {
		id         uint32
		live, dead int
	}
	var cs []cand
	for id, s := range a.slabs {
		if s != nil && uint32(id) != a.cur {
			cs = append(cs, cand{uint32(id), s.live, len(s.buf) - s.live})
		}
	}
	if len(cs) == 0 {
		return false
	}
	// Emptiest first: the lowest live fraction.
	slices.SortFunc(cs, func(x, y cand) int {
		l, r := int64(x.live)*int64(y.live+y.dead), int64(y.live)*int64(x.live+x.dead)
		switch {
		case l < r:
			return -1
		case l > r:
			return 1
		}
		return 0
	})
	want := a.dead() - a.used/8
	a.evac = make([]bool, len(a.slabs))
	var got int64
	picked := false
	for _, c := range cs {
		if got >= want || c.dead == 0 {
			break
		}
		a.evac[c.id] = true
		got += int64(c.dead)
		picked = true
	}
	if !picked {
		a.evac = nil
		return false
	}
	a.pos, a.gen = 0, gen
	return true
}

// finishEvacuation drops the evacuated slabs: the walk has moved every
// live value out of them.
func (a *arena) finishEvacuation() {
	for id, ev := range a.evac {
		if ev && a.slabs[id] != nil {
			a.drop(uint32(id))
		}
	}
	a.evac = nil
}
