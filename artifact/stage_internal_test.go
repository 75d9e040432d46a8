package artifact

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/pebblestore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestDestAvailable(t *testing.T) {
	root := t.TempDir()
	absent := filepath.Join(root, "absent")
	empty := filepath.Join(root, "empty")
	full := filepath.Join(root, "full")
	file := filepath.Join(root, "file")
	link := filepath.Join(root, "link")
	mustMkdir(t, empty)
	mustMkdir(t, full)
	mustWrite(t, filepath.Join(full, "x"), "x")
	mustWrite(t, file, "f")
	if err := os.Symlink(empty, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dest    string
		want    destState
		mention string // "" = accepted
	}{
		{absent, destAbsent, ""},
		{empty, destEmptyDir, ""},
		{full, 0, "exists and is not empty"},
		{file, 0, "already exists"},
		{link, 0, "already exists"}, // a symlink is not followed
	} {
		got, err := destAvailable(osFS{}, tt.dest)
		if tt.mention == "" {
			if err != nil || got != tt.want {
				t.Errorf("destAvailable(%s) = %v, %v; want %v", tt.dest, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("destAvailable(%s) = %v; want ErrArtifactInvalid mentioning %q", tt.dest, err, tt.mention)
		}
	}
	if _, err := os.Stat(filepath.Join(full, "x")); err != nil {
		t.Fatal("the check touched a refused destination")
	}
	for _, dest := range []string{"", "/"} {
		if _, err := parentOf(dest); !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), "no parent") {
			t.Errorf("parentOf(%q) = %v; want no parent", dest, err)
		}
	}
	if p, err := parentOf("art"); err != nil || p != "." {
		t.Errorf("parentOf(art) = %q, %v; want .", p, err)
	}
}

// Cursor hex round trip.
func TestCursorHex(t *testing.T) {
	for _, s := range []string{"", "00", "deadbeef", "0000000000000007", "0102030405060708090a"} {
		c, err := decodeCursorHex(s)
		if err != nil {
			t.Fatalf("decodeCursorHex(%q): %v", s, err)
		}
		m := &Manifest{SchemaVersion: SchemaVersion, Backend: "b", BackendVersion: "1", Cursor: c, Files: []File{}}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"cursor_hex": "`+s+`"`)) {
			t.Errorf("cursor %q re-encodes as %s", s, b)
		}
	}
	for _, s := range []string{"0g", "a", "abc", "zz", "0102030405060708090a0b"} {
		if _, err := decodeCursorHex(s); !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), "cursor_hex") {
			t.Errorf("decodeCursorHex(%q) = %v; want ErrArtifactInvalid", s, err)
		}
	}
}

// fakeExport writes payload files into dir as a store's ExportTo would.
func fakeExport(files map[string]string, extra func(dir string) error) func(string) (slipstream.Export, error) {
	return func(dir string) (slipstream.Export, error) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return slipstream.Export{}, err
		}
		var names []string
		for name, body := range files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return slipstream.Export{}, err
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				return slipstream.Export{}, err
			}
			names = append(names, name)
		}
		if extra != nil {
			if err := extra(dir); err != nil {
				return slipstream.Export{}, err
			}
		}
		return slipstream.Export{Backend: "fake", BackendVersion: "1", Cursor: slipstream.CursorFromUint64(9), Files: names}, nil
	}
}

func TestSealRefusesSymlink(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "art")
	_, err := export(osFS{}, dest, time.Now, fakeExport(map[string]string{"a": "x"}, func(dir string) error {
		return os.Symlink("/etc/passwd", filepath.Join(dir, "escape"))
	}))
	if !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), "non-regular") {
		t.Fatalf("export with a symlink = %v; want non-regular", err)
	}
	assertEmpty(t, parent)
}

func TestSealRefusesUnreportedFile(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "art")
	_, err := export(osFS{}, dest, time.Now, fakeExport(map[string]string{"a": "x"}, func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "b"), nil, 0o644)
	}))
	if !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), "disagrees") {
		t.Fatalf("export with an unreported file = %v", err)
	}
	assertEmpty(t, parent)
}

// A destination that appears, non-empty, between the stage's creation
// and the seal is refused, and the intruder is left untouched.
func TestExportDestinationAppearsDuringExport(t *testing.T) {
	for _, kind := range []string{"dir", "file"} {
		t.Run(kind, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "art")
			_, err := export(osFS{}, dest, time.Now, fakeExport(map[string]string{"a": "x"}, func(string) error {
				if kind == "file" {
					return os.WriteFile(dest, []byte("intruder"), 0o644)
				}
				if err := os.Mkdir(dest, 0o755); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(dest, "intruder"), []byte("intruder"), 0o644)
			}))
			if !errors.Is(err, slipstream.ErrArtifactInvalid) {
				t.Fatalf("export = %v; want ErrArtifactInvalid", err)
			}
			p := dest
			if kind == "dir" {
				p = filepath.Join(dest, "intruder")
				if des, _ := os.ReadDir(dest); len(des) != 1 {
					t.Fatalf("destination holds %v", des)
				}
			}
			if b, err := os.ReadFile(p); err != nil || string(b) != "intruder" {
				t.Fatalf("intruder changed: %q, %v", b, err)
			}
			if des, _ := os.ReadDir(parent); len(des) != 1 {
				t.Fatalf("parent holds %v, want only the intruder", des)
			}
		})
	}
}

func TestExportManifestLastAndSorted(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "art")
	files := map[string]string{"b": "2", "a/c": "3", "a.b": "1", "a/b/d": "4"}
	now := time.Unix(1765400000, 0)
	m, err := export(osFS{}, dest, func() time.Time { return now }, fakeExport(files, nil))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	// Component-wise order: data/a/... before data/a.b.
	want := []string{"data/a/b/d", "data/a/c", "data/a.b", "data/b"}
	if !slices.Equal(paths, want) {
		t.Fatalf("manifest order %q, want %q", paths, want)
	}
	if m.CreatedAtUnix != 1765400000 || m.Cursor != slipstream.CursorFromUint64(9) || m.Backend != "fake" {
		t.Fatalf("manifest %+v", m)
	}
	b, err := os.ReadFile(filepath.Join(dest, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if mb, _ := m.Marshal(); !bytes.Equal(b, mb) {
		t.Fatalf("manifest file %s, want %s", b, mb)
	}
	if des, _ := os.ReadDir(parent); len(des) != 1 || des[0].Name() != "art" {
		t.Fatalf("parent holds %v, want only the artifact", des)
	}
	if _, err := os.Stat(filepath.Join(dest, manifestTemp)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("manifest temp file left behind")
	}
}

// errInjected is the failure faultFS injects.
var errInjected = errors.New("injected failure")

// faultFS counts every filesystem operation as a step and makes step failAt
// fail. With crash, that step and every later one fail without touching
// the disk: the disk is frozen as a process killed at that step leaves it
// (deferred cleanups included). Writes through an already open file are
// not steps: they are followed by a Sync or Close step.
type faultFS struct {
	osFS
	failAt int
	crash  bool
	steps  int
	failed string
	dead   bool
}

func (f *faultFS) step(op, name string) error {
	if f.dead {
		return errInjected
	}
	f.steps++
	if f.steps == f.failAt {
		f.failed = op + " " + name
		f.dead = f.crash
		return fmt.Errorf("%s %s: %w", op, name, errInjected)
	}
	return nil
}

func (f *faultFS) Lstat(name string) (fs.FileInfo, error) {
	if err := f.step("lstat", name); err != nil {
		return nil, err
	}
	return f.osFS.Lstat(name)
}

func (f *faultFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := f.step("readdir", name); err != nil {
		return nil, err
	}
	return f.osFS.ReadDir(name)
}

func (f *faultFS) MkdirAll(path string, perm fs.FileMode) error {
	if err := f.step("mkdirall", path); err != nil {
		return err
	}
	return f.osFS.MkdirAll(path, perm)
}

func (f *faultFS) MkdirTemp(dir, pattern string) (string, error) {
	if err := f.step("mkdirtemp", dir); err != nil {
		return "", err
	}
	return f.osFS.MkdirTemp(dir, pattern)
}

func (f *faultFS) Chmod(name string, mode fs.FileMode) error {
	if err := f.step("chmod", name); err != nil {
		return err
	}
	return f.osFS.Chmod(name, mode)
}

func (f *faultFS) Open(name string) (*os.File, error) {
	if err := f.step("open", name); err != nil {
		return nil, err
	}
	return f.osFS.Open(name)
}

func (f *faultFS) Create(name string, perm fs.FileMode) (*os.File, error) {
	if err := f.step("create", name); err != nil {
		return nil, err
	}
	return f.osFS.Create(name, perm)
}

func (f *faultFS) Sync(file *os.File) error {
	if err := f.step("sync", file.Name()); err != nil {
		return err
	}
	return f.osFS.Sync(file)
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.step("syncdir", dir); err != nil {
		return err
	}
	return f.osFS.SyncDir(dir)
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.step("rename", oldpath+" -> "+newpath); err != nil {
		return err
	}
	return f.osFS.Rename(oldpath, newpath)
}

func (f *faultFS) RemoveAll(path string) error {
	if err := f.step("removeall", path); err != nil {
		return err
	}
	return f.osFS.RemoveAll(path)
}

// testBackend is one backend under the crash tests.
type testBackend struct {
	name string
	be   Backend
	open func(t *testing.T, dir string) slipstream.Store
}

var testBackends = []testBackend{
	{"applog", applog.ArtifactBackend{}, func(t *testing.T, dir string) slipstream.Store {
		s, err := applog.Open(dir, &applog.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"pebble", pebblestore.ArtifactBackend{Logger: quiet}, func(t *testing.T, dir string) slipstream.Store {
		s, err := pebblestore.Open(dir, &pebblestore.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// folded opens a store holding three keys at cursor 3.
func folded(t *testing.T, tb testBackend) slipstream.Store {
	t.Helper()
	s := tb.open(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	v := slipstream.VersionFromUint64
	batch := []slipstream.Update{
		slipstream.Put("a", []byte("1"), v(1)),
		slipstream.Put("b/c", []byte("2"), v(2)),
		slipstream.Put("d", bytes.Repeat([]byte("x"), 3000), v(3)),
	}
	if err := s.Apply(batch, slipstream.CursorFromUint64(3)); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkOutcome asserts the nothing-or-complete property after a run that
// failed (or crashed) at some step: dest holds nothing, or something
// complete (complete reports whether it is); parent holds, besides dest,
// only hidden stages, and none at all unless crashed or a removal failed.
func checkOutcome(t *testing.T, f *faultFS, parent, dest string, err error, complete func() error) {
	t.Helper()
	_, serr := os.Lstat(dest)
	switch {
	case errors.Is(serr, fs.ErrNotExist):
		if err == nil {
			t.Fatalf("step %d (%s): no error and no destination", f.failAt, f.failed)
		}
	case serr != nil:
		t.Fatal(serr)
	default:
		if cerr := complete(); cerr != nil {
			t.Fatalf("step %d (%s) left an incomplete destination: %v (run error %v)", f.failAt, f.failed, cerr, err)
		}
	}
	des, rerr := os.ReadDir(parent)
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, de := range des {
		name := de.Name()
		if name == filepath.Base(dest) {
			continue
		}
		hidden := strings.HasPrefix(name, StagePrefix) || strings.HasPrefix(name, DownloadPrefix)
		if !hidden {
			t.Fatalf("step %d (%s) left %s beside the destination", f.failAt, f.failed, name)
		}
		if !f.crash && !strings.HasPrefix(f.failed, "removeall") {
			t.Fatalf("step %d (%s) failed without a crash but left the stage %s", f.failAt, f.failed, name)
		}
	}
}

// forEachStep runs run with a failure at step 1, 2, … until a run finishes
// without reaching the failing step, in error mode and in crash mode.
func forEachStep(t *testing.T, run func(t *testing.T, f *faultFS)) {
	for _, crash := range []bool{false, true} {
		for n := 1; ; n++ {
			f := &faultFS{failAt: n, crash: crash}
			run(t, f)
			if t.Failed() {
				return
			}
			if f.steps < n && !f.dead {
				if n < 5 {
					t.Fatalf("only %d steps", f.steps)
				}
				t.Logf("crash=%v: a failure injected at each of %d steps", crash, f.steps)
				break
			}
		}
	}
}

func TestExportCrashAtEachStep(t *testing.T) {
	for _, tb := range testBackends {
		t.Run(tb.name, func(t *testing.T) {
			s := folded(t, tb)
			forEachStep(t, func(t *testing.T, f *faultFS) {
				parent := t.TempDir()
				dest := filepath.Join(parent, "art")
				_, err := export(f, dest, time.Now, s.ExportTo)
				if err != nil && !errors.Is(err, errInjected) {
					t.Fatalf("step %d (%s): error %v does not wrap the injected failure", f.failAt, f.failed, err)
				}
				checkOutcome(t, f, parent, dest, err, func() error {
					m, err := Verify(dest, tb.be)
					if err == nil && m.Cursor != slipstream.CursorFromUint64(3) {
						err = fmt.Errorf("cursor %v", m.Cursor)
					}
					return err
				})
			})
		})
	}
}

func TestImportCrashAtEachStep(t *testing.T) {
	for _, tb := range testBackends {
		t.Run(tb.name, func(t *testing.T) {
			art := filepath.Join(t.TempDir(), "art")
			if _, err := ExportStore(folded(t, tb), art); err != nil {
				t.Fatal(err)
			}
			forEachStep(t, func(t *testing.T, f *faultFS) {
				parent := t.TempDir()
				dest := filepath.Join(parent, "fold")
				_, err := importTo(f, art, dest, []Backend{tb.be})
				if err != nil && !errors.Is(err, errInjected) {
					t.Fatalf("step %d (%s): error %v does not wrap the injected failure", f.failAt, f.failed, err)
				}
				checkOutcome(t, f, parent, dest, err, func() error {
					s := tb.open(t, dest)
					defer s.Close()
					if c := s.Cursor(); c != slipstream.CursorFromUint64(3) {
						return fmt.Errorf("imported fold at cursor %v", c)
					}
					e, ok, err := s.Get("d")
					if err != nil || !ok || len(e.Value) != 3000 {
						return fmt.Errorf("imported fold lacks d (found %v, %d bytes): %w", ok, len(e.Value), err)
					}
					return nil
				})
			})
			if _, err := Verify(art, tb.be); err != nil {
				t.Fatalf("the imports harmed the artifact: %v", err)
			}
		})
	}
}

func TestReadTarCrashAtEachStep(t *testing.T) {
	tb := testBackends[0]
	art := filepath.Join(t.TempDir(), "art")
	if _, err := ExportStore(folded(t, tb), art); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if _, err := WriteTar(&archive, art); err != nil {
		t.Fatal(err)
	}
	forEachStep(t, func(t *testing.T, f *faultFS) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "got")
		_, err := readTar(f, bytes.NewReader(archive.Bytes()), dest, []Backend{tb.be})
		if err != nil && !errors.Is(err, errInjected) {
			t.Fatalf("step %d (%s): error %v does not wrap the injected failure", f.failAt, f.failed, err)
		}
		checkOutcome(t, f, parent, dest, err, func() error {
			_, err := Verify(dest, tb.be)
			return err
		})
	})
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 0 {
		t.Fatalf("%s holds %v, want nothing", dir, des)
	}
}
