package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// Opener opens, or reopens, the fold in dir and returns it; it fails the
// test on error. dir may not exist yet.
type Opener func(t *testing.T, dir string) slipstream.Store

func rev(n uint64) slipstream.Version { return slipstream.VersionFromUint64(n) }
func cur(n uint64) slipstream.Cursor  { return slipstream.CursorFromUint64(n) }

// Fixture returns the conformance stream, revisions 1..7.
// Folded, it leaves node.a=v1b@4, node.c=v3@6, svc.x=sx@3, svc.y=sy@7 at
// cursor 7.
func Fixture() []slipstream.Update {
	return []slipstream.Update{
		slipstream.Put("node.a", []byte("v1"), rev(1)),
		slipstream.Put("node.b", []byte("v2"), rev(2)),
		slipstream.Put("svc.x", []byte("sx"), rev(3)),
		slipstream.Put("node.a", []byte("v1b"), rev(4)),
		slipstream.Delete("node.b", rev(5)),
		slipstream.Put("node.c", []byte("v3"), rev(6)),
		slipstream.Put("svc.y", []byte("sy"), rev(7)),
	}
}

// expected is the folded fixture, as dump renders it.
var expected = []string{"node.a=v1b@4", "node.c=v3@6", "svc.x=sx@3", "svc.y=sy@7"}

// fold applies updates in chunks of three, each at the cursor of its last
// update's version.
func fold(t testing.TB, s slipstream.Store, updates []slipstream.Update) {
	t.Helper()
	for i := 0; i < len(updates); i += 3 {
		chunk := updates[i:min(i+3, len(updates))]
		if err := s.Apply(chunk, slipstream.CursorAt(chunk[len(chunk)-1].Version)); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
}

// dump renders the entries under prefix as "key=value@version", in scan
// order.
func dump(t testing.TB, s slipstream.Store, prefix string) []string {
	t.Helper()
	out := []string{}
	err := s.ForEachInRange(prefix, func(e slipstream.Entry) error {
		out = append(out, fmt.Sprintf("%s=%s@%s", e.Key, e.Value, e.Version))
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachInRange(%q): %v", prefix, err)
	}
	return out
}

func mustClose(t testing.TB, s slipstream.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func assertState(t testing.TB, s slipstream.Store, c slipstream.Cursor, want []string) {
	t.Helper()
	if got := s.Cursor(); got != c {
		t.Fatalf("cursor %v, want %v", got, c)
	}
	if got := dump(t, s, ""); !slices.Equal(got, want) {
		t.Fatalf("state\n got %q\nwant %q", got, want)
	}
}

// Run runs the conformance suite against the backend that open opens. Each
// check uses fresh directories. Run requires that Get, ForEachInRange and
// Cursor be safe to call concurrently with Apply.
func Run(t *testing.T, open Opener) {
	t.Run("round_trip", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		if !s.Cursor().IsNone() {
			t.Fatalf("fresh fold has cursor %v", s.Cursor())
		}
		fold(t, s, Fixture())
		assertState(t, s, cur(7), expected)
		mustClose(t, s)
		s = open(t, dir)
		defer mustClose(t, s)
		assertState(t, s, cur(7), expected)
	})

	t.Run("get_range", func(t *testing.T) {
		s := open(t, t.TempDir())
		defer mustClose(t, s)
		fold(t, s, Fixture())
		getTests := []struct {
			key, value string
			ver        uint64
			ok         bool
		}{
			{"node.a", "v1b", 4, true}, // overwritten → latest
			{"node.c", "v3", 6, true},
			{"svc.x", "sx", 3, true},
			{"node.b", "", 0, false}, // deleted
			{"never", "", 0, false},  // never written
			{"node.", "", 0, false},  // a prefix is not a key
		}
		for _, tt := range getTests {
			e, ok, err := s.Get(tt.key)
			if err != nil {
				t.Fatalf("Get(%q): %v", tt.key, err)
			}
			if ok != tt.ok || (ok && (string(e.Value) != tt.value || e.Version != rev(tt.ver) || e.Key != tt.key)) {
				t.Fatalf("Get(%q) = %+v, %v; want %q@%d present=%v", tt.key, e, ok, tt.value, tt.ver, tt.ok)
			}
		}
		e, _, _ := s.Get("node.a")
		e.Value[0] = 'X' // the caller owns Get's value
		if e2, _, _ := s.Get("node.a"); string(e2.Value) != "v1b" {
			t.Fatalf("modifying a Get result changed the fold: %q", e2.Value)
		}
		rangeTests := map[string][]string{
			"":       expected,
			"node.":  {"node.a=v1b@4", "node.c=v3@6"},
			"svc.":   {"svc.x=sx@3", "svc.y=sy@7"},
			"node.a": {"node.a=v1b@4"},
			"zzz":    {},
			"a":      {},
		}
		for p, want := range rangeTests {
			if got := dump(t, s, p); !slices.Equal(got, want) {
				t.Fatalf("range %q = %q, want %q", p, got, want)
			}
		}
	})

	t.Run("for_each_in_range", func(t *testing.T) {
		s := open(t, t.TempDir())
		defer mustClose(t, s)
		fold(t, s, Fixture())
		stop := errors.New("stop here")
		calls := 0
		err := s.ForEachInRange("", func(e slipstream.Entry) error {
			calls++
			if calls == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 2 {
			t.Fatalf("callback error on the 2nd entry: err %v after %d calls, want it after exactly 2", err, calls)
		}
		// The store is still usable after an aborted scan.
		if got := dump(t, s, "svc."); len(got) != 2 {
			t.Fatalf("scan after an aborted scan: %q", got)
		}
		// A callback may read the store.
		err = s.ForEachInRange("node.", func(e slipstream.Entry) error {
			if _, ok, err := s.Get(e.Key); !ok || err != nil {
				return fmt.Errorf("Get(%q) inside a scan: %v %w", e.Key, ok, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("handed_out_values_are_not_the_fold", func(t *testing.T) {
		// A caller writing into a value it was handed, or appending to
		// it, changes its copy only: not the fold, not what a later read,
		// an export or a reopen sees.
		dir := t.TempDir()
		s := open(t, dir)
		fold(t, s, Fixture())
		scribble := func(v []byte) {
			for i := range v {
				v[i] = '#'
			}
			_ = append(v[:len(v):cap(v)], "#####"...) // into any spare capacity
		}
		if e, ok, err := s.Get("node.a"); err == nil && ok {
			scribble(e.Value)
		}
		err := s.ForEachInRange("", func(e slipstream.Entry) error {
			scribble(e.Value)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		assertState(t, s, cur(7), expected)
		for _, k := range []string{"node.a", "node.c", "svc.x", "svc.y"} {
			if e, ok, err := s.Get(k); err != nil || !ok || bytes.Contains(e.Value, []byte("#")) {
				t.Fatalf("Get(%q) after scribbling on handed-out values = %q, %v, %v", k, e.Value, ok, err)
			}
		}
		dest := filepath.Join(t.TempDir(), "export")
		if _, err := s.ExportTo(dest); err != nil {
			t.Fatal(err)
		}
		e := open(t, dest)
		assertState(t, e, cur(7), expected)
		mustClose(t, e)
		mustClose(t, s)
		s = open(t, dir)
		defer mustClose(t, s)
		assertState(t, s, cur(7), expected)
	})

	t.Run("key_order_is_bytewise", func(t *testing.T) {
		s := open(t, t.TempDir())
		defer mustClose(t, s)
		keys := []string{"b", "a", "a.b", "a\x7f", "aa", "é", "z", "a.", "", "ab.c", "\u00e9t\u00e9", "\U0001F600"}
		var batch []slipstream.Update
		for i, k := range keys {
			batch = append(batch, slipstream.Put(k, []byte(k), rev(uint64(i+1))))
		}
		if err := s.Apply(batch, cur(uint64(len(keys)))); err != nil {
			t.Fatal(err)
		}
		var got []string
		s.ForEachInRange("", func(e slipstream.Entry) error { got = append(got, e.Key); return nil })
		want := slices.Clone(keys)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("scan order %q, want byte order %q", got, want)
		}
		got = got[:0]
		s.ForEachInRange("a", func(e slipstream.Entry) error { got = append(got, e.Key); return nil })
		if !slices.Equal(got, []string{"a", "a.", "a.b", "aa", "ab.c", "a\x7f"}) {
			t.Fatalf("prefix a: %q", got)
		}
	})

	t.Run("cursor_resume", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		fold(t, s, Fixture()[:3])
		mustClose(t, s)
		s = open(t, dir)
		if s.Cursor() != cur(3) {
			t.Fatalf("cursor after reopen %v, want 3", s.Cursor())
		}
		fold(t, s, Fixture()[3:])
		mustClose(t, s)
		s = open(t, dir)
		defer mustClose(t, s)
		assertState(t, s, cur(7), expected)
	})

	t.Run("pure_fold_property", func(t *testing.T) {
		ref := open(t, t.TempDir())
		defer mustClose(t, ref)
		fold(t, ref, Fixture())
		dir := filepath.Join(t.TempDir(), "victim")
		victim := open(t, dir)
		fold(t, victim, Fixture()[:4])
		mustClose(t, victim)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		victim = open(t, dir)
		defer mustClose(t, victim)
		assertState(t, victim, slipstream.Cursor{}, []string{})
		fold(t, victim, Fixture())
		if a, b := dump(t, ref, ""), dump(t, victim, ""); !slices.Equal(a, b) || !slices.Equal(a, expected) {
			t.Fatalf("refold %q differs from reference %q", b, a)
		}
	})

	t.Run("purge", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		apply(t, s, cur(2), slipstream.Put("a", []byte("1"), rev(1)), slipstream.Put("b", []byte("2"), rev(2)))
		apply(t, s, cur(3), slipstream.Update{Op: slipstream.OpPurge, Key: "a", Version: rev(3)})
		assertState(t, s, cur(3), []string{"b=2@2"})
		mustClose(t, s)
		s = open(t, dir)
		defer mustClose(t, s)
		assertState(t, s, cur(3), []string{"b=2@2"})
	})

	t.Run("empty_batch_advances_cursor", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		fold(t, s, Fixture()[:3])
		if err := s.Apply(nil, cur(9)); err != nil {
			t.Fatal(err)
		}
		if s.Cursor() != cur(9) {
			t.Fatalf("cursor %v after an empty batch", s.Cursor())
		}
		mustClose(t, s)
		s = open(t, dir)
		defer mustClose(t, s)
		assertState(t, s, cur(9), []string{"node.a=v1@1", "node.b=v2@2", "svc.x=sx@3"})
	})

	t.Run("empty_value_round_trip", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		apply(t, s, cur(1), slipstream.Put("lock", nil, rev(1)))
		check := func(s slipstream.Store) {
			t.Helper()
			e, ok, err := s.Get("lock")
			if err != nil || !ok || len(e.Value) != 0 || e.Version != rev(1) {
				t.Fatalf("Get(lock) = %+v, %v, %v; want a present empty entry at 1", e, ok, err)
			}
			assertState(t, s, cur(1), []string{"lock=@1"})
		}
		check(s)
		mustClose(t, s)
		s = open(t, dir)
		defer mustClose(t, s)
		check(s)
	})

	t.Run("version_tokens_round_trip", func(t *testing.T) {
		dir := t.TempDir()
		v10, _ := slipstream.VersionFromBytes([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff})
		v3, _ := slipstream.VersionFromBytes([]byte{9, 8, 7})
		s := open(t, dir)
		apply(t, s, slipstream.CursorAt(v10),
			slipstream.Put("ten", []byte("x"), v10),
			slipstream.Put("three", []byte("y"), v3),
			slipstream.Put("unknown", []byte("z"), slipstream.Version{}))
		check := func(s slipstream.Store) {
			t.Helper()
			for k, v := range map[string]slipstream.Version{"ten": v10, "three": v3, "unknown": {}} {
				e, ok, err := s.Get(k)
				if err != nil || !ok || e.Version != v || !bytes.Equal(e.Version.Bytes(), v.Bytes()) {
					t.Fatalf("Get(%q) version %v (%v, %v), want %v", k, e.Version, ok, err, v)
				}
			}
			if s.Cursor() != slipstream.CursorAt(v10) {
				t.Fatalf("cursor %v, want the 10-byte token %v", s.Cursor(), v10)
			}
		}
		check(s)
		mustClose(t, s)
		s = open(t, dir)
		defer mustClose(t, s)
		check(s)
	})

	t.Run("close_without_flush_then_reopen", func(t *testing.T) {
		// A long randomised history of small batches, closed with no
		// explicit flush, reopened and compared with a model three times.
		dir := t.TempDir()
		m := newModel()
		rng := rand.New(rand.NewPCG(1, 2))
		for round := range 3 {
			s := open(t, dir)
			m.check(t, s, fmt.Sprintf("reopen %d", round))
			for range 40 {
				batch := m.randomBatch(rng, rng.IntN(12))
				if err := s.Apply(batch, m.cursor); err != nil {
					t.Fatal(err)
				}
			}
			m.check(t, s, fmt.Sprintf("round %d before close", round))
			mustClose(t, s)
		}
		s := open(t, dir)
		defer mustClose(t, s)
		m.check(t, s, "final reopen")
	})

	t.Run("export_round_trip", func(t *testing.T) {
		s := open(t, t.TempDir())
		defer mustClose(t, s)
		fold(t, s, Fixture()[:4])
		mid := filepath.Join(t.TempDir(), "at-4")
		if _, err := s.ExportTo(mid); err != nil {
			t.Fatalf("ExportTo: %v", err)
		}
		fold(t, s, Fixture()[4:])
		dest := filepath.Join(t.TempDir(), "export")
		exp, err := s.ExportTo(dest)
		if err != nil {
			t.Fatalf("ExportTo: %v", err)
		}
		if exp.Cursor != cur(7) || s.Cursor() != cur(7) || exp.Backend == "" || exp.BackendVersion == "" {
			t.Fatalf("export %+v, live cursor %v", exp, s.Cursor())
		}
		checkFiles(t, dest, exp.Files)
		// The live store is unharmed by the export.
		assertState(t, s, cur(7), expected)

		e := open(t, dest)
		assertState(t, e, cur(7), expected)
		mustClose(t, e)

		// An export resumes: fold the rest of the history on top of it.
		e = open(t, mid)
		defer mustClose(t, e)
		assertState(t, e, cur(4), []string{"node.a=v1b@4", "node.b=v2@2", "svc.x=sx@3"})
		fold(t, e, Fixture()[4:])
		assertState(t, e, cur(7), expected)
	})

	t.Run("export_into_empty_dir", func(t *testing.T) {
		s := open(t, t.TempDir())
		defer mustClose(t, s)
		fold(t, s, Fixture())
		dest := t.TempDir() // exists, empty
		exp, err := s.ExportTo(dest)
		if err != nil {
			t.Fatalf("ExportTo an empty directory: %v", err)
		}
		checkFiles(t, dest, exp.Files)
		e := open(t, dest)
		defer mustClose(t, e)
		assertState(t, e, cur(7), expected)
	})

	t.Run("export_rejects_nonempty_dest", func(t *testing.T) {
		s := open(t, t.TempDir())
		defer mustClose(t, s)
		fold(t, s, Fixture())
		dest := t.TempDir()
		stray := filepath.Join(dest, "stray")
		if err := os.WriteFile(stray, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ExportTo(dest); !errors.Is(err, slipstream.ErrArtifactInvalid) {
			t.Fatalf("ExportTo a non-empty directory = %v, want ErrArtifactInvalid", err)
		}
		if b, err := os.ReadFile(stray); err != nil || string(b) != "keep me" {
			t.Fatalf("stray file touched: %q, %v", b, err)
		}
		if des, _ := os.ReadDir(dest); len(des) != 1 {
			t.Fatalf("export left files beside the stray one: %v", des)
		}
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, []byte("a file"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ExportTo(file); !errors.Is(err, slipstream.ErrArtifactInvalid) {
			t.Fatalf("ExportTo a file = %v, want ErrArtifactInvalid", err)
		}
		if b, _ := os.ReadFile(file); string(b) != "a file" {
			t.Fatal("export destination file modified")
		}
		// A retry into a fresh destination succeeds.
		if _, err := s.ExportTo(filepath.Join(t.TempDir(), "fresh")); err != nil {
			t.Fatalf("retry: %v", err)
		}
	})

	t.Run("export_empty_store", func(t *testing.T) {
		s := open(t, t.TempDir())
		defer mustClose(t, s)
		dest := filepath.Join(t.TempDir(), "export")
		exp, err := s.ExportTo(dest)
		if err != nil {
			t.Fatalf("ExportTo: %v", err)
		}
		if !exp.Cursor.IsNone() {
			t.Fatalf("export cursor %v, want none", exp.Cursor)
		}
		checkFiles(t, dest, exp.Files)
		e := open(t, dest)
		defer mustClose(t, e)
		assertState(t, e, slipstream.Cursor{}, []string{})
	})

	t.Run("use_after_close", func(t *testing.T) {
		s := open(t, t.TempDir())
		fold(t, s, Fixture())
		mustClose(t, s)
		if err := s.Apply(Fixture()[:1], cur(1)); !errors.Is(err, slipstream.ErrClosed) {
			t.Fatalf("Apply after Close = %v", err)
		}
		if _, _, err := s.Get("node.a"); !errors.Is(err, slipstream.ErrClosed) {
			t.Fatalf("Get after Close = %v", err)
		}
		if err := s.ForEachInRange("", func(slipstream.Entry) error { return nil }); !errors.Is(err, slipstream.ErrClosed) {
			t.Fatalf("ForEachInRange after Close = %v", err)
		}
		if _, err := s.ExportTo(filepath.Join(t.TempDir(), "x")); !errors.Is(err, slipstream.ErrClosed) {
			t.Fatalf("ExportTo after Close = %v", err)
		}
		if err := s.Close(); !errors.Is(err, slipstream.ErrClosed) {
			t.Fatalf("second Close = %v", err)
		}
	})

	t.Run("concurrent_reads_during_apply", func(t *testing.T) {
		concurrentReads(t, open(t, t.TempDir()))
	})
}

func apply(t testing.TB, s slipstream.Store, c slipstream.Cursor, batch ...slipstream.Update) {
	t.Helper()
	if err := s.Apply(batch, c); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// checkFiles verifies an export's file list: non-empty, sorted, relative
// with forward slashes, every file a regular file under dir.
func checkFiles(t testing.TB, dir string, files []string) {
	t.Helper()
	if len(files) == 0 || !slices.IsSorted(files) {
		t.Fatalf("export files %q: want a sorted, non-empty list", files)
	}
	for _, f := range files {
		if filepath.IsAbs(f) || strings.Contains(f, `\`) || strings.HasPrefix(f, "../") {
			t.Fatalf("export file %q is not a clean relative path", f)
		}
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("export file %q: %v (mode %v)", f, err, fi)
		}
	}
}

// model is the reference fold of a randomised history.
type model struct {
	state  map[string]string // key → value@version
	keys   []string
	next   uint64
	cursor slipstream.Cursor
}

func newModel() *model {
	m := &model{state: map[string]string{}}
	for i := range 40 {
		m.keys = append(m.keys, fmt.Sprintf("k.%02d.%s", i%7, strings.Repeat("x", i%5)))
	}
	m.keys = append(m.keys, "é", "k", "")
	return m
}

// randomBatch returns n random updates (puts, some empty; deletes; purges)
// already folded into the model, and advances the model's cursor. An empty
// batch still advances the cursor.
func (m *model) randomBatch(rng *rand.Rand, n int) []slipstream.Update {
	batch := make([]slipstream.Update, 0, n)
	for range n {
		m.next++
		k := m.keys[rng.IntN(len(m.keys))]
		v := rev(m.next)
		switch r := rng.IntN(10); {
		case r < 6:
			val := bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(40))
			batch = append(batch, slipstream.Put(k, val, v))
			m.state[k] = fmt.Sprintf("%s@%s", val, v)
		case r < 8:
			batch = append(batch, slipstream.Delete(k, v))
			delete(m.state, k)
		default:
			batch = append(batch, slipstream.Update{Op: slipstream.OpPurge, Key: k, Version: v})
			delete(m.state, k)
		}
	}
	m.next++
	m.cursor = cur(m.next)
	return batch
}

func (m *model) dump(prefix string) []string {
	var keys []string
	for k := range m.state {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := []string{}
	for _, k := range keys {
		out = append(out, k+"="+m.state[k])
	}
	return out
}

func (m *model) check(t testing.TB, s slipstream.Store, when string) {
	t.Helper()
	if s.Cursor() != m.cursor {
		t.Fatalf("%s: cursor %v, want %v", when, s.Cursor(), m.cursor)
	}
	for _, p := range []string{"", "k.", "k.03.", "é", "zz"} {
		if got, want := dump(t, s, p), m.dump(p); !slices.Equal(got, want) {
			t.Fatalf("%s: range %q\n got %q\nwant %q", when, p, got, want)
		}
	}
	for _, k := range m.keys {
		e, ok, err := s.Get(k)
		want, live := m.state[k]
		if err != nil || ok != live || (ok && fmt.Sprintf("%s@%s", e.Value, e.Version) != want) {
			t.Fatalf("%s: Get(%q) = %+v %v %v, want %q present=%v", when, k, e, ok, err, want, live)
		}
	}
}

// concurrentReads runs readers beside a writer. Every value a reader sees
// must be one the writer wrote for that key at that version, scans must be
// strictly ascending, and the cursor must never run ahead of the data: once
// Cursor reports a batch, a Get of that batch's marker key sees it.
func concurrentReads(t *testing.T, s slipstream.Store) {
	defer mustClose(t, s)
	const batches, perBatch, keys = 150, 40, 300
	key := func(i int) string { return fmt.Sprintf("c.%03d", i%keys) }
	var done atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	for r := range 3 {
		wg.Go(func() {
			for !done.Load() {
				c := s.Cursor()
				if n, ok := c.Uint64(); ok && n > 0 {
					// Marker written in batch n: value encodes the batch.
					e, ok, err := s.Get("marker")
					if err != nil {
						report(fmt.Errorf("reader %d: Get(marker) at cursor %d: %w", r, n, err))
						return
					}
					if !ok {
						report(fmt.Errorf("reader %d: marker absent at cursor %d", r, n))
						return
					}
					if got := vrank(e.Version); got < n {
						report(fmt.Errorf("reader %d: cursor %d ahead of the data (marker at %d)", r, n, got))
						return
					}
				}
				last := ""
				first := true
				err := s.ForEachInRange("c.", func(e slipstream.Entry) error {
					if !first && e.Key <= last {
						return fmt.Errorf("scan not strictly ascending: %q after %q", e.Key, last)
					}
					first, last = false, e.Key
					if want := fmt.Sprintf("%s@%d", e.Key, vrank(e.Version)); string(e.Value) != want {
						return fmt.Errorf("entry %q has value %q, never written at version %v", e.Key, e.Value, e.Version)
					}
					return nil
				})
				if err != nil {
					report(fmt.Errorf("reader %d: %w", r, err))
					return
				}
				k := key(int(rand.Uint32()))
				e, ok, err := s.Get(k)
				if err != nil {
					report(fmt.Errorf("reader %d: Get(%q): %w", r, k, err))
					return
				}
				if ok && string(e.Value) != fmt.Sprintf("%s@%d", k, vrank(e.Version)) {
					report(fmt.Errorf("reader %d: Get(%q) = %q, never written at version %v", r, k, e.Value, e.Version))
					return
				}
			}
		})
	}
	v := uint64(0)
	for b := 1; b <= batches; b++ {
		batch := make([]slipstream.Update, 0, perBatch+1)
		for i := range perBatch {
			v++
			k := key(b*perBatch + i*7)
			if (b+i)%9 == 0 {
				batch = append(batch, slipstream.Delete(k, rev(v)))
				continue
			}
			batch = append(batch, slipstream.Put(k, fmt.Appendf(nil, "%s@%d", k, v), rev(v)))
		}
		v++
		batch = append(batch, slipstream.Put("marker", nil, rev(v)))
		if err := s.Apply(batch, cur(v)); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// RunLocking checks the single-writer lock: while a fold is open, a second
// open of the same directory fails with an error wrapping
// [slipstream.ErrLocked] that names the directory, the first handle keeps
// working, and once it is closed the fold opens again.
func RunLocking(t *testing.T, open func(dir string) (slipstream.Store, error)) {
	dir := filepath.Join(t.TempDir(), "fold")
	s, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, cur(1), slipstream.Put("a", []byte("1"), rev(1)))
	s2, err := open(dir)
	if err == nil {
		s2.Close()
		s.Close()
		t.Fatal("second open of a held fold succeeded")
	}
	if !errors.Is(err, slipstream.ErrLocked) || !strings.Contains(err.Error(), dir) {
		s.Close()
		t.Fatalf("second open = %v, want ErrLocked naming %s", err, dir)
	}
	apply(t, s, cur(2), slipstream.Put("b", []byte("2"), rev(2)))
	assertState(t, s, cur(2), []string{"a=1@1", "b=2@2"})
	mustClose(t, s)
	s, err = open(dir)
	if err != nil {
		t.Fatalf("open after Close: %v", err)
	}
	defer mustClose(t, s)
	assertState(t, s, cur(2), []string{"a=1@1", "b=2@2"})
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		t.Fatal("fold directory missing")
	}
}

// vrank returns the revision of an 8-byte version, else 0.
func vrank(v slipstream.Version) uint64 {
	n, _ := v.Uint64()
	return n
}
