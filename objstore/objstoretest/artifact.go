package objstoretest

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
)

// MakeArtifact writes an append-log artifact into dir, which must not exist:
// the puts kv (key, value, key, value, …) at revisions 1, 2, … and the given
// cursor.
func MakeArtifact(t testing.TB, dir string, cursor uint64, kv ...string) *artifact.Manifest {
	t.Helper()
	var batch []slipstream.Update
	for i := 0; i+1 < len(kv); i += 2 {
		batch = append(batch, slipstream.Put(kv[i], []byte(kv[i+1]), slipstream.VersionFromUint64(uint64(i/2+1))))
	}
	return MakeArtifactFrom(t, dir, batch, slipstream.CursorFromUint64(cursor))
}

// MakeArtifactFrom writes an append-log artifact of batch applied at cursor
// into dir, which must not exist, with artifact.ExportStore.
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
	m, err := artifact.ExportStore(fold, dir)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return m
}

// CheckArtifact verifies the append-log artifact in dir and imports it, with
// artifact.Verify and artifact.Import, and returns the imported fold's cursor
// and key → value state. Any failure fails the test.
func CheckArtifact(t testing.TB, dir string) (slipstream.Cursor, map[string]string) {
	t.Helper()
	m, err := artifact.Verify(dir, applog.ArtifactBackend{})
	if err != nil {
		t.Fatalf("verify %s: %v", dir, err)
	}
	dest := filepath.Join(t.TempDir(), "fold")
	if _, err := artifact.Import(dir, dest, applog.ArtifactBackend{}); err != nil {
		t.Fatalf("import %s: %v", dir, err)
	}
	fold, err := applog.Open(dest, nil)
	if err != nil {
		t.Fatalf("open imported fold: %v", err)
	}
	defer fold.Close()
	if fold.Cursor() != m.Cursor {
		t.Fatalf("imported fold at %v, manifest cursor %v", fold.Cursor(), m.Cursor)
	}
	state := map[string]string{}
	err = fold.ForEachInRange("", func(e slipstream.Entry) error {
		state[e.Key] = string(e.Value)
		return nil
	})
	if err != nil {
		t.Fatalf("scan imported fold: %v", err)
	}
	return fold.Cursor(), state
}

// MultipartWorkload returns the multipart round-trip workload: 2 500
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
