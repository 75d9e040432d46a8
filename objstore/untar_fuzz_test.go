package objstore

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// FuzzExtract feeds arbitrary bytes to the untar path: whatever the archive,
// nothing may be created outside the stage, nothing but regular files and
// directories may be created inside it, and every refusal must wrap
// ErrArtifactInvalid.
//
// Each run touches the disk, so cap minimization or the fuzzer spends its
// time there:
//
//	go test ./objstore -run '^$' -fuzz FuzzExtract -fuzztime 60s -fuzzminimizetime 100x
func FuzzExtract(f *testing.F) {
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
		root, err := os.MkdirTemp(base, "run-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(root)
		stage := filepath.Join(root, "stage")
		if err := os.Mkdir(stage, 0o700); err != nil {
			t.Fatal(err)
		}
		err = extract(bytes.NewReader(b), stage)
		if err != nil && !errors.Is(err, slipstream.ErrArtifactInvalid) {
			t.Fatalf("extract: %v (want nil or ErrArtifactInvalid)", err)
		}
		walkErr := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == root {
				return nil
			}
			if p != stage && !strings.HasPrefix(p, stage+string(filepath.Separator)) {
				t.Errorf("extract created %s outside the stage", p)
			}
			if !d.IsDir() && !d.Type().IsRegular() {
				t.Errorf("extract created %s of type %v", p, d.Type())
			}
			return nil
		})
		if walkErr != nil {
			t.Fatal(walkErr)
		}
	})
}
