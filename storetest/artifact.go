package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
)

// RunArtifact runs the artifact checks (export_import_round_trip …
// export_empty_store; docs/ARTIFACTS.md) against the backend that
// open opens, whose payloads be describes: export through
// [artifact.ExportStore], [artifact.Verify], [artifact.Import] into a new
// fold, and every refusal of the ArtifactInvalid catalogue that a doctored
// artifact can provoke. Each refusal is checked on Import and on Verify,
// and after a refused Import nothing exists at the destination, not even a
// hidden stage.
func RunArtifact(t *testing.T, open Opener, be artifact.Backend) {
	// exportAt folds updates into a fresh store, exports it and closes it.
	exportAt := func(t *testing.T, updates []slipstream.Update) (string, *artifact.Manifest) {
		t.Helper()
		s := open(t, t.TempDir())
		defer mustClose(t, s)
		fold(t, s, updates)
		art := filepath.Join(t.TempDir(), "artifact")
		m, err := artifact.ExportStore(s, art)
		if err != nil {
			t.Fatalf("ExportStore: %v", err)
		}
		if m.Cursor != s.Cursor() {
			t.Fatalf("manifest cursor %v, live cursor %v", m.Cursor, s.Cursor())
		}
		return art, m
	}
	// importInto imports art into a fresh destination and opens it.
	importInto := func(t *testing.T, art string) slipstream.Store {
		t.Helper()
		dest := filepath.Join(t.TempDir(), "fold")
		if _, err := artifact.Import(art, dest, be); err != nil {
			t.Fatalf("Import: %v", err)
		}
		return open(t, dest)
	}

	t.Run("export_import_round_trip", func(t *testing.T) {
		art, m := exportAt(t, Fixture())
		if m.Cursor != cur(7) || len(m.Files) == 0 || m.Backend != be.Name() || m.SchemaVersion != artifact.SchemaVersion {
			t.Fatalf("manifest %+v", m)
		}
		if _, err := os.Stat(filepath.Join(art, artifact.ManifestName)); err != nil {
			t.Fatalf("no manifest: %v", err)
		}
		before := treeDigest(t, art)
		v, err := artifact.Verify(art, be)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if v.Cursor != cur(7) || !slices.Equal(v.Files, m.Files) {
			t.Fatalf("Verify manifest %+v, export's %+v", v, m)
		}
		if after := treeDigest(t, art); after != before {
			t.Fatalf("Verify modified the artifact:\n%s\nwas\n%s", after, before)
		}
		s := importInto(t, art)
		defer mustClose(t, s)
		assertState(t, s, cur(7), expected)
		if after := treeDigest(t, art); after != before {
			t.Fatal("Import modified the artifact")
		}
	})

	t.Run("import_resume_continues_fold", func(t *testing.T) {
		art, m := exportAt(t, Fixture()[:4])
		if m.Cursor != cur(4) {
			t.Fatalf("manifest cursor %v, want 4", m.Cursor)
		}
		s := importInto(t, art)
		defer mustClose(t, s)
		assertState(t, s, cur(4), []string{"node.a=v1b@4", "node.b=v2@2", "svc.x=sx@3"})
		fold(t, s, Fixture()[4:])
		assertState(t, s, cur(7), expected)
	})

	refusals := []struct {
		name    string
		mention string
		doctor  func(t *testing.T, art string, m *artifact.Manifest)
		unix    bool
	}{
		{"import_rejects_tampered_payload", "checksum", func(t *testing.T, art string, m *artifact.Manifest) {
			p := largest(art, m)
			b := readFile(t, p)
			b[len(b)/2] ^= 0xff
			writeFile(t, p, b)
		}, false},
		{"import_rejects_truncated_payload", "bytes, manifest says", func(t *testing.T, art string, m *artifact.Manifest) {
			p := largest(art, m)
			b := readFile(t, p)
			writeFile(t, p, b[:len(b)-1])
		}, false},
		{"import_rejects_missing_payload_file", "missing", func(t *testing.T, art string, m *artifact.Manifest) {
			if err := os.Remove(largest(art, m)); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"import_rejects_undeclared_extra_file", "undeclared", func(t *testing.T, art string, _ *artifact.Manifest) {
			writeFile(t, filepath.Join(art, artifact.DataDir, "smuggled"), []byte("x"))
		}, false},
		{"import_rejects_symlink_in_payload", "non-regular", func(t *testing.T, art string, _ *artifact.Manifest) {
			if err := os.Symlink("/etc/passwd", filepath.Join(art, artifact.DataDir, "escape")); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"import_rejects_wrong_backend", "backend", func(t *testing.T, art string, _ *artifact.Manifest) {
			doctor(t, art, func(m map[string]any) { m["backend"] = "fjall" })
		}, false},
		{"import_rejects_schema_version", "schema_version", func(t *testing.T, art string, _ *artifact.Manifest) {
			doctor(t, art, func(m map[string]any) { m["schema_version"] = 999 })
		}, false},
		{"import_rejects_backend_version", "backend_version", func(t *testing.T, art string, _ *artifact.Manifest) {
			doctor(t, art, func(m map[string]any) { m["backend_version"] = "999" })
		}, false},
		{"import_rejects_cursor_mismatch", "cursor", func(t *testing.T, art string, _ *artifact.Manifest) {
			doctor(t, art, func(m map[string]any) { m["cursor_hex"] = "00000000000003e7" })
		}, false},
		{"import_rejects_dotdot_path", "non-normal", func(t *testing.T, art string, _ *artifact.Manifest) {
			doctor(t, art, func(m map[string]any) {
				files := m["files"].([]any)
				files[0].(map[string]any)["path"] = "data/../escape"
			})
		}, false},
		{"import_rejects_absolute_path", "not under", func(t *testing.T, art string, _ *artifact.Manifest) {
			doctor(t, art, func(m map[string]any) {
				files := m["files"].([]any)
				files[0].(map[string]any)["path"] = "/abs/path"
			})
		}, false},
		{"import_rejects_missing_manifest", "no MANIFEST.json", func(t *testing.T, art string, _ *artifact.Manifest) {
			if err := os.Remove(filepath.Join(art, artifact.ManifestName)); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			if r.unix && runtime.GOOS == "windows" {
				t.Skip("symlinks need privileges on windows")
			}
			art, m := exportAt(t, Fixture())
			r.doctor(t, art, m)
			before := treeDigest(t, art)
			if _, err := artifact.Verify(art, be); !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), r.mention) {
				t.Fatalf("Verify = %v; want ErrArtifactInvalid mentioning %q", err, r.mention)
			}
			parent := t.TempDir()
			dest := filepath.Join(parent, "fold")
			_, err := artifact.Import(art, dest, be)
			if !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), r.mention) {
				t.Fatalf("Import = %v; want ErrArtifactInvalid mentioning %q", err, r.mention)
			}
			assertNothing(t, parent)
			if after := treeDigest(t, art); after != before {
				t.Fatal("a refused Import modified the artifact")
			}
		})
	}

	t.Run("import_rejects_nonempty_dest", func(t *testing.T) {
		art, _ := exportAt(t, Fixture())
		dest := t.TempDir()
		stray := filepath.Join(dest, "stray")
		writeFile(t, stray, []byte("keep me"))
		if _, err := artifact.Import(art, dest, be); !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("Import into a non-empty directory = %v", err)
		}
		if des, _ := os.ReadDir(dest); len(des) != 1 || string(readFile(t, stray)) != "keep me" {
			t.Fatalf("destination changed: %v", des)
		}
		file := filepath.Join(t.TempDir(), "file")
		writeFile(t, file, []byte("a file"))
		if _, err := artifact.Import(art, file, be); !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("Import onto a file = %v", err)
		}
		if string(readFile(t, file)) != "a file" {
			t.Fatal("file destination changed")
		}
		// The artifact is unharmed: a retry into a fresh destination works.
		s := importInto(t, art)
		defer mustClose(t, s)
		assertState(t, s, cur(7), expected)
		// An empty directory is a fine destination.
		empty := t.TempDir()
		if _, err := artifact.Import(art, empty, be); err != nil {
			t.Fatalf("Import into an empty directory: %v", err)
		}
		e := open(t, empty)
		defer mustClose(t, e)
		assertState(t, e, cur(7), expected)
	})

	t.Run("export_rejects_nonempty_dest", func(t *testing.T) {
		s := open(t, t.TempDir())
		defer mustClose(t, s)
		fold(t, s, Fixture())
		parent := t.TempDir()
		dest := filepath.Join(parent, "artifact")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		stray := filepath.Join(dest, "stray")
		writeFile(t, stray, []byte("keep me"))
		if _, err := artifact.ExportStore(s, dest); !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("ExportStore into a non-empty directory = %v", err)
		}
		if des, _ := os.ReadDir(dest); len(des) != 1 || string(readFile(t, stray)) != "keep me" {
			t.Fatalf("destination changed: %v", des)
		}
		if des, _ := os.ReadDir(parent); len(des) != 1 {
			t.Fatalf("export left entries beside the destination: %v", des)
		}
		file := filepath.Join(parent, "file")
		writeFile(t, file, []byte("a file"))
		if _, err := artifact.ExportStore(s, file); !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("ExportStore onto a file = %v", err)
		}
		if string(readFile(t, file)) != "a file" {
			t.Fatal("file destination changed")
		}
		if _, err := artifact.ExportStore(s, ""); !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), "no parent") {
			t.Fatalf("ExportStore to \"\" = %v", err)
		}
		empty := t.TempDir()
		if _, err := artifact.ExportStore(s, empty); err != nil {
			t.Fatalf("ExportStore into an empty directory: %v", err)
		}
		if _, err := artifact.Verify(empty, be); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})

	t.Run("export_empty_store", func(t *testing.T) {
		art, m := exportAt(t, nil)
		if !m.Cursor.IsNone() {
			t.Fatalf("manifest cursor %v, want none", m.Cursor)
		}
		if _, err := artifact.Verify(art, be); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		s := importInto(t, art)
		defer mustClose(t, s)
		assertState(t, s, slipstream.Cursor{}, []string{})
	})
}

// assertNothing fails unless dir is empty: no destination, no stage.
func assertNothing(t testing.TB, dir string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 0 {
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		t.Fatalf("%s holds %q after a refused import, want nothing", dir, names)
	}
}

// largest returns the path of the artifact's largest payload file.
func largest(art string, m *artifact.Manifest) string {
	best := m.Files[0]
	for _, f := range m.Files {
		if f.Size > best.Size {
			best = f
		}
	}
	return filepath.Join(art, filepath.FromSlash(best.Path))
}

// doctor rewrites the manifest as compact JSON after edit changed it.
func doctor(t testing.TB, art string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(art, artifact.ManifestName)
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(readFile(t, p)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, b)
}

// treeDigest describes every entry under dir: path, type, size and bytes.
func treeDigest(t testing.TB, dir string) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sb.WriteString(rel + " " + d.Type().String())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, " %d %x", len(b), sha256.Sum256(b))
		}
		sb.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
