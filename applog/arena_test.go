package applog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// TestArenaMatchesModel churns a table with overwrites and deletes of
// values of every size class (empty, slab-sized, over maxInline) so that
// slabs are dropped and evacuated, and checks after every batch that every
// value matches a model, that values handed out earlier never change, that
// the arena's accounting adds up, and that dead space stays bounded.
func TestArenaMatchesModel(t *testing.T) {
	tb := newTable()
	model := map[string][]byte{}
	rng := rand.New(rand.NewPCG(3, 5))
	keys := make([]string, 8000)
	for i := range keys {
		keys[i] = fmt.Sprintf("k.%05d", i)
	}
	value := func(step int) []byte {
		var n int
		switch r := rng.IntN(100); {
		case r < 3:
			n = 0
		case r < 5:
			n = maxInline + 1 + rng.IntN(100)
		default:
			n = 1 + rng.IntN(700)
		}
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(step + i)
		}
		return v
	}
	type held struct {
		got, want []byte
	}
	var holds []held
	evacuations := 0
	for step := range 40_000 {
		k := keys[rng.IntN(len(keys))]
		if rng.IntN(5) == 0 {
			tb.apply(&slipstream.Update{Op: slipstream.OpDelete, Key: k})
			delete(model, k)
		} else {
			v := value(step)
			tb.apply(&slipstream.Update{Op: slipstream.OpPut, Key: k, Value: v})
			model[k] = v
		}
		if step%50 == 49 {
			wasEvacuating := tb.vals.evac != nil
			tb.maintain(4096 + 32*50)
			if wasEvacuating && tb.vals.evac == nil {
				evacuations++
			}
		}
		if step%997 == 0 {
			// A reader keeps a value it was handed (as ForEachInRange
			// allows); it must never change, whatever happens to its slab.
			if e := tb.get(k); e != nil {
				holds = append(holds, held{e.val, bytes.Clone(e.val)})
			}
		}
		if step%2000 != 1999 {
			continue
		}
		if tb.size() != len(model) {
			t.Fatalf("step %d: %d entries, model %d", step, tb.size(), len(model))
		}
		var live int64
		for k, want := range model {
			e := tb.get(k)
			if e == nil || !bytes.Equal(e.val, want) || e.val == nil {
				t.Fatalf("step %d: key %s holds %d bytes, want %d", step, k, len(e.val), len(want))
			}
			if e.slab != 0 {
				live += int64(len(e.val))
			}
		}
		a := &tb.vals
		var sumLive, sumUsed int64
		for _, s := range a.slabs {
			if s != nil {
				sumLive += int64(s.live)
				sumUsed += int64(len(s.buf))
			}
		}
		if sumLive != live || a.live != live || a.used != sumUsed {
			t.Fatalf("step %d: accounting: live %d (slabs %d, arena %d), used %d (slabs %d)", step, live, sumLive, a.live, a.used, sumUsed)
		}
		if a.evac == nil && a.dead() > max(minEvacDead, a.used/4)+maxSlab {
			for id, s := range a.slabs {
				if s != nil {
					t.Logf("slab %d: len %d cap %d live %d cur %v", id, len(s.buf), cap(s.buf), s.live, uint32(id) == a.cur)
				}
			}
			t.Fatalf("step %d: %d dead bytes of %d held", step, a.dead(), a.used)
		}
		for i, h := range holds {
			if !bytes.Equal(h.got, h.want) {
				t.Fatalf("step %d: held value %d changed", step, i)
			}
		}
	}
	t.Logf("%d evacuations", evacuations)
	if evacuations == 0 {
		t.Fatal("no evacuation happened: the test does not exercise it")
	}
}

// TestArenaDropsDeadSlabs checks that overwriting keys in the order they
// were written frees whole slabs without evacuating (copying) anything.
func TestArenaDropsDeadSlabs(t *testing.T) {
	tb := newTable()
	v := make([]byte, 256)
	for round := range 20 {
		for i := range 20_000 {
			tb.apply(&slipstream.Update{Op: slipstream.OpPut, Key: fmt.Sprintf("k.%05d", i), Value: v})
			if i%1000 == 999 {
				tb.maintain(4096 + 32*1000)
				if tb.vals.evac != nil {
					t.Fatalf("round %d: evacuation started", round)
				}
			}
		}
	}
	if a := &tb.vals; a.used > 20_000*256+2*maxSlab {
		t.Fatalf("arena holds %d bytes for %d live", a.used, a.live)
	}
}
