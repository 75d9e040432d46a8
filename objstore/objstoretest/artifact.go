package objstoretest

import (
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
	"lukechampine.com/blake3"
)

// MakeArtifact writes an append-log artifact into dir, which must not exist:
// the puts kv (key, value, key, value, …) at revisions 1, 2, … and the given
// cursor, exported by applog and sealed with a MANIFEST.json.
func MakeArtifact(t testing.TB, dir string, cursor uint64, kv ...string) *artifact.Manifest {
	t.Helper()
	var batch []slipstream.Update
	for i := 0; i+1 < len(kv); i += 2 {
		batch = append(batch, slipstream.Put(kv[i], []byte(kv[i+1]), slipstream.VersionFromUint64(uint64(i/2+1))))
	}
	return MakeArtifactFrom(t, dir, batch, slipstream.CursorFromUint64(cursor))
}

// MakeArtifactFrom writes an append-log artifact of batch applied at cursor
// into dir, which must not exist.
func MakeArtifactFrom(t testing.TB, dir string, batch []slipstream.Update, cursor slipstream.Cursor) *artifact.Manifest {
	t.Helper()
	fold, err := applog.Open(filepath.Join(t.TempDir(), "fold"), nil)
	if err != nil {
		t.Fatalf("open fold: %v", err)
	}
	defer fold.Close()
	if err := fold.Apply(batch, cursor); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("make artifact dir: %v", err)
	}
	ex, err := fold.ExportTo(filepath.Join(dir, artifact.DataDir))
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	m := &artifact.Manifest{
		SchemaVersion:  artifact.SchemaVersion,
		Backend:        ex.Backend,
		BackendVersion: ex.BackendVersion,
		Cursor:         ex.Cursor,
		CreatedAtUnix:  uint64(time.Now().Unix()),
	}
	for _, f := range ex.Files {
		rel := artifact.DataDir + "/" + f
		size, sum := hashFile(t, filepath.Join(dir, filepath.FromSlash(rel)))
		m.Files = append(m.Files, artifact.File{Path: rel, Size: size, BLAKE3: sum})
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatalf("marshal manifest: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, artifact.ManifestName), b, 0o644); err != nil {
		t.Fatalf("write manifest: %v", err)
	}
	return m
}

func hashFile(t testing.TB, path string) (uint64, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("hash: %v", err)
	}
	defer f.Close()
	h := blake3.New(32, nil)
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatalf("hash %s: %v", path, err)
	}
	return uint64(n), hex.EncodeToString(h.Sum(nil))
}

// CheckArtifact verifies the append-log artifact in dir the way an import
// does (strict manifest, exactly the declared files with their sizes and
// BLAKE3 digests, payload cursor equal to the manifest's) and returns its
// cursor and key → value state.
func CheckArtifact(t testing.TB, dir string) (slipstream.Cursor, map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, artifact.ManifestName))
	if err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	m, err := artifact.ParseManifest(b)
	if err != nil {
		t.Fatalf("parse manifest: %v", err)
	}
	var declared, found []string
	for _, f := range m.Files {
		declared = append(declared, f.Path)
		size, sum := hashFile(t, filepath.Join(dir, filepath.FromSlash(f.Path)))
		if size != f.Size || sum != f.BLAKE3 {
			t.Fatalf("%s: size %d blake3 %s, manifest says %d %s", f.Path, size, sum, f.Size, f.BLAKE3)
		}
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel = filepath.ToSlash(rel); rel != artifact.ManifestName {
			found = append(found, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk artifact: %v", err)
	}
	sort.Strings(declared)
	sort.Strings(found)
	if !slices.Equal(declared, found) {
		t.Fatalf("artifact files %v, manifest declares %v", found, declared)
	}
	snap, _, err := applog.Load(filepath.Join(dir, artifact.DataDir, applog.FileName))
	if err != nil {
		t.Fatalf("load payload: %v", err)
	}
	if snap.Cursor != m.Cursor {
		t.Fatalf("payload cursor %v, manifest cursor %v", snap.Cursor, m.Cursor)
	}
	state := make(map[string]string, len(snap.Entries))
	for k, e := range snap.Entries {
		state[k] = string(e.Value)
	}
	return snap.Cursor, state
}

// MultipartWorkload returns storage.md §10.6's multipart workload: 2 500
// puts of route.000000 … route.002499 at versions 1 … 2 500, each with a
// 10 KiB pseudo-random value (per entry the state starts at i·M + C and each
// byte steps state = state·M + C and takes the low 8 bits of state >> 33,
// M = 6364136223846793005, C = 1442695040888963407, wrapping), to be applied
// at once at cursor 2 500. Its append-log payload is about 25 MiB.
func MultipartWorkload() ([]slipstream.Update, slipstream.Cursor) {
	const (
		n    = 2500
		size = 10 << 10
		m    = 6364136223846793005
		c    = 1442695040888963407
	)
	batch := make([]slipstream.Update, n)
	for i := range n {
		state := uint64(i)*m + c
		v := make([]byte, size)
		for j := range v {
			state = state*m + c
			v[j] = byte(state >> 33)
		}
		batch[i] = slipstream.Put(fmt.Sprintf("route.%06d", i), v, slipstream.VersionFromUint64(uint64(i+1)))
	}
	return batch, slipstream.CursorFromUint64(n)
}
