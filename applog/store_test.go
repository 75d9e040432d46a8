package applog_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/storetest"
)

func openStore(t *testing.T, dir string) slipstream.Store {
	t.Helper()
	s, err := applog.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, openStore)
}

func TestConformanceSyncAndTinyThreshold(t *testing.T) {
	// Compacting on nearly every Apply and fsyncing each one exercises the
	// rewrite path under the whole suite.
	storetest.Run(t, func(t *testing.T, dir string) slipstream.Store {
		s, err := applog.Open(dir, &applog.Options{CompactThreshold: 1, Sync: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestLocking(t *testing.T) {
	storetest.RunLocking(t, func(dir string) (slipstream.Store, error) { return applog.Open(dir, nil) })
}

func put(k, v string, r uint64) slipstream.Update {
	return slipstream.Put(k, []byte(v), slipstream.VersionFromUint64(r))
}

func mustOpen(t *testing.T, dir string, opts *applog.Options) *applog.Store {
	t.Helper()
	s, err := applog.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustApply(t *testing.T, s slipstream.Store, c uint64, batch ...slipstream.Update) {
	t.Helper()
	if err := s.Apply(batch, slipstream.CursorFromUint64(c)); err != nil {
		t.Fatal(err)
	}
}

func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		b, _ := os.ReadFile(filepath.Join(dir, de.Name()))
		out[de.Name()] = string(b)
	}
	return out
}

func TestOpenRefusesWhatIsNotAFold(t *testing.T) {
	t.Run("directory with other files", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
		before := snapshotDir(t, dir)
		_, err := applog.Open(dir, nil)
		if !errors.Is(err, slipstream.ErrInvalidFormat) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("Open = %v, want ErrInvalidFormat naming %s", err, dir)
		}
		if !maps.Equal(before, snapshotDir(t, dir)) {
			t.Fatal("Open modified a directory that is not a fold")
		}
	})
	t.Run("pebble directory", func(t *testing.T) {
		dir := t.TempDir()
		for _, n := range []string{"LOCK", "MANIFEST-000001", "000002.sst", "OPTIONS-000003"} {
			os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644)
		}
		before := snapshotDir(t, dir)
		if _, err := applog.Open(dir, nil); !errors.Is(err, slipstream.ErrInvalidFormat) {
			t.Fatalf("Open = %v, want ErrInvalidFormat", err)
		}
		if !maps.Equal(before, snapshotDir(t, dir)) {
			t.Fatal("Open modified a pebble directory")
		}
	})
	t.Run("regular file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, []byte("data"), 0o644)
		_, err := applog.Open(file, nil)
		if !errors.Is(err, slipstream.ErrInvalidFormat) || !strings.Contains(err.Error(), file) {
			t.Fatalf("Open = %v, want ErrInvalidFormat naming %s", err, file)
		}
		if b, _ := os.ReadFile(file); string(b) != "data" {
			t.Fatal("file modified")
		}
	})
	t.Run("lock file only is a fold", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, applog.LockName), nil, 0o644)
		mustOpen(t, dir, nil)
	})
}

func TestOpenBadLogLeavesItUntouched(t *testing.T) {
	good := func() []byte {
		dir := t.TempDir()
		s := mustOpen(t, dir, nil)
		mustApply(t, s, 1, put("alpha", strings.Repeat("v", 20), 1))
		mustApply(t, s, 2, put("bravo", strings.Repeat("v", 20), 2))
		mustApply(t, s, 3, put("charlie", strings.Repeat("v", 20), 3))
		s.Close()
		b, _ := os.ReadFile(filepath.Join(dir, applog.FileName))
		return b
	}()
	corrupt := bytes.Clone(good)
	corrupt[46] ^= 0xff
	tests := []struct {
		name     string
		data     []byte
		sentinel error
		mention  string
	}{
		{"corrupt", corrupt, slipstream.ErrCorrupt, "checksum"},
		{"bad magic", append([]byte("XXXX\x02\x00"), good[6:]...), slipstream.ErrInvalidFormat, "magic"},
		{"wrong version", append([]byte("PGSS\x01\x00"), good[6:]...), slipstream.ErrInvalidFormat, "version"},
		{"zero hole", append(append(bytes.Clone(good[:51]), 0, 0, 0, 0, 0, 0), good[51:]...), slipstream.ErrInvalidFormat, "zero hole"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, applog.FileName)
			os.WriteFile(path, tt.data, 0o644)
			for range 2 { // the failed open released its lock: the second fails the same way
				_, err := applog.Open(dir, nil)
				if !errors.Is(err, tt.sentinel) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.mention) {
					t.Fatalf("Open = %v, want %v naming %s and mentioning %q", err, tt.sentinel, path, tt.mention)
				}
				if fe, ok := errors.AsType[*applog.FormatError](err); !ok || fe.Path != path {
					t.Fatalf("error %v is not a *FormatError for %s", err, path)
				}
				if b, _ := os.ReadFile(path); !bytes.Equal(b, tt.data) {
					t.Fatal("failed open modified the log")
				}
			}
			if _, err := applog.OpenReadOnly(dir); !errors.Is(err, tt.sentinel) {
				t.Fatalf("OpenReadOnly = %v, want %v", err, tt.sentinel)
			}
		})
	}
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, nil)
	mustApply(t, w, 1, put("a", "1", 1))
	mustApply(t, w, 2, put("b", "2", 2))
	// A torn tail appended behind the holder's back: a read-only open
	// ignores it in memory and never rewrites the file.
	path := filepath.Join(dir, applog.FileName)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{1, 2, 3})
	f.Close()
	before, _ := os.ReadFile(path)

	r, err := applog.OpenReadOnly(dir)
	if err != nil {
		t.Fatalf("OpenReadOnly beside a holder: %v", err)
	}
	defer r.Close()
	if r.Cursor() != slipstream.CursorFromUint64(2) || keyCount(t, r) != 2 {
		t.Fatalf("read-only view: cursor %v, %d keys", r.Cursor(), keyCount(t, r))
	}
	if e, ok, _ := r.Get("b"); !ok || string(e.Value) != "2" {
		t.Fatalf("Get(b) = %+v %v", e, ok)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("read-only open rewrote the log")
	}
	if err := r.Apply([]slipstream.Update{put("c", "3", 3)}, slipstream.CursorFromUint64(3)); !errors.Is(err, applog.ErrReadOnly) {
		t.Fatalf("Apply on read-only = %v", err)
	}
	if _, err := r.ExportTo(filepath.Join(t.TempDir(), "x")); !errors.Is(err, applog.ErrReadOnly) {
		t.Fatalf("ExportTo on read-only = %v", err)
	}
	if _, err := applog.OpenReadOnly(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenReadOnly of a missing fold = %v", err)
	}
}

func TestApplyRefusesAnInvalidBatchWhole(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, nil)
	mustApply(t, s, 1, put("a", "1", 1))
	path := filepath.Join(dir, applog.FileName)
	before, _ := os.ReadFile(path)
	for name, bad := range map[string]slipstream.Update{
		"value over 16 MiB": slipstream.Put("big", make([]byte, applog.MaxValueLen+1), slipstream.VersionFromUint64(3)),
		"non-UTF-8 key":     put("\xff", "x", 3),
		"long key":          put(strings.Repeat("k", applog.MaxKeyLen+1), "x", 3),
	} {
		err := s.Apply([]slipstream.Update{put("b", "2", 2), bad}, slipstream.CursorFromUint64(3))
		if !errors.Is(err, slipstream.ErrInvalidFormat) {
			t.Fatalf("%s: Apply = %v, want ErrInvalidFormat", name, err)
		}
		if _, ok, _ := s.Get("b"); ok || keyCount(t, s) != 1 || s.Cursor() != slipstream.CursorFromUint64(1) {
			t.Fatalf("%s: a refused batch was partly applied", name)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatalf("%s: a refused batch reached the log", name)
		}
	}
	// The store is still healthy.
	mustApply(t, s, 2, put("b", "2", 2))
}

func TestApplyCompactsFromMemory(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, &applog.Options{CompactThreshold: 1})
	val := strings.Repeat("v", 100)
	for i := range 50 {
		mustApply(t, s, uint64(i+1), put(fmt.Sprintf("k%d", i%5), fmt.Sprintf("%s-%d", val, i), uint64(i+1)))
	}
	size, err := s.Size()
	if err != nil {
		t.Fatal(err)
	}
	// 5 live keys of ~110 bytes: without compaction the log would hold 50
	// PUTs; the amortised rule lets it reach at most twice its compact size.
	compact := int64(6 + 5*(4+1+2+2+4+len(val)+3+1+8) + 14)
	if size > 2*compact+200 {
		t.Fatalf("log is %d bytes; compaction during Apply did not run (compact size ~%d)", size, compact)
	}
	if fi, _ := os.Stat(filepath.Join(dir, applog.FileName)); fi.Size() != size {
		t.Fatalf("Size() = %d, file is %d", size, fi.Size())
	}
	s.Close()
	r := mustOpen(t, dir, nil)
	if keyCount(t, r) != 5 || r.Cursor() != slipstream.CursorFromUint64(50) {
		t.Fatalf("after reopen: %d keys, cursor %v", keyCount(t, r), r.Cursor())
	}
	if e, _, _ := r.Get("k4"); string(e.Value) != val+"-49" {
		t.Fatalf("k4 = %q", e.Value)
	}
}

func TestLoadsLegacyWriterFile(t *testing.T) {
	dir := t.TempDir()
	w, err := applog.OpenWriter(filepath.Join(dir, applog.FileName), applog.DefaultCompactThreshold)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteUpdate(put("a", "1", 1))
	w.WriteUpdate(put("b", "2", 2))
	w.Checkpoint(slipstream.CursorFromUint64(2))
	w.Close()
	s := mustOpen(t, dir, nil)
	if s.Cursor() != slipstream.CursorFromUint64(2) || keyCount(t, s) != 2 {
		t.Fatalf("cursor %v, %d keys", s.Cursor(), keyCount(t, s))
	}
}

func TestOpenRemovesStaleCompactionTempFiles(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, nil)
	mustApply(t, s, 1, put("a", "1", 1))
	s.Close()
	stale := filepath.Join(dir, ".fold.snap.tmp-12345")
	os.WriteFile(stale, []byte("half a compaction"), 0o600)
	mustOpen(t, dir, nil)
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale temp file survived Open: %v", err)
	}
}

func TestScanValuesStayValidAfterOverwrite(t *testing.T) {
	s := mustOpen(t, t.TempDir(), nil)
	mustApply(t, s, 1, put("a", "first", 1))
	var kept []byte
	s.ForEachInRange("", func(e slipstream.Entry) error { kept = e.Value; return nil })
	mustApply(t, s, 2, put("a", "other", 2))
	mustApply(t, s, 3, slipstream.Delete("a", slipstream.VersionFromUint64(3)))
	if string(kept) != "first" {
		t.Fatalf("a value kept from a scan changed to %q", kept)
	}
}

func TestExportMatchesGoldenBytes(t *testing.T) {
	s := mustOpen(t, t.TempDir(), nil)
	fixture := storetest.Fixture()
	for i := 0; i < len(fixture); i += 3 {
		chunk := fixture[i:min(i+3, len(fixture))]
		if err := s.Apply(chunk, slipstream.CursorAt(chunk[len(chunk)-1].Version)); err != nil {
			t.Fatal(err)
		}
	}
	dest := filepath.Join(t.TempDir(), "export")
	exp, err := s.ExportTo(dest)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Backend != "append-log" || exp.BackendVersion != "2" || !slices.Equal(exp.Files, []string{"fold.snap"}) {
		t.Fatalf("export %+v", exp)
	}
	got, _ := os.ReadFile(filepath.Join(dest, applog.FileName))
	want, _ := os.ReadFile(filepath.Join("testdata", "fixture_compacted.snap"))
	if !bytes.Equal(got, want) {
		t.Fatalf("exported bytes differ from testdata/fixture_compacted.snap:\n got % x\nwant % x", got, want)
	}
}

func TestSecondOpenIsLockedAndLeavesTheFoldAlone(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, nil)
	mustApply(t, s, 1, put("a", "1", 1), put("a", "2", 2)) // redundant: a load would compact it
	path := filepath.Join(dir, applog.FileName)
	before, _ := os.ReadFile(path)
	for _, opts := range []*applog.Options{nil, {Sync: true}} {
		_, err := applog.Open(dir, opts)
		if !errors.Is(err, slipstream.ErrLocked) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("second Open = %v, want ErrLocked naming %s", err, dir)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a refused Open modified the log")
	}
	mustApply(t, s, 3, put("b", "3", 3))
}

// keyCount returns s.Len(), failing the test on error.
func keyCount(t testing.TB, s *applog.Store) int {
	t.Helper()
	n, err := s.Len()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
