package pebblestore

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/slipstream-kv/slipstream"
)

// ArtifactBackend describes pebble payloads to the artifact layer (package
// artifact's Backend): backend "pebble", format generation the database's
// format major version in decimal, the payload a pebble checkpoint
// directory. Artifacts of this backend move between Go builds only. The
// zero value is ready to use.
type ArtifactBackend struct {
	// Logger receives pebble's events while a payload is opened; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Name returns [Backend].
func (ArtifactBackend) Name() string { return Backend }

// CheckVersion accepts a format major version this build of pebble can
// open: an integer from pebble.FormatMinSupported to pebble.FormatNewest.
func (ArtifactBackend) CheckVersion(v string) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != v {
		return fmt.Errorf("pebblestore: format generation %q is not a decimal format major version", v)
	}
	if fmv := pebble.FormatMajorVersion(n); fmv < pebble.FormatMinSupported || fmv > pebble.FormatNewest {
		return fmt.Errorf("pebblestore: format major version %d is outside what this build opens (%d to %d)",
			n, pebble.FormatMinSupported, pebble.FormatNewest)
	}
	return nil
}

// CheckFiles accepts any non-empty list: pebble's own recovery judges the
// directory.
func (ArtifactBackend) CheckFiles(paths []string) error {
	if len(paths) == 0 {
		return fmt.Errorf("pebblestore: a pebble payload has files")
	}
	return nil
}

// RecoverCursor opens the checkpoint in dir read-only, with a small cache
// and without taking pebble's LOCK file (nothing is created in dir; the
// write-ahead log is replayed in memory), and returns its cursor.
func (b ArtifactBackend) RecoverCursor(dir string) (slipstream.Cursor, error) {
	log := b.Logger
	if log == nil {
		log = slog.Default()
	}
	return recoverCursor(dir, log.With(slipstream.LogKeyComponent, "pebblestore", slipstream.LogKeyDir, dir))
}

// recoverCursor opens the database in dir read-only and without a lock file
// and reads its cursor.
func recoverCursor(dir string, log *slog.Logger) (slipstream.Cursor, error) {
	cache := pebble.NewCache(8 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		ReadOnly: true,
		FS:       noLockFS{vfs.Default},
		Cache:    cache,
		Logger:   pebbleLogger{log},
	})
	if err != nil {
		return slipstream.Cursor{}, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	c, err := readCursor(db)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return slipstream.Cursor{}, fmt.Errorf("pebblestore: read cursor of %s: %w", dir, err)
	}
	return c, nil
}

// noLockFS is the disk without file locks: a read-only open of a copy that
// nothing else opens needs none, and must not add a LOCK file to it.
type noLockFS struct{ vfs.FS }

func (noLockFS) Lock(string) (io.Closer, error) { return nopCloser{}, nil }

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
