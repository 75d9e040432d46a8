package applog

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// openFault opens a store and swaps its filesystem for ffs.
func openFault(t *testing.T, ffs *faultFS, opts *Options) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.fs, s.w.fs = ffs, ffs
	return s
}

func countCalls(ffs *faultFS, op string) int {
	n := 0
	for _, c := range ffs.log() {
		if strings.HasPrefix(c, op+" ") {
			n++
		}
	}
	return n
}

func TestSyncOptionFsyncsEveryApply(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(fmt.Sprint("sync=", sync), func(t *testing.T) {
			ffs := &faultFS{}
			s := openFault(t, ffs, &Options{Sync: sync, CompactThreshold: 1 << 40})
			for i := range uint64(5) {
				if err := s.Apply([]slipstream.Update{slipstream.Put("k", []byte("v"), rev(i+1))}, cur(i+1)); err != nil {
					t.Fatal(err)
				}
			}
			want := 0
			if sync {
				want = 5
			}
			if got := countCalls(ffs, "sync"); got != want {
				t.Fatalf("%d fsyncs for 5 applies, want %d", got, want)
			}
		})
	}
}

func TestApplyCompactionFailureKeepsCursor(t *testing.T) {
	ffs := &faultFS{fail: map[string]error{"rename": errInjected}}
	s := openFault(t, ffs, &Options{CompactThreshold: 1})
	// A first put leaves no garbage; overwriting it makes the log due.
	if err := s.Apply([]slipstream.Update{slipstream.Put("a", []byte("0"), rev(1))}, cur(1)); err != nil {
		t.Fatal(err)
	}
	err := s.Apply([]slipstream.Update{slipstream.Put("a", []byte("1"), rev(2))}, cur(2))
	if !errors.Is(err, errInjected) {
		t.Fatalf("Apply = %v, want the compaction's error", err)
	}
	if s.Cursor() != cur(1) {
		t.Fatalf("cursor moved to %v although Apply failed", s.Cursor())
	}
	// The data and its checkpoint reached the log: a retry succeeds and a
	// reload sees it.
	delete(ffs.fail, "rename")
	if err := s.Apply([]slipstream.Update{slipstream.Put("a", []byte("1"), rev(2))}, cur(2)); err != nil {
		t.Fatal(err)
	}
	snap := mustLoad(t, s.path)
	assertEntries(t, snap.Entries, map[string]string{"a": "1"})
}

func TestApplyCompactionReopenFailurePoisonsStore(t *testing.T) {
	ffs := &faultFS{fail: map[string]error{"openappend": errInjected}, after: "rename"}
	s := openFault(t, ffs, &Options{CompactThreshold: 1})
	if err := s.Apply([]slipstream.Update{slipstream.Put("a", []byte("0"), rev(1))}, cur(1)); err != nil {
		t.Fatal(err)
	}
	err := s.Apply([]slipstream.Update{slipstream.Put("a", []byte("1"), rev(2))}, cur(2))
	if !errors.Is(err, ErrPoisoned) {
		t.Fatalf("Apply = %v, want ErrPoisoned", err)
	}
	if err := s.Apply([]slipstream.Update{slipstream.Put("b", []byte("2"), rev(3))}, cur(3)); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("Apply on a poisoned store = %v", err)
	}
	// Reads still work, and the log on disk holds the compacted state.
	if e, ok, _ := s.Get("a"); !ok || string(e.Value) != "1" {
		t.Fatalf("Get(a) = %+v %v", e, ok)
	}
	snap := mustLoad(t, s.path)
	assertEntries(t, snap.Entries, map[string]string{"a": "1"})
	if snap.Cursor != cur(2) {
		t.Fatalf("cursor on disk %v, want the compacted checkpoint's 2", snap.Cursor)
	}
}

// scanIndex returns the live keys under prefix in the order a scan reads
// them: the index refreshed if needed, then walked, dead keys skipped.
func scanIndex(tb *table, prefix string) []string {
	if tb.needsRefresh() {
		tb.refresh()
	}
	var out []string
	it := newKeyIter(tb.idx.base, tb.idx.delta, prefix)
	for k, ok := it.next(); ok; k, ok = it.next() {
		if tb.get(k) != nil {
			out = append(out, k)
		}
	}
	return out
}

// TestIndexMatchesModel drives the table's ordered index through random
// inserts, overwrites, deletes and re-inserts, with scans at random points,
// and compares every scan with a sorted model. Enough churn passes through
// to trigger many delta merges and base rebuilds.
func TestIndexMatchesModel(t *testing.T) {
	tb := newTable()
	live := map[string]bool{}
	rng := rand.New(rand.NewPCG(7, 9))
	keys := make([]string, 6000)
	for i := range keys {
		keys[i] = fmt.Sprintf("%c.%05d", 'a'+rune(i%4), rng.IntN(1_000_000))
	}
	model := func(prefix string) []string {
		var out []string
		for k := range live {
			if strings.HasPrefix(k, prefix) {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	for step := range 60_000 {
		k := keys[rng.IntN(len(keys))]
		if rng.IntN(3) == 0 {
			tb.apply(&slipstream.Update{Op: slipstream.OpDelete, Key: k}, 0)
			delete(live, k)
		} else {
			tb.apply(&slipstream.Update{Op: slipstream.OpPut, Key: k, Value: []byte{1}}, int64(step))
			live[k] = true
		}
		if tb.overdue() {
			tb.refresh()
		}
		if rng.IntN(500) == 0 || step == 59_999 {
			for _, p := range []string{"", "b.", "c.0", "d.9"} {
				if got, want := scanIndex(tb, p), model(p); !slices.Equal(got, want) {
					t.Fatalf("step %d prefix %q: scan has %d keys, model %d", step, p, len(got), len(want))
				}
			}
		}
	}
	// The index stays bounded: base and delta hold at most a few times the
	// live keys.
	tb.refresh()
	if n := len(tb.idx.base) + len(tb.idx.delta) + len(tb.idx.pending); n > 2*tb.size()+2*4096 {
		t.Fatalf("index holds %d keys for %d live", n, tb.size())
	}
}

// TestIndexMatchesModelAscending is TestIndexMatchesModel for a fold
// hydrating in key order (new keys arrive ascending, the path where the
// index appends instead of merging), with re-puts, deletes and re-inserts
// of older keys mixed in, and the same key repeated within a refresh.
func TestIndexMatchesModelAscending(t *testing.T) {
	tb := newTable()
	live := map[string]bool{}
	rng := rand.New(rand.NewPCG(3, 5))
	next := 0
	key := func(i int) string { return fmt.Sprintf("k.%07d", i) }
	for step := range 40_000 {
		var k string
		switch r := rng.IntN(20); {
		case r < 16 || next == 0:
			k = key(next)
			next++
		case r < 18:
			k = key(next - 1) // the newest key again: a duplicate in pending
		default:
			k = key(rng.IntN(next))
		}
		if rng.IntN(25) == 0 {
			tb.apply(&slipstream.Update{Op: slipstream.OpDelete, Key: k}, 0)
			delete(live, k)
		} else {
			tb.apply(&slipstream.Update{Op: slipstream.OpPut, Key: k, Value: []byte{1}}, int64(step))
			live[k] = true
		}
		if tb.overdue() {
			tb.refresh()
		}
		if rng.IntN(400) == 0 || step == 39_999 {
			got, want := scanIndex(tb, ""), slices.Sorted(maps.Keys(live))
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: scan has %d keys, model %d", step, len(got), len(want))
			}
			for _, s := range [][]string{tb.idx.base, tb.idx.delta} {
				if !slices.IsSorted(s) || len(slices.Compact(slices.Clone(s))) != len(s) {
					t.Fatalf("step %d: an index slice is unsorted or holds duplicates", step)
				}
			}
		}
	}
}

// TestMergeKeysAppend checks mergeKeys on inputs where every key of a sorts
// before b's (it appends) against the general merge.
func TestMergeKeysAppend(t *testing.T) {
	for _, c := range []struct{ a, b []string }{
		{nil, nil},
		{[]string{"a", "b"}, nil},
		{nil, []string{"a", "a", "b"}},
		{[]string{"a", "b"}, []string{"c", "c", "d", "e", "e"}},
		{[]string{"a", "c"}, []string{"b", "c", "d"}}, // overlapping: merges
	} {
		want := slices.Compact(slices.Sorted(slices.Values(slices.Concat(c.a, c.b))))
		got := mergeKeys(c.a, c.b, nil)
		if !slices.Equal(got, want) || cap(got) != len(got) {
			t.Fatalf("mergeKeys(%q, %q) = %q (cap %d), want %q", c.a, c.b, got, cap(got), want)
		}
	}
}

// TestSortedReplayIndex replays a log whose PUTs come in ascending key
// order over several fingerprint chunks and key packs, then one out of
// order and a delete: every key is found, and the sorted run's keys become
// the key index's base as they are, sized exactly, when first needed.
func TestSortedReplayIndex(t *testing.T) {
	n := 2*chunkLen + 5
	data := appendHeader(nil)
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("key.%010d", i) // 14 bytes: the keys fill two packs
		data = append(data, put(want[i], "v", uint64(i+1))...)
	}
	tb := newTable()
	if _, err := replay(slices.Concat(data, ckpt(uint64(n))), tb); err != nil {
		t.Fatal(err)
	}
	// The index is built when first needed.
	if tb.unindexed != n || len(tb.idx.base) != 0 || !tb.needsRefresh() {
		t.Fatalf("after the replay: %d entries unindexed, base of %d keys; want %d and 0", tb.unindexed, len(tb.idx.base), n)
	}
	tb.refresh()
	if !slices.Equal(tb.idx.base, want) || cap(tb.idx.base) != n || len(tb.idx.pending) != 0 || tb.size() != n {
		t.Fatalf("base holds %d keys (cap %d, %d pending), want the %d sorted keys exactly", len(tb.idx.base), cap(tb.idx.base), len(tb.idx.pending), n)
	}
	for _, k := range want {
		if e := tb.get(k); e == nil || e.key != k {
			t.Fatalf("key %q not found after the sorted replay", k)
		}
	}

	// The run ends at a key out of order; a delete follows.
	tb = newTable()
	if _, err := replay(slices.Concat(data, put("a.first", "x", uint64(n+1)), del(want[7], uint64(n+2)), ckpt(uint64(n+2))), tb); err != nil {
		t.Fatal(err)
	}
	model := slices.Concat([]string{"a.first"}, want[:7], want[8:])
	if got := scanIndex(tb, ""); !slices.Equal(got, model) || tb.size() != len(model) {
		t.Fatalf("scan after the run ended has %d keys, want %d", len(got), len(model))
	}

	// Applies after a sorted load, before any scan: overwrites, inserts
	// after the run, then deletes (which free the run's entries, then
	// renumber them all) and re-inserts; the scan sees exactly the live
	// keys.
	tb = newTable()
	if _, err := replay(slices.Concat(data, ckpt(uint64(n))), tb); err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for _, k := range want {
		live[k] = true
	}
	apply := func(op slipstream.Op, k string) {
		tb.apply(&slipstream.Update{Op: op, Key: k, Value: []byte{1}}, 1)
		live[k] = op == slipstream.OpPut
		if !live[k] {
			delete(live, k)
		}
	}
	apply(slipstream.OpPut, want[3])    // overwrite
	apply(slipstream.OpPut, "zz.after") // insert after the run
	if tb.unindexed != n {
		t.Fatalf("an overwrite or an insert indexed the run (%d unindexed)", tb.unindexed)
	}
	for i := range n {
		if i%3 != 0 { // two thirds: the entries are renumbered (compactEntries)
			apply(slipstream.OpDelete, want[i])
		}
	}
	apply(slipstream.OpPut, "b.reused") // takes an entry a delete freed
	apply(slipstream.OpPut, want[1])    // back again
	if got := scanIndex(tb, ""); !slices.Equal(got, slices.Sorted(maps.Keys(live))) {
		t.Fatalf("scan after applies on a sorted load has %d keys, want %d", len(got), len(live))
	}
}

// TestSortedRunStaysUnindexedUnderInserts checks that inserts after a
// sorted load do not build the run's key index through Apply's overdue
// refresh while they are few against the run (the run counts as indexed
// keys in the bound), and that a scan afterwards sees every key.
func TestSortedRunStaysUnindexedUnderInserts(t *testing.T) {
	n := 2*chunkLen + 5
	data := appendHeader(nil)
	live := map[string]bool{}
	for i := range n {
		k := fmt.Sprintf("key.%010d", i)
		data = append(data, put(k, "v", uint64(i+1))...)
		live[k] = true
	}
	tb := newTable()
	if _, err := replay(slices.Concat(data, ckpt(uint64(n))), tb); err != nil {
		t.Fatal(err)
	}
	inserts := n/2 - 1 // fewer than half the run: not overdue
	for i := range inserts {
		k := fmt.Sprintf("new.%010d", i)
		tb.apply(&slipstream.Update{Op: slipstream.OpPut, Key: k, Value: []byte{1}}, 1)
		live[k] = true
		if tb.overdue() { // as Apply does
			tb.refresh()
		}
	}
	if tb.unindexed != n {
		t.Fatalf("%d inserts after a sorted load of %d keys indexed the run (%d unindexed)", inserts, n, tb.unindexed)
	}
	got := scanIndex(tb, "")
	if want := slices.Sorted(maps.Keys(live)); !slices.Equal(got, want) {
		t.Fatalf("scan has %d keys, want %d", len(got), len(want))
	}
}

// TestLazyIndexAcrossRestarts drives a Store through random batches of puts
// and deletes (a third deletes, so freed entries are reused; once, right
// after a sorted load, three fifths of the keys at once: enough to
// renumber the entries, too few to rebuild the index's base), compactions and restarts, half of them onto a compacted
// log (whose sorted run starts unindexed), scanning at random points: every
// scan and every Get matches the model, in key order.
func TestLazyIndexAcrossRestarts(t *testing.T) {
	sortedLoads := 0
	for seed := range uint64(4) {
		dir := t.TempDir()
		rng := rand.New(rand.NewPCG(seed, 1))
		model := map[string]string{}
		check := func(s *Store, round int) {
			t.Helper()
			got := storeState(t, s) // checks Get and Len against the scan
			if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(model))) {
				t.Fatalf("seed %d round %d: scan has %d keys, model %d", seed, round, len(got), len(model))
			}
			for k, e := range got {
				if string(e.Value) != model[k] {
					t.Fatalf("seed %d round %d: %s = %q, model %q", seed, round, k, e.Value, model[k])
				}
			}
			prev := ""
			if err := s.ForEachInRange("k.0", func(e slipstream.Entry) error {
				if e.Key <= prev {
					return fmt.Errorf("%s after %s", e.Key, prev)
				}
				prev = e.Key
				return nil
			}); err != nil {
				t.Fatalf("seed %d round %d: prefix scan out of order: %v", seed, round, err)
			}
		}
		s, err := Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		rev := uint64(0)
		for round := range 6 {
			if round == 3 { // after a sorted load: free most entries, renumbering them
				var batch []slipstream.Update
				for i, k := range slices.Sorted(maps.Keys(model)) {
					if i%5 < 3 {
						rev++
						batch = append(batch, slipstream.Delete(k, slipstream.VersionFromUint64(rev)))
						delete(model, k)
					}
				}
				if err := s.Apply(batch, slipstream.CursorAt(slipstream.VersionFromUint64(rev))); err != nil {
					t.Fatal(err)
				}
				check(s, round)
			}
			for range 300 {
				var batch []slipstream.Update
				for range 1 + rng.IntN(20) {
					rev++
					k, v := fmt.Sprintf("k.%05d", rng.IntN(3000)), slipstream.VersionFromUint64(rev)
					if rng.IntN(3) == 0 {
						batch = append(batch, slipstream.Delete(k, v))
						delete(model, k)
					} else {
						batch = append(batch, slipstream.Put(k, []byte(fmt.Sprint(rev)), v))
						model[k] = fmt.Sprint(rev)
					}
				}
				if err := s.Apply(batch, slipstream.CursorAt(slipstream.VersionFromUint64(rev))); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(50) == 0 {
					check(s, round)
				}
			}
			check(s, round)
			if round%2 == 0 { // the next open loads a compacted log
				s.wmu.Lock()
				err := s.compact(s.cursor)
				s.wmu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(dir, nil); err != nil {
				t.Fatal(err)
			}
			if s.t.unindexed > 0 {
				sortedLoads++
			}
		}
		check(s, 6)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if sortedLoads == 0 {
		t.Fatal("no load left a sorted run unindexed: the lazy path was not exercised")
	}
}
