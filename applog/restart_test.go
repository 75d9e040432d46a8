package applog

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// logFileState identifies the log file on disk: an Open that rewrites it
// renames a new file into place (a new inode).
type logFileState struct {
	fi   os.FileInfo
	data []byte
}

func statLog(t testing.TB, dir string) logFileState {
	t.Helper()
	path := filepath.Join(dir, FileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return logFileState{fi: fi, data: readFile(t, path)}
}

// hydrateInBatches folds keys k.0000.. in batches of per, one cursor per
// batch (as a follower does), starting at revision from.
func hydrateInBatches(t testing.TB, s *Store, keys, per int, from uint64) uint64 {
	t.Helper()
	r := from
	for i := 0; i < keys; i += per {
		var batch []slipstream.Update
		for j := i; j < min(i+per, keys); j++ {
			r++
			batch = append(batch, slipstream.Put(fmt.Sprintf("k.%04d", j), fmt.Appendf(nil, "value of %d at %d", j, r), rev(r)))
		}
		if err := s.Apply(batch, cur(r)); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// TestRestartDoesNotRewriteTheLog restarts a fold whose log holds one
// cursor record per Apply and a few overwrites — garbage far below the
// compaction policy — and requires the log to be left as it is: the same
// file, the same bytes, with a delta applied after the restart appended to
// it. (Every cursor record past the first used to make every restart a full
// rewrite.)
func TestRestartDoesNotRewriteTheLog(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenFold(t, dir, nil)
	r := hydrateInBatches(t, s, 2000, 50, 0)
	r = hydrateInBatches(t, s, 20, 5, r) // overwrites: a little garbage
	want := storeState(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := statLog(t, dir)

	s = mustOpenFold(t, dir, nil)
	after := statLog(t, dir)
	if !os.SameFile(before.fi, after.fi) || !bytes.Equal(before.data, after.data) {
		t.Fatalf("a restart rewrote the log (%d bytes, now %d)", len(before.data), len(after.data))
	}
	if got := storeState(t, s); len(got) != len(want) || s.Cursor() != cur(r) {
		t.Fatalf("restart: %d keys at cursor %v, want %d at %d", len(got), s.Cursor(), len(want), r)
	}
	// A delta after the restart is appended to the same file.
	r = hydrateInBatches(t, s, 30, 10, r)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	delta := statLog(t, dir)
	if !os.SameFile(before.fi, delta.fi) || !bytes.HasPrefix(delta.data, before.data) {
		t.Fatal("the delta did not append to the log")
	}
	s = mustOpenFold(t, dir, nil)
	defer s.Close()
	if !os.SameFile(before.fi, statLog(t, dir).fi) || s.Cursor() != cur(r) {
		t.Fatalf("second restart: rewrote the log, or cursor %v (want %d)", s.Cursor(), r)
	}
}

// TestRestartCompactsWhenTheGarbageIsDue opens a log whose garbage exceeds
// the threshold and the live records (written with compaction off): Open
// rewrites it compactly, as Apply would have. Under a larger threshold the
// same log is left alone.
func TestRestartCompactsWhenTheGarbageIsDue(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenFold(t, dir, &Options{CompactThreshold: math.MaxUint64})
	r := uint64(0)
	for range 6 {
		r = hydrateInBatches(t, s, 200, 50, r) // each pass overwrites every key
	}
	want := storeState(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := statLog(t, dir)
	garbage := len(before.data) / 2 // well over half of the log is overwritten values

	s = mustOpenFold(t, dir, &Options{CompactThreshold: uint64(garbage) * 2})
	if !os.SameFile(before.fi, statLog(t, dir).fi) {
		t.Fatal("Open rewrote a log whose garbage is below the threshold")
	}
	s.Close()

	s = mustOpenFold(t, dir, &Options{CompactThreshold: 1 << 10})
	defer s.Close()
	after := statLog(t, dir)
	if os.SameFile(before.fi, after.fi) || len(after.data) >= len(before.data)/4 {
		t.Fatalf("Open left a log of %d bytes that is mostly garbage (now %d)", len(before.data), len(after.data))
	}
	if m, res, err := modelReplay(after.data); err != nil || !res.compact || len(m) != len(want) || res.cursor != cur(r) {
		t.Fatalf("compacted log: %d keys at %v, compact %v, %v", len(m), res.cursor, res.compact, err)
	}
	if got := storeState(t, s); len(got) != len(want) || s.Cursor() != cur(r) {
		t.Fatalf("after compaction on open: %d keys at %v", len(got), s.Cursor())
	}
}

// TestOpenCutsATornTail opens a log with a torn last record: the file is
// cut back to its last whole record in place (the same file, its bytes a
// prefix of what was there), not rewritten, and later appends load.
func TestOpenCutsATornTail(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenFold(t, dir, nil)
	r := hydrateInBatches(t, s, 100, 10, 0)
	s.Close()
	path := filepath.Join(dir, FileName)
	whole := readFile(t, path)
	torn := append(bytes.Clone(whole), put("k.torn", "xxxxxxxx", r+1)[:15]...)
	if err := os.WriteFile(path, torn, 0o644); err != nil {
		t.Fatal(err)
	}
	before := statLog(t, dir)
	s = mustOpenFold(t, dir, nil)
	after := statLog(t, dir)
	if !os.SameFile(before.fi, after.fi) || !bytes.Equal(after.data, whole) {
		t.Fatalf("torn tail: log is %d bytes (same file %v), want the %d bytes before the torn record", len(after.data), os.SameFile(before.fi, after.fi), len(whole))
	}
	r = hydrateInBatches(t, s, 5, 5, r)
	s.Close()
	s = mustOpenFold(t, dir, nil)
	defer s.Close()
	if n, err := s.Len(); err != nil || n != 100 || s.Cursor() != cur(r) {
		t.Fatalf("after the repair and an append: %d keys (%v) at %v", n, err, s.Cursor())
	}
}

func mustOpenFold(t testing.TB, dir string, opts *Options) *Store {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	o.Logger = discard
	s, err := Open(dir, &o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
