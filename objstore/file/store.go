package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/slipstream-kv/slipstream/internal/fsync"
	"github.com/slipstream-kv/slipstream/objstore"
)

var _ objstore.Store = (*Store)(nil)

// tmpDir holds files being written, at the store's root.
const tmpDir = ".slipstream-tmp"

// Store is an object store on a local directory. It is safe for concurrent
// use, also by several processes on one directory.
type Store struct {
	dir string
}

// Open returns the store rooted at dir, creating dir if it is missing.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("open object directory: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir returns the store's root directory.
func (s *Store) Dir() string { return s.dir }

// path maps an object name onto its file.
func (s *Store) path(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "\\\x00") {
		return "", fmt.Errorf("%w: %q", objstore.ErrInvalidName, name)
	}
	segs := strings.Split(name, "/")
	for _, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: %q has an empty, . or .. segment", objstore.ErrInvalidName, name)
		}
	}
	if segs[0] == tmpDir {
		return "", fmt.Errorf("%w: %q is reserved", objstore.ErrInvalidName, name)
	}
	return filepath.Join(s.dir, filepath.FromSlash(name)), nil
}

func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Get opens the object's file.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, objstore.Attrs, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, objstore.Attrs{}, err
	}
	f, err := os.Open(p)
	if notExist(err) {
		return nil, objstore.Attrs{}, fmt.Errorf("get %s: %w", name, objstore.ErrNotExist)
	}
	if err != nil {
		return nil, objstore.Attrs{}, fmt.Errorf("get %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, objstore.Attrs{}, fmt.Errorf("get %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, objstore.Attrs{}, fmt.Errorf("get %s: not a regular file: %w", name, objstore.ErrNotExist)
	}
	return f, objstore.Attrs{Name: name, Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

// writeTemp writes size bytes of r to a synced temporary file and returns its
// path.
func (s *Store) writeTemp(ctx context.Context, r io.ReaderAt, size int64) (string, error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, tmpDir), "obj-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, io.NewSectionReader(r, 0, size))
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// Put writes the object through a temporary file renamed into place.
func (s *Store) Put(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	tmp, err := s.writeTemp(ctx, r, size)
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	defer os.Remove(tmp)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return fsync.Dir(filepath.Dir(p))
}

// Create links a temporary file into place; the link fails if the name
// exists, which makes Create atomic.
func (s *Store) Create(ctx context.Context, name string, data []byte) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	tmp, err := s.writeTemp(ctx, strings.NewReader(string(data)), int64(len(data)))
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer os.Remove(tmp)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: already exists: %w", name, objstore.ErrPreconditionFailed)
		}
		return fmt.Errorf("create %s: %w", name, err)
	}
	return fsync.Dir(filepath.Dir(p))
}

// Replace is not implemented: a directory has no compare-and-swap.
func (s *Store) Replace(ctx context.Context, name string, data []byte, etag string) error {
	return fmt.Errorf("replace %s: a local directory cannot replace conditionally: %w", name, objstore.ErrNotImplemented)
}

// List walks the directory holding prefix's last segment.
func (s *Store) List(ctx context.Context, prefix string) ([]objstore.Attrs, error) {
	base := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = prefix[:i]
	}
	root := s.dir
	if base != "" {
		p, err := s.path(base)
		if err != nil {
			return nil, nil // no object can have a name under an invalid directory
		}
		root = p
	}
	var out []objstore.Attrs
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && notExist(err) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == tmpDir {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(rel, prefix) {
			return nil
		}
		fi, err := d.Info()
		if notExist(err) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		out = append(out, objstore.Attrs{Name: rel, Size: fi.Size(), LastModified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b objstore.Attrs) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete removes the object's file.
func (s *Store) Delete(ctx context.Context, name string) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !notExist(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
