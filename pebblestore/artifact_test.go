package pebblestore_test

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/pebblestore"
	"github.com/slipstream-kv/slipstream/storetest"
)

func TestArtifactConformance(t *testing.T) {
	storetest.RunArtifact(t, opener(pebblestore.Options{}), pebblestore.ArtifactBackend{Logger: quiet})
}

// An artifact hard-links the fold's sstables (immutable) instead of
// copying them.
func TestArtifactHardLinksTables(t *testing.T) {
	dir := t.TempDir()
	s, err := pebblestore.Open(dir, &pebblestore.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var batch []slipstream.Update
	for i := range 2000 {
		batch = append(batch, slipstream.Put(fmt.Sprintf("k.%05d", i), bytes.Repeat([]byte{byte(i)}, 100), slipstream.VersionFromUint64(uint64(i+1))))
	}
	if err := s.Apply(batch, slipstream.CursorFromUint64(2000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Settle(); err != nil { // flush: the data moves into sstables
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "art")
	m, err := artifact.ExportStore(s, art)
	if err != nil {
		t.Fatal(err)
	}
	tables := 0
	for _, f := range m.Files {
		if !strings.HasSuffix(f.Path, ".sst") {
			continue
		}
		tables++
		a, err := os.Stat(filepath.Join(art, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		live, err := os.Stat(filepath.Join(dir, path.Base(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(a, live) {
			t.Errorf("%s was copied, not hard-linked", f.Path)
		}
	}
	if tables == 0 {
		t.Fatalf("no sstable in the artifact: %+v", m.Files)
	}
}
