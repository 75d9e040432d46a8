package artifact

import (
	"io/fs"
	"os"

	"github.com/slipstream-kv/slipstream/internal/fsync"
	"github.com/slipstream-kv/slipstream/internal/movedir"
)

// fsys is the filesystem seam of staging, sealing, import and unpacking, so
// tests can make any step fail, or freeze the disk as a crash would, and
// check that a destination then holds nothing or a complete artifact.
// osFS is the only production implementation.
type fsys interface {
	Lstat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	MkdirAll(path string, perm fs.FileMode) error
	MkdirTemp(dir, pattern string) (string, error)
	Chmod(name string, mode fs.FileMode) error
	// Open opens a file for reading.
	Open(name string) (*os.File, error)
	// Create creates a new file for writing; it fails if name exists.
	Create(name string, perm fs.FileMode) (*os.File, error)
	// Sync flushes f's data to stable storage.
	Sync(f *os.File) error
	// SyncDir flushes the directory entries of dir to stable storage.
	SyncDir(dir string) error
	// Rename renames oldpath onto newpath, which may be an empty
	// directory (replaced atomically) when oldpath is a directory.
	Rename(oldpath, newpath string) error
	RemoveAll(path string) error
}

type osFS struct{}

func (osFS) Lstat(name string) (fs.FileInfo, error)        { return os.Lstat(name) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error)    { return os.ReadDir(name) }
func (osFS) MkdirAll(path string, perm fs.FileMode) error  { return os.MkdirAll(path, perm) }
func (osFS) MkdirTemp(dir, pattern string) (string, error) { return os.MkdirTemp(dir, pattern) }
func (osFS) Chmod(name string, mode fs.FileMode) error     { return os.Chmod(name, mode) }
func (osFS) Open(name string) (*os.File, error)            { return os.Open(name) }
func (osFS) Sync(f *os.File) error                         { return f.Sync() }
func (osFS) RemoveAll(path string) error                   { return os.RemoveAll(path) }

func (osFS) Create(name string, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
}

func (osFS) SyncDir(dir string) error { return fsync.Dir(dir) }

func (osFS) Rename(oldpath, newpath string) error { return movedir.Onto(oldpath, newpath) }
