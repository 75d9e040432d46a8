package applog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// discard is a logger for stores whose log lines a test does not read.
var discard = slog.New(slog.DiscardHandler)

// fill returns records exactly n bytes long: nothing (0), a none CURSOR
// (6), or a PUT of the empty key with no version and a value of the rest
// (12 and more). Other lengths cannot be filled; fill reports false.
func fill(n int) ([]byte, bool) {
	switch {
	case n == 0:
		return nil, true
	case n == minRecordLen:
		return appendCursor(nil, slipstream.Cursor{}), true
	case n >= 12:
		return appendPut(nil, "", make([]byte, n-12), slipstream.Version{}), true
	}
	return nil, false
}

// recordKind is one shape of record the loader must frame.
type recordKind struct {
	name string
	rec  []byte
}

// recordKinds returns every shape of record: each type, with short and
// long keys, empty and non-empty values and versions.
func recordKinds(t testing.TB) []recordKind {
	v10 := version10(t, 3)
	return []recordKind{
		{"put", put("k", "v", 2)},
		{"put empty value", appendPut(nil, "k", nil, rev(2))},
		{"put no version", appendPut(nil, "k", []byte("v"), slipstream.Version{})},
		{"put 10-byte version", appendPut(nil, "k", []byte("v"), v10)},
		{"put 100-byte value", appendPut(nil, "key.long", bytes.Repeat([]byte{0xA5}, 100), rev(2))},
		{"delete", del("k", 2)},
		{"delete no version", appendDelete(nil, "k", slipstream.Version{})},
		{"delete 10-byte version", appendDelete(nil, "key.long", v10)},
		{"cursor", ckpt(2)},
		{"cursor 10 bytes", appendCursor(nil, slipstream.CursorAt(v10))},
		{"none cursor", appendCursor(nil, slipstream.Cursor{})},
	}
}

// logAt returns header ‖ filler ‖ rec ‖ tail with rec starting at offset
// at, or false when no filler is exactly at-headerLen bytes long.
func logAt(at int, rec, tail []byte) ([]byte, bool) {
	f, ok := fill(at - headerLen)
	if !ok {
		return nil, false
	}
	return slices.Concat(appendHeader(nil), f, rec, tail), true
}

// modelReplay replays a log as one whole buffer: what every open path must
// agree with.
func modelReplay(data []byte) (snapshotSink, replayResult, error) {
	m := snapshotSink{}
	res, err := replay(data, m)
	return m, res, err
}

// storeState reads a store's whole state through its public reads.
func storeState(t testing.TB, s *Store) map[string]slipstream.Entry {
	t.Helper()
	got := map[string]slipstream.Entry{}
	err := s.ForEachInRange("", func(e slipstream.Entry) error {
		got[e.Key] = slipstream.Entry{Key: e.Key, Value: bytes.Clone(e.Value), Version: e.Version}
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if n := s.count(); n != len(got) {
		t.Fatalf("Len %d, scan found %d", n, len(got))
	}
	for k, e := range got {
		g, ok, err := s.Get(k)
		if err != nil || !ok || !entryEqual(g, e) {
			t.Fatalf("Get(%q) = %+v %v %v, scan %+v", k, g, ok, err, e)
		}
	}
	return got
}

// sameFailure checks that err fails like the model's error: the same
// sentinel, as a *FormatError at the same offset.
func sameFailure(t testing.TB, what string, err, model error) {
	t.Helper()
	fe, ok := errors.AsType[*FormatError](err)
	me, _ := errors.AsType[*FormatError](model)
	if !ok || me == nil || fe.Offset != me.Offset || !errors.Is(err, me.Err) {
		t.Fatalf("%s: error %v, want the model's %v", what, err, model)
	}
}

// openPaths selects what checkOpenPaths exercises.
type openPaths uint8

const (
	viaReadOnly openPaths = 1 << iota // OpenReadOnly
	viaLoad                           // Load
	viaOpen                           // Open
	viaReopen                         // Open, then Apply, Close and Open again

	allPaths = viaReadOnly | viaLoad | viaOpen | viaReopen
)

// checkOpenPaths loads the log data through the selected paths (OpenReadOnly,
// Load, Open), reading through windows of sz, and compares each with the
// replay of the whole buffer: the same error (and the file left as it
// was), or the same entries and cursor. Load must leave a file that replays
// compactly to the same state; with viaReopen, Open must then take a batch
// and reopen with it.
func checkOpenPaths(t testing.TB, data []byte, sz loadSizes, paths openPaths) {
	t.Helper()
	model, res, merr := modelReplay(data)
	if merr != nil {
		if _, ok := errors.AsType[*FormatError](merr); !ok {
			t.Fatalf("model replay: untyped error %v", merr)
		}
	}
	if paths&viaReadOnly != 0 {
		checkReadOnly(t, data, sz, model, res, merr)
	}
	if paths&viaLoad != 0 {
		checkLoad(t, data, sz, model, res, merr)
	}
	if paths&(viaOpen|viaReopen) != 0 {
		checkOpen(t, data, sz, model, res, merr, paths&viaReopen != 0)
	}
}

// foldOf writes data as the log of a new fold directory.
func foldOf(t testing.TB, data []byte) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, FileName)
	writeFile(t, path, data)
	return dir, path
}

func unchanged(t testing.TB, what, path string, data []byte) {
	t.Helper()
	if got := readFile(t, path); !bytes.Equal(got, data) {
		t.Fatalf("%s modified the file", what)
	}
}

// checkReadOnly: OpenReadOnly agrees with the model and never writes.
func checkReadOnly(t testing.TB, data []byte, sz loadSizes, model snapshotSink, res replayResult, merr error) {
	t.Helper()
	dir, path := foldOf(t, data)
	ro, err := openReadOnly(dir, sz)
	if merr != nil {
		sameFailure(t, "OpenReadOnly", err, merr)
	} else {
		if err != nil {
			t.Fatalf("OpenReadOnly: %v", err)
		}
		if got := storeState(t, ro); !maps.EqualFunc(got, map[string]slipstream.Entry(model), entryEqual) || ro.Cursor() != res.cursor {
			t.Fatalf("OpenReadOnly: state %v cursor %v, want %v cursor %v", got, ro.Cursor(), model, res.cursor)
		}
		ro.Close()
	}
	unchanged(t, "OpenReadOnly", path, data)
}

// checkLoad: Load agrees with the model, and repairs the file into a
// compact one (leaving a compact one as it was).
func checkLoad(t testing.TB, data []byte, sz loadSizes, model snapshotSink, res replayResult, merr error) {
	t.Helper()
	_, path := foldOf(t, data)
	snap, ok, err := loadSized(noSyncFS{}, path, sz)
	if merr != nil {
		sameFailure(t, "Load", err, merr)
		unchanged(t, "a failed Load", path, data)
	} else {
		empty := len(model) == 0 && res.cursor.IsNone()
		if err != nil || ok == empty {
			t.Fatalf("Load: ok %v, err %v (model: %d entries, cursor %v)", ok, err, len(model), res.cursor)
		}
		if ok && (!maps.EqualFunc(snap.Entries, map[string]slipstream.Entry(model), entryEqual) || snap.Cursor != res.cursor) {
			t.Fatalf("Load: state %v cursor %v, want %v cursor %v", snap.Entries, snap.Cursor, model, res.cursor)
		}
		after := readFile(t, path)
		again, res2, err := modelReplay(after)
		if err != nil || !res2.compact || !maps.EqualFunc(again, model, entryEqual) || res2.cursor != res.cursor {
			t.Fatalf("Load left a file that replays to %v %v (compact %v, err %v)", again, res2.cursor, res2.compact, err)
		}
		if res.compact && !empty && !bytes.Equal(after, data) {
			t.Fatal("Load rewrote a compact file")
		}
	}
}

// checkOpen: Open agrees with the model; with reopen, it then takes a
// batch and reopens with it.
func checkOpen(t testing.TB, data []byte, sz loadSizes, model snapshotSink, res replayResult, merr error, reopen bool) {
	t.Helper()
	dir, path := foldOf(t, data)
	s, err := openFold(dir, &Options{Logger: discard}, noSyncFS{}, sz)
	if merr != nil {
		sameFailure(t, "Open", err, merr)
		unchanged(t, "a failed Open", path, data)
		return
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := storeState(t, s); !maps.EqualFunc(got, map[string]slipstream.Entry(model), entryEqual) || s.Cursor() != res.cursor {
		t.Fatalf("Open: state %v cursor %v, want %v cursor %v", got, s.Cursor(), model, res.cursor)
	}
	if !reopen {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	model = maps.Clone(model)
	next := slipstream.Put("zz.after", []byte("x"), rev(1<<40))
	if err := s.Apply([]slipstream.Update{next}, cur(1<<40)); err != nil {
		t.Fatalf("Apply after Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = openFold(dir, &Options{Logger: discard}, noSyncFS{}, sz)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	model[next.Key] = slipstream.Entry{Key: next.Key, Value: next.Value, Version: next.Version}
	if got := storeState(t, s); !maps.EqualFunc(got, map[string]slipstream.Entry(model), entryEqual) || s.Cursor() != cur(1<<40) {
		t.Fatalf("reopen: state %v cursor %v, want %v", got, s.Cursor(), model)
	}
}

// TestOpenReproducers are the two logs that made Open panic (issue 14):
// a CRC-clean log larger than 4 MiB with a DELETE starting 6 bytes before
// the 4 MiB mark, and a torn tail holding exactly the first 6 bytes of a
// DELETE. Both must load through Open, OpenReadOnly and Load.
func TestOpenReproducers(t *testing.T) {
	tail := slices.Concat(put("kept", "v", 3), ckpt(3))
	deleteAt4MiB, ok := logAt(4<<20-6, del("gone", 2), tail)
	if !ok {
		t.Fatal("no filler")
	}
	tornDelete := slices.Concat(appendHeader(nil), tail, del("gone", 4)[:6])
	for name, data := range map[string][]byte{
		"delete 6 bytes before 4 MiB": deleteAt4MiB,
		"torn tail of 6 delete bytes": tornDelete,
	} {
		t.Run(name, func(t *testing.T) {
			checkOpenPaths(t, data, defaultSizes, allPaths)
			// Through the exported entry points too.
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, FileName), data)
			ro, err := OpenReadOnly(dir)
			if err != nil {
				t.Fatalf("OpenReadOnly: %v", err)
			}
			ro.Close()
			if _, _, err := Load(filepath.Join(dir, FileName)); err != nil {
				t.Fatalf("Load: %v", err)
			}
			s, err := Open(dir, &Options{Logger: discard})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			e, ok, err := s.Get("kept")
			if err != nil || !ok || string(e.Value) != "v" || s.Cursor() != cur(3) {
				t.Fatalf("kept = %q %v %v, cursor %v", e.Value, ok, err, s.Cursor())
			}
			if _, ok, _ := s.Get("gone"); ok {
				t.Fatal("a deleted key is live")
			}
			s.Close()
		})
	}
}

// sweepWindows are read windows that put the loader's boundaries inside
// logs of a few dozen bytes: one smaller than most records (the window
// grows), one larger (records straddle its end).
var sweepWindows = []int{7, 64}

// boundaryOffsets returns the offsets d, from the start of a record of n
// bytes, at which to put a window boundary: every one from before the
// record to after it, except deep inside a long record's value, where all
// offsets read alike.
func boundaryOffsets(n int) []int {
	var ds []int
	for d := -2; d <= n+2; d++ {
		if n <= 40 || d < 24 || d > n-12 {
			ds = append(ds, d)
		}
	}
	return ds
}

// TestEveryRecordAtEveryWindowOffset places each record kind at every
// offset around a window boundary (from wholly after it to wholly before
// it) and opens the log through OpenReadOnly and Open, with small windows.
// The code path is the same for every window size; the real one (1 MiB) is
// checked on a record of each type at the offsets where each of its
// fields begins and ends, through Open.
func TestEveryRecordAtEveryWindowOffset(t *testing.T) {
	tail := slices.Concat(put("zz.tail", "t", 9), ckpt(9))
	for _, w := range sweepWindows {
		for _, k := range recordKinds(t) {
			t.Run(fmt.Sprintf("window=%d/%s", w, k.name), func(t *testing.T) {
				for _, d := range boundaryOffsets(len(k.rec)) {
					if data, ok := logAt(w-d, k.rec, tail); ok && w-d >= headerLen {
						checkOpenPaths(t, data, loadSizes{window: w}, viaReadOnly|viaOpen)
					}
				}
			})
		}
	}
	v10 := version10(t, 5)
	for _, k := range []recordKind{
		{"put", appendPut(nil, "key", []byte("value"), v10)},
		{"delete", appendDelete(nil, "key", v10)},
		{"cursor", appendCursor(nil, slipstream.CursorAt(v10))},
	} {
		t.Run("window=readWindow/"+k.name, func(t *testing.T) {
			n := len(k.rec)
			for _, d := range []int{-1, 0, 1, 4, 5, 6, 7, 8, 10, n - 11, n - 10, n - 2, n - 1, n, n + 1} {
				data, _ := logAt(readWindow-d, k.rec, tail)
				checkOpenPaths(t, data, defaultSizes, viaOpen)
			}
		})
	}
}

// TestTornTailOfEveryRecordKind cuts each record kind at every length and
// opens the log through OpenReadOnly and Open, with a small window and the
// real one: the torn record is dropped, the rest kept, the file repaired.
func TestTornTailOfEveryRecordKind(t *testing.T) {
	head := slices.Concat(put("a", "1", 1), ckpt(1))
	want := map[string]slipstream.Entry{"a": {Key: "a", Value: []byte("1"), Version: rev(1)}}
	for _, w := range []int{7, readWindow} {
		for _, k := range recordKinds(t) {
			t.Run(fmt.Sprintf("window=%d/%s", w, k.name), func(t *testing.T) {
				for cut := range len(k.rec) {
					data := slices.Concat(appendHeader(nil), head, k.rec[:cut])
					m, res, err := modelReplay(data)
					if err != nil || !maps.EqualFunc(m, snapshotSink(want), entryEqual) || res.cursor != cur(1) || res.cleanEOF != (cut == 0) {
						t.Fatalf("cut %d: model replay %v %v clean %v, %v", cut, m, res.cursor, res.cleanEOF, err)
					}
					checkOpenPaths(t, data, loadSizes{window: w}, viaReadOnly|viaOpen)
				}
			})
		}
	}
}

// FuzzOpen feeds arbitrary logs through the whole open path — OpenReadOnly,
// Load and Open (replay through a sliding window, the table, the repair,
// an Apply and a reopen) — read through a window of the fuzzed size (0: the
// real one). Every path must agree with the replay of the whole buffer: the
// same typed error with the file untouched, or the same state. Seeds:
// testdata/fuzz/FuzzOpen (among them the two logs that made Open panic,
// issue 14), the golden files, and a log of every record kind.
func FuzzOpen(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.snap"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(0))
		f.Add(b, uint16(13))
	}
	all := appendHeader(nil)
	for _, k := range recordKinds(f) {
		all = append(all, k.rec...)
	}
	f.Add(all, uint16(0))
	f.Add(all, uint16(7))
	f.Fuzz(func(t *testing.T, data []byte, window uint16) {
		sz := defaultSizes
		if window > 0 {
			sz.window = int(window)
		}
		checkOpenPaths(t, data, sz, allPaths)
	})
}
