package applog

import (
	"os"
	"path/filepath"

	"github.com/slipstream-kv/slipstream/internal/fsync"
)

// fsys is the filesystem seam of the writer and of compaction, so tests can
// inject failures at each step and observe which files and directories were
// synced. osFS is the only production implementation.
type fsys interface {
	// CreateTemp creates a new file in dir (see os.CreateTemp).
	CreateTemp(dir, pattern string) (*os.File, error)
	// Rename renames oldpath to newpath.
	Rename(oldpath, newpath string) error
	// Remove removes the named file.
	Remove(name string) error
	// OpenAppend opens (creating if missing) a log for reading and appending.
	OpenAppend(name string) (*os.File, error)
	// Write appends b to the log f (one write(2)).
	Write(f *os.File, b []byte) (int, error)
	// Sync flushes f's data to stable storage.
	Sync(f *os.File) error
	// SyncDir flushes the directory entries of dir to stable storage.
	SyncDir(dir string) error
}

type osFS struct{}

func (osFS) CreateTemp(dir, pattern string) (*os.File, error) { return os.CreateTemp(dir, pattern) }
func (osFS) Rename(oldpath, newpath string) error             { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                         { return os.Remove(name) }
func (osFS) Sync(f *os.File) error                            { return f.Sync() }
func (osFS) Write(f *os.File, b []byte) (int, error)          { return f.Write(b) }

func (osFS) OpenAppend(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
}

func (osFS) SyncDir(dir string) error { return fsync.Dir(dir) }

// tempPattern names compaction temp files: hidden, in the log's directory.
const tempPattern = ".fold.snap.tmp-*"

// isTempName reports whether a directory entry is a compaction temp file
// left behind by a crash.
func isTempName(name string) bool {
	ok, _ := filepath.Match(tempPattern, name)
	return ok
}
