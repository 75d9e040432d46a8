package applog

import (
	"fmt"
	"path/filepath"

	"github.com/slipstream-kv/slipstream"
)

// ArtifactBackend describes append-log payloads to the artifact layer
// (package artifact's Backend): backend "append-log", format generation
// "2", exactly one payload file, data/fold.snap, in the log format of this
// package (docs/FORMAT.md), which any implementation of that format reads. The zero value is ready to use.
type ArtifactBackend struct{}

// Name returns [Backend].
func (ArtifactBackend) Name() string { return Backend }

// CheckVersion accepts only [BackendVersion].
func (ArtifactBackend) CheckVersion(v string) error {
	if v != BackendVersion {
		return fmt.Errorf("applog: unsupported format generation %q (this build reads %q)", v, BackendVersion)
	}
	return nil
}

// CheckFiles accepts exactly one file, [FileName].
func (ArtifactBackend) CheckFiles(paths []string) error {
	if len(paths) != 1 || paths[0] != FileName {
		return fmt.Errorf("applog: an append-log payload is exactly %s, not %q", FileName, paths)
	}
	return nil
}

// RecoverCursor replays dir/[FileName] as [Load] would, streaming it
// through a fixed window and keeping no entry, and returns its cursor. It
// never writes: a torn tail is ignored rather than repaired.
func (ArtifactBackend) RecoverCursor(dir string) (slipstream.Cursor, error) {
	path := filepath.Join(dir, FileName)
	st, err := loadInto(osFS{}, path, &countSink{ordered: true}, false, defaultSizes)
	if err != nil {
		return slipstream.Cursor{}, err
	}
	if !st.exists {
		return slipstream.Cursor{}, fmt.Errorf("applog: no %s in %s", FileName, dir)
	}
	return st.res.cursor, nil
}
