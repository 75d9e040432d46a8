package applog

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestHashIndexMatchesMap drives the hash index through random inserts and
// removals and compares it with a Go map after every step. The fingerprint
// functions range from the real hash to degenerate ones that pile every key
// into a few home slots near the end of the table, so clusters wrap around
// and backward-shift deletion is exercised on every path.
func TestHashIndexMatchesMap(t *testing.T) {
	fps := map[string]func(h *hashIndex, k string) uint32{
		"maphash":     func(h *hashIndex, k string) uint32 { return h.fingerprint(k) },
		"eight homes": func(h *hashIndex, k string) uint32 { return uint32(len(k)%8) | 0xFFFFFFF8 },
		"one home":    func(h *hashIndex, k string) uint32 { return 0xFFFFFFFF },
		"two bits":    func(h *hashIndex, k string) uint32 { return uint32(k[len(k)-1]) % 4 << 30 },
		// Homes at the last two and first two slots: clusters straddle
		// the wrap-around with entries homed on both sides of it.
		"across the wrap": func(h *hashIndex, k string) uint32 { return uint32(k[len(k)-1])%4 - 2 },
	}
	for name, fpOf := range fps {
		t.Run(name, func(t *testing.T) {
			h := newHashIndex()
			model := map[string]string{}
			rng := rand.New(rand.NewPCG(3, 4))
			steps, space := 20_000, 3000
			check := 97
			if name != "maphash" {
				// Degenerate hashes make every probe linear: fewer keys,
				// a full check every few steps.
				steps, space, check = 3000, 200, 5
			}
			lookup := func(k string) *entry {
				if i, ok := find(&h, k, fpOf(&h, k)); ok {
					return h.atSlot(i)
				}
				return nil
			}
			for step := range steps {
				k := fmt.Sprintf("k%d", rng.IntN(space))
				if _, ok := model[k]; ok && rng.IntN(2) == 0 {
					if !h.removeFP(k, fpOf(&h, k)) {
						t.Fatalf("step %d: remove(%q) found nothing", step, k)
					}
					delete(model, k)
				} else if !ok {
					v := fmt.Sprint(step)
					h.insert(entry{key: k, off: int64(step)}, fpOf(&h, k))
					model[k] = v
				} else if h.removeFP(k+"x", fpOf(&h, k+"x")) {
					t.Fatalf("step %d: removed absent key", step)
				}
				if h.n != len(model) {
					t.Fatalf("step %d: %d entries, model %d", step, h.n, len(model))
				}
				if step%check == 0 {
					for mk, mv := range model {
						if e := lookup(mk); e == nil || fmt.Sprint(e.off) != mv || e.key != mk {
							t.Fatalf("step %d: lookup(%q) = %+v, want %q", step, mk, e, mv)
						}
					}
					for range 20 {
						ak := fmt.Sprintf("absent%d", rng.IntN(1000))
						if lookup(ak) != nil {
							t.Fatalf("step %d: found absent key %q", step, ak)
						}
					}
				}
			}
			// Deleting everything empties the table and compacts the
			// entries.
			for k := range model {
				if !h.removeFP(k, fpOf(&h, k)) {
					t.Fatalf("final remove(%q) failed", k)
				}
			}
			if h.n != 0 || h.used > 2048 {
				t.Fatalf("after removing everything: n=%d, %d entries held", h.n, h.used)
			}
			for _, s := range h.slots {
				if s != 0 {
					t.Fatal("a slot is still occupied")
				}
			}
		})
	}
}
