package applog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// logFile writes header ‖ recs to a fresh log and returns its path.
func logFile(t testing.TB, recs ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	writeFile(t, path, append(appendHeader(nil), bytes.Join(recs, nil)...))
	return path
}

func mustLoad(t testing.TB, path string) Snapshot {
	t.Helper()
	snap, ok, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !ok {
		t.Fatal("Load found no snapshot")
	}
	return snap
}

// assertLoadFails checks that loading path fails with sentinel, that the
// message names the file and mentions want, and that the file is unchanged.
func assertLoadFails(t testing.TB, path string, want string, sentinels ...error) {
	t.Helper()
	before := readFile(t, path)
	_, _, err := Load(path)
	if err == nil {
		t.Fatal("Load succeeded, want an error")
	}
	matched := false
	for _, s := range sentinels {
		matched = matched || errors.Is(err, s)
	}
	if !matched {
		t.Fatalf("Load error %v does not wrap any of %v", err, sentinels)
	}
	if _, ok := errors.AsType[*FormatError](err); !ok {
		t.Fatalf("Load error %v is not a *FormatError", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s and mention %q", err, path, want)
	}
	if after := readFile(t, path); !bytes.Equal(before, after) {
		t.Fatalf("failed load modified the file:\nbefore % x\nafter  % x", before, after)
	}
}

func put(k, v string, r uint64) []byte { return appendPut(nil, k, []byte(v), rev(r)) }
func del(k string, r uint64) []byte    { return appendDelete(nil, k, rev(r)) }
func ckpt(r uint64) []byte             { return appendCursor(nil, cur(r)) }

// writeBatches appends batches with the raw writer, one checkpoint each.
func writeBatches(t testing.TB, path string, threshold uint64, batches ...[]slipstream.Update) {
	t.Helper()
	w, err := OpenWriter(path, threshold)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		for _, u := range b {
			if err := w.WriteUpdate(u); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Checkpoint(slipstream.CursorAt(b[len(b)-1].Version)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	writeBatches(t, path, DefaultCompactThreshold, []slipstream.Update{
		slipstream.Put("a", []byte("1"), rev(1)), slipstream.Put("b", []byte("2"), rev(2))})
	snap := mustLoad(t, path)
	if snap.Cursor != cur(2) {
		t.Fatalf("cursor %v", snap.Cursor)
	}
	assertEntries(t, snap.Entries, map[string]string{"a": "1", "b": "2"})
	if snap.Entries["b"].Version != rev(2) {
		t.Fatalf("version of b = %v", snap.Entries["b"].Version)
	}
}

func TestMultipleBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	writeBatches(t, path, DefaultCompactThreshold,
		[]slipstream.Update{slipstream.Put("a", []byte("1"), rev(1))},
		[]slipstream.Update{slipstream.Put("b", []byte("2"), rev(2)), slipstream.Put("a", []byte("3"), rev(3))})
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"a": "3", "b": "2"})
	if snap.Cursor != cur(3) {
		t.Fatalf("cursor %v", snap.Cursor)
	}
}

func TestDeleteAndPurgeRemoveEntry(t *testing.T) {
	for _, op := range []slipstream.Op{slipstream.OpDelete, slipstream.OpPurge} {
		t.Run(op.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			writeBatches(t, path, DefaultCompactThreshold,
				[]slipstream.Update{slipstream.Put("a", []byte("1"), rev(1)), slipstream.Put("b", []byte("2"), rev(2))},
				[]slipstream.Update{{Op: op, Key: "a", Version: rev(3)}})
			snap := mustLoad(t, path)
			assertEntries(t, snap.Entries, map[string]string{"b": "2"})
			if snap.Cursor != cur(3) {
				t.Fatalf("cursor %v", snap.Cursor)
			}
			// A purge is written as a DELETE record: the compacted log is the
			// same either way.
			if !bytes.Equal(readFile(t, path), bytes.Join([][]byte{appendHeader(nil), put("b", "2", 2), ckpt(3)}, nil)) {
				t.Fatalf("unexpected compacted bytes % x", readFile(t, path))
			}
		})
	}
}

func TestMissingFileReturnsNone(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if _, ok, err := Load(path); ok || err != nil {
		t.Fatalf("Load = %v, %v", ok, err)
	}
}

func TestEmptyLogReturnsNone(t *testing.T) {
	path := logFile(t)
	if _, ok, err := Load(path); ok || err != nil {
		t.Fatalf("Load = %v, %v", ok, err)
	}
	if got := readFile(t, path); !bytes.Equal(got, appendHeader(nil)) {
		t.Fatalf("header-only log changed: % x", got)
	}
}

// threeValues is the corrupted-mid-file layout: three 20-byte values,
// each followed by a checkpoint.
func threeValues() [][]byte {
	v := strings.Repeat("v", 20)
	return [][]byte{put("alpha", v, 1), ckpt(1), put("bravo", v, 2), ckpt(2), put("charlie", v, 3), ckpt(3)}
}

func TestCorruptedMidFile(t *testing.T) {
	path := logFile(t, threeValues()...)
	b := readFile(t, path)
	b[46] ^= 0xFF
	writeFile(t, path, b)
	assertLoadFails(t, path, "checksum", slipstream.ErrCorrupt)
}

func TestTruncatedFinalRecordRecovered(t *testing.T) {
	path := logFile(t, put("a", "1", 1), ckpt(1), put("b", "2", 2), ckpt(2))
	b := readFile(t, path)
	writeFile(t, path, b[:len(b)-3])
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"a": "1", "b": "2"})
	if snap.Cursor != cur(1) {
		t.Fatalf("cursor %v, want 1 (the torn record was cursor 2)", snap.Cursor)
	}
	// The torn tail forced a rewrite: the file is now compact and whole.
	want := bytes.Join([][]byte{appendHeader(nil), put("a", "1", 1), put("b", "2", 2), ckpt(1)}, nil)
	if got := readFile(t, path); !bytes.Equal(got, want) {
		t.Fatalf("repaired file\n got % x\nwant % x", got, want)
	}
}

func TestTruncatedTailRepairedThenAppendable(t *testing.T) {
	path := logFile(t, put("a", "1", 1), ckpt(1), put("b", "2", 2), ckpt(2))
	b := readFile(t, path)
	writeFile(t, path, b[:len(b)-3])
	mustLoad(t, path)
	writeBatches(t, path, DefaultCompactThreshold, []slipstream.Update{slipstream.Put("c", []byte("3"), rev(3))})
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"a": "1", "b": "2", "c": "3"})
	if snap.Cursor != cur(3) {
		t.Fatalf("cursor %v", snap.Cursor)
	}
}

func TestRepeatedCursorRecordsTriggerCompaction(t *testing.T) {
	recs := [][]byte{put("a", "1", 1)}
	for i := uint64(1); i <= 10; i++ {
		recs = append(recs, ckpt(i))
	}
	path := logFile(t, recs...)
	before := len(readFile(t, path))
	snap := mustLoad(t, path)
	if snap.Cursor != cur(10) {
		t.Fatalf("cursor %v", snap.Cursor)
	}
	first := readFile(t, path)
	if len(first) >= before {
		t.Fatalf("file did not shrink: %d → %d", before, len(first))
	}
	mustLoad(t, path)
	if second := readFile(t, path); !bytes.Equal(first, second) {
		t.Fatal("second load changed a compact file")
	}
}

func TestAlreadyCompactFileReloadsUnchanged(t *testing.T) {
	path := logFile(t, put("a", "1", 1), put("b", "2", 2), ckpt(2))
	before := readFile(t, path)
	mustLoad(t, path)
	if !bytes.Equal(before, readFile(t, path)) {
		t.Fatal("compact file rewritten")
	}
}

func TestBadMagic(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	writeFile(t, path, append([]byte("XXXX\x01\x00"), put("a", "1", 1)...))
	assertLoadFails(t, path, "magic", slipstream.ErrInvalidFormat)
}

func TestWrongVersionRejected(t *testing.T) {
	for _, v := range []byte{1, 3} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			writeFile(t, path, append([]byte{'P', 'G', 'S', 'S', v, 0}, put("a", "1", 1)...))
			assertLoadFails(t, path, "version", slipstream.ErrInvalidFormat)
		})
	}
}

func TestCompactionOnLoadShrinksFile(t *testing.T) {
	var recs [][]byte
	for i := range uint64(10) {
		recs = append(recs, put("k", fmt.Sprintf("v%d", i), i+1))
	}
	path := logFile(t, recs...)
	before := len(readFile(t, path))
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"k": "v9"})
	if after := len(readFile(t, path)); after >= before {
		t.Fatalf("file did not shrink: %d → %d", before, after)
	}
}

func TestCompactWhenThresholdExceeded(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	w, err := OpenWriter(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	compactions := 0
	for i := range uint64(20) {
		if err := w.WriteUpdate(slipstream.Put("k", fmt.Appendf(nil, "value-%d", i), rev(i+1))); err != nil {
			t.Fatal(err)
		}
		due, err := w.Checkpoint(cur(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		if due {
			if err := w.Compact(); err != nil {
				t.Fatal(err)
			}
			compactions++
			if w.SinceCompact() != 0 {
				t.Fatalf("counter %d after compaction", w.SinceCompact())
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if compactions == 0 {
		t.Fatal("threshold 100 never made a compaction due")
	}
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"k": "value-19"})
	if snap.Cursor != cur(20) {
		t.Fatalf("cursor %v", snap.Cursor)
	}
}

func TestCheckpointThresholdIsStrict(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	// A none cursor record is 6 bytes: exactly the threshold is not due.
	w, err := OpenWriter(path, 6)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if due, err := w.Checkpoint(slipstream.Cursor{}); err != nil || due {
		t.Fatalf("Checkpoint = %v, %v; want not due at exactly the threshold", due, err)
	}
	if due, err := w.Checkpoint(slipstream.Cursor{}); err != nil || !due {
		t.Fatalf("Checkpoint = %v, %v; want due past the threshold", due, err)
	}
	w2, err := OpenWriter(filepath.Join(t.TempDir(), FileName), math.MaxUint64)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if due, _ := w2.Checkpoint(cur(1)); due {
		t.Fatal("MaxUint64 threshold reported a compaction due")
	}
}

func TestReopenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	writeBatches(t, path, DefaultCompactThreshold, []slipstream.Update{slipstream.Put("a", []byte("1"), rev(1))})
	w, err := OpenWriter(path, DefaultCompactThreshold)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.SinceCompact(); got != uint64(22+14) {
		t.Fatalf("counter after reopen = %d, want file size - header = 36", got)
	}
	w.Close()
	writeBatches(t, path, DefaultCompactThreshold, []slipstream.Update{slipstream.Put("b", []byte("2"), rev(2))})
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"a": "1", "b": "2"})
	if !bytes.HasPrefix(readFile(t, path), header[:]) || bytes.Count(readFile(t, path), header[:4]) != 1 {
		t.Fatal("reopen wrote a second header")
	}
}

func TestLargeValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	big := bytes.Repeat([]byte{0xAB}, 100_000)
	writeBatches(t, path, DefaultCompactThreshold, []slipstream.Update{slipstream.Put("big", big, rev(1))})
	snap := mustLoad(t, path)
	if !bytes.Equal(snap.Entries["big"].Value, big) {
		t.Fatal("large value corrupted")
	}
}

func TestCursorOnlySnapshot(t *testing.T) {
	path := logFile(t, ckpt(42))
	snap := mustLoad(t, path)
	if snap.Cursor != cur(42) || len(snap.Entries) != 0 {
		t.Fatalf("snapshot %+v, want cursor 42 and no entries", snap)
	}
}

func TestStaleKeys(t *testing.T) {
	snap := Snapshot{Entries: map[string]slipstream.Entry{"a": {Key: "a"}, "b": {Key: "b"}, "c": {Key: "c"}}}
	got := snap.StaleKeys([]string{"b", "d"})
	if fmt.Sprint(got) != "[a c]" {
		t.Fatalf("StaleKeys = %v, want [a c]", got)
	}
	if got := snap.StaleKeys([]string{"a", "b", "c"}); len(got) != 0 {
		t.Fatalf("StaleKeys = %v, want none", got)
	}
}

func TestNonU64VersionTokenRoundTrips(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	v10 := version10(t, 9)
	v3, _ := slipstream.VersionFromBytes([]byte{1, 2, 3})
	w, err := OpenWriter(path, DefaultCompactThreshold)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []slipstream.Update{
		slipstream.Put("ten", []byte("x"), v10),
		slipstream.Put("three", []byte("y"), v3),
		slipstream.Put("unknown", []byte("z"), slipstream.Version{}),
	} {
		if err := w.WriteUpdate(u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Checkpoint(slipstream.CursorAt(v10)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	snap := mustLoad(t, path)
	if snap.Entries["ten"].Version != v10 || !bytes.Equal(snap.Entries["ten"].Version.Bytes(), v10.Bytes()) {
		t.Fatalf("10-byte version = %v, want %v", snap.Entries["ten"].Version, v10)
	}
	if snap.Entries["three"].Version != v3 || !snap.Entries["unknown"].Version.IsUnknown() {
		t.Fatalf("versions %+v", snap.Entries)
	}
	if snap.Cursor != slipstream.CursorAt(v10) {
		t.Fatalf("cursor %v", snap.Cursor)
	}
}

func TestCompactPreservesUncheckpointedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	w, err := OpenWriter(path, DefaultCompactThreshold)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteUpdate(slipstream.Put("a", []byte("1"), rev(1)))
	w.Checkpoint(cur(1))
	if err := w.WriteUpdate(slipstream.Put("b", []byte("2"), rev(2))); err != nil {
		t.Fatal(err)
	}
	if err := w.Compact(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Checkpoint(cur(2)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"a": "1", "b": "2"})
	if snap.Cursor != cur(2) {
		t.Fatalf("cursor %v", snap.Cursor)
	}
}

// The four crash/bitrot contracts of docs/FORMAT.md ("Replay").

func TestMidFileLengthBitrotIsNotASilentTail(t *testing.T) {
	path := logFile(t, threeValues()...)
	b := readFile(t, path)
	// The second PUT (bravo) starts after the header, PUT alpha (45 bytes)
	// and cursor 1 (14 bytes); its value_len follows crc, type, key_len and
	// the 5-byte key.
	off := 6 + 45 + 14 + 4 + 1 + 2 + 5
	if got := string(b[off-5 : off]); got != "bravo" {
		t.Fatalf("offset arithmetic: %q", got)
	}
	b[off], b[off+1], b[off+2], b[off+3] = 0xff, 0xff, 0xff, 0x7f
	writeFile(t, path, b)
	snap, ok, err := Load(path)
	if err == nil {
		// The only acceptable success keeps bravo and charlie.
		if !ok || len(snap.Entries) != 3 {
			t.Fatalf("load silently dropped the tail: %+v", snap)
		}
		return
	}
	assertLoadFails(t, path, "offset", slipstream.ErrCorrupt, slipstream.ErrInvalidFormat)
}

func TestTornFirstRecordThenApplyIsVisibleAfterReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	writeFile(t, path, append(appendHeader(nil), 0x11, 0x22, 0x33, 0x44, 0x01, 0x00))
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply([]slipstream.Update{slipstream.Put("charlie", []byte("c"), rev(3))}, cur(3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"charlie": "c"})
	if snap.Cursor != cur(3) {
		t.Fatalf("cursor %v", snap.Cursor)
	}
}

func TestTrailingZeroBytesDoNotRejectThePrefix(t *testing.T) {
	path := logFile(t, put("a", "1", 1), put("b", "2", 2), put("c", "3", 3), ckpt(3), make([]byte, 8))
	snap := mustLoad(t, path)
	if len(snap.Entries) != 3 || snap.Cursor != cur(3) {
		t.Fatalf("snapshot %+v", snap)
	}
}

func TestMidFileNULsMustNotDropACRCValidSuffix(t *testing.T) {
	good := bytes.Join([][]byte{appendHeader(nil), put("a", "1", 1), ckpt(1), put("b", "2", 2), ckpt(2)}, nil)
	if len(appendPut(nil, "a", []byte("1"), rev(1))) != 22 {
		t.Fatal("PUT a@1 is not 22 bytes")
	}
	b := bytes.Join([][]byte{good[:42], make([]byte, 5), good[42:]}, nil)
	path := filepath.Join(t.TempDir(), FileName)
	writeFile(t, path, b)
	assertLoadFails(t, path, "zero hole", slipstream.ErrInvalidFormat)
}
