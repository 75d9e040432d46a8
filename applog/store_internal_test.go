package applog

import (
	"errors"
	"fmt"
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
	scan := func(prefix string) []string {
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
				if got, want := scan(p), model(p); !slices.Equal(got, want) {
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
