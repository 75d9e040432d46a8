package audit

import (
	"fmt"
	"hash/maphash"
	"math"

	"github.com/slipstream-kv/slipstream"
)

// index holds the fold's keys and revisions under the scope, and what the
// bucket listing said of each: one arena of key bytes, parallel arrays per
// key, and an open-addressing hash table of key numbers. Per key it costs
// the key's bytes plus about 30 bytes, with no per-key allocation.
type index struct {
	seed  maphash.Seed
	arena []byte          // the keys, back to back
	ends  []uint32        // key i is arena[ends[i-1]:ends[i]]
	fold  []uint64        // the fold's revision (0: unknown)
	srv   []uint64        // the server's newest revision listed
	op    []slipstream.Op // its operation; 0: not listed
	slots []uint32        // key number + 1; 0 is empty. len is a power of two
}

func newIndex() *index {
	return &index{seed: maphash.MakeSeed(), slots: make([]uint32, 1024)}
}

func (x *index) len() int { return len(x.ends) }

func (x *index) keyBytes(i int) []byte {
	var start uint32
	if i > 0 {
		start = x.ends[i-1]
	}
	return x.arena[start:x.ends[i]]
}

func (x *index) key(i int) string { return string(x.keyBytes(i)) }

// lookup returns key's number, or -1.
func (x *index) lookup(key string) int {
	mask := uint64(len(x.slots) - 1)
	for s := maphash.String(x.seed, key) & mask; ; s = (s + 1) & mask {
		n := x.slots[s]
		if n == 0 {
			return -1
		}
		if string(x.keyBytes(int(n-1))) == key {
			return int(n - 1)
		}
	}
}

// insert adds key at revision rev; a key already present (overlapping
// prefixes) is kept as it is.
func (x *index) insert(key string, rev uint64) error {
	if x.lookup(key) >= 0 {
		return nil
	}
	if uint64(len(x.arena))+uint64(len(key)) > math.MaxUint32 || len(x.ends) >= math.MaxUint32-1 {
		return fmt.Errorf("audit: fold index exceeds 4 GiB of keys")
	}
	if 2*(len(x.ends)+1) > len(x.slots) {
		x.grow()
	}
	x.arena = append(x.arena, key...)
	x.ends = append(x.ends, uint32(len(x.arena)))
	x.fold = append(x.fold, rev)
	x.srv = append(x.srv, 0)
	x.op = append(x.op, 0)
	x.place(maphash.String(x.seed, key), uint32(len(x.ends)))
	return nil
}

func (x *index) place(h uint64, n uint32) {
	mask := uint64(len(x.slots) - 1)
	s := h & mask
	for x.slots[s] != 0 {
		s = (s + 1) & mask
	}
	x.slots[s] = n
}

// grow doubles the table and re-places every key.
func (x *index) grow() {
	x.slots = make([]uint32, 2*len(x.slots))
	for i := range x.ends {
		x.place(maphash.Bytes(x.seed, x.keyBytes(i)), uint32(i+1))
	}
}
