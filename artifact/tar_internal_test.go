package artifact

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// noSyncFS skips fsyncs, which only cost time under a fuzzer.
type noSyncFS struct{ osFS }

func (noSyncFS) Sync(*os.File) error  { return nil }
func (noSyncFS) SyncDir(string) error { return nil }

// FuzzReadTar: any archive is unpacked (only regular files and directories,
// all inside the destination, a manifest that parses) or refused with
// nothing left behind and an error wrapping ErrArtifactInvalid, tar.ErrHeader
// or io.ErrUnexpectedEOF (objstore's Download reports the last two as
// invalid too); never a panic. It is the one fuzz target of the untar path
// (export -from, Download, the fleet's bootstrap). Seeds: testdata/tar,
// where objstore's TestUntarSeeds keeps the untar-*.tar hostile archives.
//
// Each run touches the disk, so cap minimization:
//
//	go test ./artifact -run '^$' -fuzz FuzzReadTar -fuzztime 60s -fuzzminimizetime 100x
func FuzzReadTar(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "tar", "*.tar"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "got")
		m, err := readTar(noSyncFS{}, bytes.NewReader(b), dest, nil)
		if err != nil {
			if !errors.Is(err, slipstream.ErrArtifactInvalid) && !errors.Is(err, tar.ErrHeader) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("ReadTar: %v (want ErrArtifactInvalid or a malformed-archive error)", err)
			}
			if des, _ := os.ReadDir(parent); len(des) != 0 {
				t.Fatalf("refused archive left %v (%v)", des, err)
			}
			return
		}
		if _, perr := ParseManifest(mustRead(t, filepath.Join(dest, ManifestName))); perr != nil || m == nil {
			t.Fatalf("unpacked manifest does not parse: %v", perr)
		}
		err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && !d.Type().IsRegular() {
				t.Fatalf("unpacked a non-regular entry %s", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if des, _ := os.ReadDir(parent); len(des) != 1 {
			t.Fatalf("parent holds %v, want only the destination", des)
		}
	})
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
