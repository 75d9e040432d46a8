package artifact

import (
	"strings"

	"github.com/slipstream-kv/slipstream"
)

// Backend describes one fold backend's payload to the artifact layer, so
// that this package imports no backend: the caller hands [Import], [Verify]
// and [ReadTar] the backends it accepts, and the manifest's backend field
// picks one. applog.ArtifactBackend and pebblestore.ArtifactBackend
// implement it (without importing this package: the interface only names
// slipstream types).
//
// Export needs no Backend: a [slipstream.Store] writes its own payload
// through ExportTo and names its backend and format generation there.
type Backend interface {
	// Name is the backend identity written in, and matched against, the
	// manifest's backend field ("append-log", "pebble").
	Name() string
	// CheckVersion accepts or refuses a manifest's backend_version (the
	// on-disk format generation) for this build.
	CheckVersion(version string) error
	// CheckFiles accepts or refuses the payload's file list: paths relative
	// to the data directory, '/'-separated, in manifest order.
	CheckFiles(paths []string) error
	// RecoverCursor opens the payload directory dir with the backend's own
	// recovery and returns the cursor it recovers. It must not create,
	// modify or remove anything in dir: it runs on artifacts being
	// verified in place.
	RecoverCursor(dir string) (slipstream.Cursor, error)
}

// pick returns the backend named name.
func pick(name string, backends []Backend) (Backend, error) {
	names := make([]string, 0, len(backends))
	for _, b := range backends {
		if b.Name() == name {
			return b, nil
		}
		names = append(names, b.Name())
	}
	if len(names) == 0 {
		return nil, invalidf("artifact backend is %q, and no backend was given to open it", name)
	}
	return nil, invalidf("artifact backend is %q, expected %s", name, strings.Join(names, " or "))
}
