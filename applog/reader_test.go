package applog

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// TestReadsCheckTheRecord corrupts a value's bytes in the log after the
// open: Get and ForEachInRange read the record back, and report its
// checksum mismatch as corruption instead of serving the bytes.
func TestReadsCheckTheRecord(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenFold(t, dir, nil)
	defer s.Close()
	if err := s.Apply([]slipstream.Update{
		slipstream.Put("a", []byte("alpha"), rev(1)),
		slipstream.Put("b", []byte("bravo"), rev(2)),
	}, cur(2)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	data := readFile(t, path)
	i := bytes.Index(data, []byte("bravo"))
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("B"), int64(i)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if e, ok, err := s.Get("a"); err != nil || !ok || string(e.Value) != "alpha" {
		t.Fatalf("Get(a) = %q %v %v", e.Value, ok, err)
	}
	_, _, err = s.Get("b")
	if fe, ok := errors.AsType[*FormatError](err); !ok || !errors.Is(err, slipstream.ErrCorrupt) || fe.Path != path {
		t.Fatalf("Get of a corrupted record = %v, want a FormatError wrapping ErrCorrupt naming %s", err, path)
	}
	err = s.ForEachInRange("", func(slipstream.Entry) error { return nil })
	if !errors.Is(err, slipstream.ErrCorrupt) {
		t.Fatalf("scan over a corrupted record = %v, want ErrCorrupt", err)
	}
}

// TestReadsOfATruncatedLogFail truncates the log under an open store (as
// only another process could): reads of values past the new end return an
// error, through the mapping or pread alike, and the process survives.
func TestReadsOfATruncatedLogFail(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenFold(t, dir, nil)
	defer s.Close()
	batch := []slipstream.Update{slipstream.Put("a", bytes.Repeat([]byte{'x'}, 10<<10), rev(1))}
	if err := s.Apply(batch, cur(1)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, FileName), headerLen); err != nil {
		t.Fatal(err)
	}
	// The value spans pages past the new end: through the mapping they
	// fault, through pread they come up short.
	if _, _, err := s.Get("a"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Get of a value past the end of the log = %v, want io.ErrUnexpectedEOF", err)
	}
	if err := s.ForEachInRange("", func(slipstream.Entry) error { return nil }); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("scan of values past the end of the log = %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestReadLocatedBeforeACompaction locates a value, lets a compaction move
// the fold to a new file, then reads the located value: it comes from the
// old file, still open for the read, while new reads use the new one.
func TestReadLocatedBeforeACompaction(t *testing.T) {
	s := mustOpenFold(t, t.TempDir(), &Options{CompactThreshold: 1})
	defer s.Close()
	if err := s.Apply([]slipstream.Update{slipstream.Put("a", []byte("first"), rev(1))}, cur(1)); err != nil {
		t.Fatal(err)
	}
	s.mu.RLock()
	e := s.t.get("a")
	loc := valueLoc{key: "a", off: e.off, vlen: e.vlen, ver: e.ver}
	old := s.lf.acquire()
	s.mu.RUnlock()

	// An overwrite leaves garbage over the live records: Apply compacts.
	if err := s.Apply([]slipstream.Update{slipstream.Put("a", []byte("second"), rev(2))}, cur(2)); err != nil {
		t.Fatal(err)
	}
	s.mu.RLock()
	moved := s.lf != old
	s.mu.RUnlock()
	if !moved {
		t.Fatal("the overwrite did not compact the log")
	}
	v, err := old.readOne(loc)
	old.release()
	if err != nil || string(v) != "first" {
		t.Fatalf("read located before the compaction = %q, %v", v, err)
	}
	if e, ok, err := s.Get("a"); err != nil || !ok || string(e.Value) != "second" {
		t.Fatalf("Get after the compaction = %q %v %v", e.Value, ok, err)
	}
}
