package artifact_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
)

// leftovers plants, in parent, what crashed runs and other programs leave:
// it returns the names a sweep must remove and the names it must keep.
func leftovers(t *testing.T, parent string) (stale, kept []string) {
	t.Helper()
	old := time.Now().Add(-artifact.StaleStageAge - time.Hour)
	mk := func(name string, dir bool, files map[string]time.Time, mtime time.Time) {
		p := filepath.Join(parent, name)
		if dir {
			if err := os.MkdirAll(filepath.Join(p, "data"), 0o755); err != nil {
				t.Fatal(err)
			}
			for f, ft := range files {
				fp := filepath.Join(p, "data", f)
				if err := os.WriteFile(fp, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(fp, ft, ft); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chtimes(filepath.Join(p, "data"), old, old); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	// A crashed export's stage: nothing modified for longer than the age.
	mk(artifact.StagePrefix+"1234567", true, map[string]time.Time{"fold.snap": old}, old)
	stale = append(stale, artifact.StagePrefix+"1234567")
	// A run in progress: its top directory is old, a file deep inside is
	// being written.
	mk(artifact.StagePrefix+"2345678", true, map[string]time.Time{"fold.snap": old, "000001.sst": now}, old)
	// A fresh stage.
	mk(artifact.StagePrefix+"3456789", true, nil, now)
	// Old, but not our naming: another program's, or an operator's.
	mk(artifact.StagePrefix+"backup", true, nil, old)
	mk(artifact.StagePrefix, true, nil, old)
	mk("keep-me", true, nil, old)
	// Old, our naming, but a file.
	mk(artifact.StagePrefix+"4567890", false, nil, old)
	kept = []string{artifact.StagePrefix + "2345678", artifact.StagePrefix + "3456789", artifact.StagePrefix + "backup",
		artifact.StagePrefix, "keep-me", artifact.StagePrefix + "4567890"}
	return stale, kept
}

func checkSwept(t *testing.T, parent string, stale, kept []string) {
	t.Helper()
	des, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	for _, n := range stale {
		if slices.Contains(names, n) {
			t.Errorf("stale stage %s not swept (parent holds %v)", n, names)
		}
	}
	for _, n := range kept {
		if !slices.Contains(names, n) {
			t.Errorf("%s was swept; it is not a stale stage of ours", n)
		}
	}
}

// TestExportAndImportSweepStaleStages: an export and an import each remove,
// from the parent of their destination, the stages crashed runs left more
// than StaleStageAge ago, and nothing else.
func TestExportAndImportSweepStaleStages(t *testing.T) {
	s := openAppLog(t, t.TempDir())
	defer s.Close()
	v := slipstream.VersionFromUint64
	if err := s.Apply([]slipstream.Update{slipstream.Put("a", bytes.Repeat([]byte("1"), 10), v(1))}, slipstream.CursorFromUint64(1)); err != nil {
		t.Fatal(err)
	}

	exportParent := t.TempDir()
	stale, kept := leftovers(t, exportParent)
	art := filepath.Join(exportParent, "art")
	if _, err := artifact.ExportStore(s, art); err != nil {
		t.Fatal(err)
	}
	checkSwept(t, exportParent, stale, append(kept, "art"))

	importParent := t.TempDir()
	stale, kept = leftovers(t, importParent)
	if _, err := artifact.Import(art, filepath.Join(importParent, "fold"), applog.ArtifactBackend{}); err != nil {
		t.Fatal(err)
	}
	checkSwept(t, importParent, stale, append(kept, "fold"))
}
