package applog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// faultFS wraps the OS filesystem, records calls and injects failures.
type faultFS struct {
	osFS
	mu    sync.Mutex
	calls []string
	// fail maps an operation name to the error it returns; after, when
	// set, makes it fail only once the named operation has been called.
	fail  map[string]error
	after string
	armed bool
	// Log writes: the count since failNthWrite, the one to fail (0: none)
	// and the bytes it lands before failing.
	writes, failWrite, partial int
}

func (f *faultFS) record(op, arg string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+arg)
	if f.after != "" && op == f.after {
		f.armed = true
	}
	if err, ok := f.fail[op]; ok && (f.after == "" || f.armed) {
		return err
	}
	return nil
}

func (f *faultFS) CreateTemp(dir, pattern string) (*os.File, error) {
	if err := f.record("createtemp", dir); err != nil {
		return nil, err
	}
	return f.osFS.CreateTemp(dir, pattern)
}

func (f *faultFS) Rename(o, n string) error {
	if err := f.record("rename", filepath.Base(o)+"->"+n); err != nil {
		return err
	}
	return f.osFS.Rename(o, n)
}

func (f *faultFS) OpenAppend(name string) (*os.File, error) {
	if err := f.record("openappend", name); err != nil {
		return nil, err
	}
	return f.osFS.OpenAppend(name)
}

// Write fails the log write numbered failWrite (counting from 1, over the
// writes since the counter was last reset), after letting its first
// partial bytes reach the file: a short write, as on a full disk.
func (f *faultFS) Write(file *os.File, b []byte) (int, error) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("write %d", len(b)))
	f.writes++
	fail := f.failWrite != 0 && f.writes == f.failWrite
	partial := min(f.partial, len(b))
	f.mu.Unlock()
	if fail {
		n, err := f.osFS.Write(file, b[:partial])
		if err != nil {
			return n, err
		}
		return n, errInjected
	}
	return f.osFS.Write(file, b)
}

// failNthWrite arms Write to fail the nth write from now, landing partial
// bytes first.
func (f *faultFS) failNthWrite(n, partial int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes, f.failWrite, f.partial = 0, n, partial
}

func (f *faultFS) Sync(file *os.File) error {
	if err := f.record("sync", filepath.Base(file.Name())); err != nil {
		return err
	}
	return f.osFS.Sync(file)
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.record("syncdir", dir); err != nil {
		return err
	}
	return f.osFS.SyncDir(dir)
}

func (f *faultFS) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

var errInjected = errors.New("injected crash")

func newFaultWriter(t *testing.T, ffs *faultFS) (*Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	w, err := openWriter(ffs, path, DefaultCompactThreshold)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	for i, k := range []string{"a", "a", "b"} {
		if err := w.WriteUpdate(slipstream.Put(k, []byte{byte('0' + i)}, rev(uint64(i+1)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Checkpoint(cur(3)); err != nil {
		t.Fatal(err)
	}
	return w, path
}

func TestCompactToFileFsyncsParentDirent(t *testing.T) {
	ffs := &faultFS{}
	w, path := newFaultWriter(t, ffs)
	if err := w.Compact(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	var seq []string
	for _, c := range ffs.log() {
		if !strings.HasPrefix(c, "openappend") && !strings.HasPrefix(c, "write ") {
			seq = append(seq, strings.Fields(c)[0])
		}
	}
	if strings.Join(seq, ",") != "createtemp,sync,rename,syncdir" {
		t.Fatalf("compaction steps %v, want temp file, fsync, rename, directory fsync", ffs.log())
	}
	calls := ffs.log()
	if !slicesContain(calls, "createtemp "+dir) || !slicesContain(calls, "syncdir "+dir) {
		t.Fatalf("temp file or directory sync not in the log's own directory: %v", calls)
	}
	// The writer moved to the new file: a later append survives a load.
	w.WriteUpdate(slipstream.Put("c", []byte("3"), rev(4)))
	w.Checkpoint(cur(4))
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"a": "1", "b": "2", "c": "3"})
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestCompactFailureBeforeRenameLeavesWriterUsable(t *testing.T) {
	for _, op := range []string{"createtemp", "sync", "rename"} {
		t.Run(op, func(t *testing.T) {
			ffs := &faultFS{fail: map[string]error{op: errInjected}}
			w, path := newFaultWriter(t, ffs)
			before := readFile(t, path)
			err := w.Compact()
			if !errors.Is(err, errInjected) || errors.Is(err, ErrPoisoned) {
				t.Fatalf("Compact = %v, want the injected error, not poisoned", err)
			}
			if !bytes.Equal(before, readFile(t, path)) {
				t.Fatal("failed compaction changed the log")
			}
			if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".fold.snap.tmp-*")); len(leftovers) != 0 {
				t.Fatalf("temp files left behind: %v", leftovers)
			}
			delete(ffs.fail, op)
			if err := w.WriteUpdate(slipstream.Put("c", []byte("3"), rev(4))); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Checkpoint(cur(4)); err != nil {
				t.Fatal(err)
			}
			assertEntries(t, mustLoad(t, path).Entries, map[string]string{"a": "1", "b": "2", "c": "3"})
		})
	}
}

// A failed directory sync happens after the rename: the writer must move to
// the new file anyway (never append to the renamed-away inode) and report
// the error.
func TestDirSyncFailureAfterRenameStillSwapsTheHandle(t *testing.T) {
	ffs := &faultFS{fail: map[string]error{"syncdir": errInjected}}
	w, path := newFaultWriter(t, ffs)
	if err := w.Compact(); !errors.Is(err, errInjected) {
		t.Fatalf("Compact = %v, want the directory sync error", err)
	}
	if err := w.WriteUpdate(slipstream.Put("c", []byte("3"), rev(4))); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Checkpoint(cur(4)); err != nil {
		t.Fatal(err)
	}
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"a": "1", "b": "2", "c": "3"})
	if snap.Cursor != cur(4) {
		t.Fatalf("cursor %v", snap.Cursor)
	}
}

// If reopening the log after the rename fails, the writer is poisoned:
// every later write fails and nothing reaches any file.
func TestReopenFailureAfterRenamePoisons(t *testing.T) {
	ffs := &faultFS{fail: map[string]error{"openappend": errInjected}, after: "rename"}
	w, path := newFaultWriter(t, ffs)
	err := w.Compact()
	if !errors.Is(err, ErrPoisoned) || !errors.Is(err, errInjected) {
		t.Fatalf("Compact = %v, want poisoned with the cause", err)
	}
	compacted := readFile(t, path)
	ops := map[string]func() error{
		"WriteUpdate": func() error { return w.WriteUpdate(slipstream.Put("c", []byte("3"), rev(4))) },
		"Checkpoint":  func() error { _, err := w.Checkpoint(cur(4)); return err },
		"Flush":       w.Flush,
		"Sync":        w.Sync,
		"Compact":     w.Compact,
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrPoisoned) {
			t.Fatalf("%s on a poisoned writer = %v", name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close of a poisoned writer = %v", err)
	}
	if !bytes.Equal(compacted, readFile(t, path)) {
		t.Fatal("a poisoned writer changed the log")
	}
	snap := mustLoad(t, path)
	assertEntries(t, snap.Entries, map[string]string{"a": "1", "b": "2"})
}

func TestWriteFailurePoisons(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	w, err := OpenWriter(path, DefaultCompactThreshold)
	if err != nil {
		t.Fatal(err)
	}
	w.f.Close() // the next write(2) fails
	w.WriteUpdate(slipstream.Put("a", []byte("1"), rev(1)))
	if _, err := w.Checkpoint(cur(1)); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("Checkpoint after a failed write = %v, want ErrPoisoned", err)
	}
	if err := w.WriteUpdate(slipstream.Put("b", []byte("2"), rev(2))); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("WriteUpdate = %v, want ErrPoisoned", err)
	}
	w.f = nil
	w.Close()
}

func TestSyncFailurePoisons(t *testing.T) {
	ffs := &faultFS{fail: map[string]error{"sync": errInjected}}
	w, _ := newFaultWriter(t, ffs)
	if err := w.Sync(); !errors.Is(err, ErrPoisoned) || !errors.Is(err, errInjected) {
		t.Fatalf("Sync = %v", err)
	}
	if _, err := w.Checkpoint(cur(9)); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("Checkpoint after a failed fsync = %v", err)
	}
}

func TestWriterRefusesWhatReadersCannotLoad(t *testing.T) {
	tests := []struct {
		name string
		u    slipstream.Update
	}{
		{"value over 16 MiB", slipstream.Put("big", make([]byte, MaxValueLen+1), rev(1))},
		{"key over 65535 bytes", slipstream.Put(strings.Repeat("k", MaxKeyLen+1), nil, rev(1))},
		{"non-UTF-8 key", slipstream.Put("\xff\xfe", nil, rev(1))},
		{"unknown op", slipstream.Update{Op: 9, Key: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			w, err := OpenWriter(path, DefaultCompactThreshold)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := w.WriteUpdate(tt.u); !errors.Is(err, slipstream.ErrInvalidFormat) {
				t.Fatalf("WriteUpdate = %v, want ErrInvalidFormat", err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, path); !bytes.Equal(got, header[:]) {
				t.Fatalf("refused update left %d bytes in the log", len(got))
			}
		})
	}
	// Exactly 16 MiB is accepted and loads back.
	path := filepath.Join(t.TempDir(), FileName)
	writeBatches(t, path, DefaultCompactThreshold, []slipstream.Update{slipstream.Put("max", make([]byte, MaxValueLen), rev(1))})
	if snap := mustLoad(t, path); len(snap.Entries["max"].Value) != MaxValueLen {
		t.Fatal("a 16 MiB value did not round-trip")
	}
}

// Short files (docs/FORMAT.md, "Replay"): a file that is a strict prefix of
// the header was torn at creation and counts as an empty log; any other
// file shorter than the header is refused and left alone.
func TestShortFiles(t *testing.T) {
	for n := range headerLen {
		t.Run("header prefix "+string(header[:n]), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			writeFile(t, path, header[:n])
			if _, ok, err := Load(path); ok || err != nil {
				t.Fatalf("Load = %v, %v; want no snapshot", ok, err)
			}
			if got := readFile(t, path); !bytes.Equal(got, header[:]) {
				t.Fatalf("Load left % x, want the full header", got)
			}
			writeFile(t, path, header[:n])
			writeBatches(t, path, DefaultCompactThreshold, []slipstream.Update{slipstream.Put("a", []byte("1"), rev(1))})
			assertEntries(t, mustLoad(t, path).Entries, map[string]string{"a": "1"})
		})
	}
	for _, junk := range []string{"X", "PGX", "PGSS\x03"} {
		t.Run("junk "+junk, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			writeFile(t, path, []byte(junk))
			assertLoadFails(t, path, "too short", slipstream.ErrInvalidFormat)
			if _, err := OpenWriter(path, DefaultCompactThreshold); !errors.Is(err, slipstream.ErrInvalidFormat) || !strings.Contains(err.Error(), path) {
				t.Fatalf("OpenWriter = %v, want ErrInvalidFormat naming the file", err)
			}
			if got := readFile(t, path); string(got) != junk {
				t.Fatalf("OpenWriter changed a junk file to % x", got)
			}
		})
	}
}

func TestWriterCloseTwice(t *testing.T) {
	w, err := OpenWriter(filepath.Join(t.TempDir(), FileName), DefaultCompactThreshold)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, slipstream.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if err := w.WriteUpdate(slipstream.Put("a", nil, rev(1))); !errors.Is(err, slipstream.ErrClosed) {
		t.Fatalf("WriteUpdate after Close = %v", err)
	}
}

// TestCloseReleasesReplacedLogs checks that the handles of logs replaced by
// compaction, closed in the background, are all closed once Close returns.
func TestCloseReleasesReplacedLogs(t *testing.T) {
	fds := func() int {
		des, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(des)
	}
	before := fds()
	s, err := Open(t.TempDir(), &Options{CompactThreshold: 64})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		u := slipstream.Put("k", bytes.Repeat([]byte{byte(i)}, 100), slipstream.VersionFromUint64(uint64(i+1)))
		if err := s.Apply([]slipstream.Update{u}, slipstream.CursorFromUint64(uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after := fds(); after != before {
		t.Fatalf("%d file descriptors open after Close, %d before Open", after, before)
	}
}
