package objstore_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
)

// FuzzUntar feeds arbitrary bytes to the untar path Download uses
// (artifact.ReadTar without backends, as a download does not verify):
// whatever the archive, nothing may be created outside the destination's
// parent, the parent ends with the destination (on success) or nothing (on
// refusal, which must wrap ErrArtifactInvalid, tar.ErrHeader or
// io.ErrUnexpectedEOF: Download reports the last two as invalid too), and nothing but regular files and directories is created.
//
// Each run touches the disk, so cap minimization or the fuzzer spends its
// time there:
//
//	go test ./objstore -run '^$' -fuzz FuzzUntar -fuzztime 60s -fuzzminimizetime 100x
func FuzzUntar(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "untar", "*.tar"))
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/untar")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		outer, err := os.MkdirTemp(base, "run-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(outer)
		parent := filepath.Join(outer, "parent")
		if err := os.Mkdir(parent, 0o755); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(parent, "dest")
		_, err = artifact.ReadTar(bytes.NewReader(b), dest)
		malformed := errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !errors.Is(err, slipstream.ErrArtifactInvalid) && !malformed {
			t.Fatalf("ReadTar: %v (want nil, ErrArtifactInvalid or a malformed-archive error)", err)
		}
		walkErr := filepath.WalkDir(outer, func(p string, d fs.DirEntry, werr error) error {
			if werr != nil {
				return werr
			}
			if p == outer || p == parent {
				return nil
			}
			inDest := p == dest || strings.HasPrefix(p, dest+string(filepath.Separator))
			if err != nil || !inDest {
				t.Errorf("ReadTar (err %v) left %s", err, p)
			}
			if !d.IsDir() && !d.Type().IsRegular() {
				t.Errorf("ReadTar created %s of type %v", p, d.Type())
			}
			return nil
		})
		if walkErr != nil {
			t.Fatal(walkErr)
		}
	})
}
