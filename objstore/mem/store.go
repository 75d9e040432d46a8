package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipstream-kv/slipstream/objstore"
)

var _ objstore.Store = (*Store)(nil)

// Store is an in-memory object store. Conditional writes are evaluated under
// one lock, so they are linearizable. The zero value is not usable; call New.
type Store struct {
	// NoReplace makes Replace return objstore.ErrNotImplemented, like a
	// store without conditional replace.
	NoReplace bool

	mu struct {
		sync.Mutex
		objects map[string]object
		seq     uint64
		now     time.Time // zero: time.Now
	}
}

type object struct {
	data     []byte
	etag     string
	modified time.Time
}

// New returns an empty store.
func New() *Store {
	s := &Store{}
	s.mu.objects = make(map[string]object)
	return s
}

// SetNow fixes the clock stamped into LastModified by later writes at t; the
// zero Time restores the real clock.
func (s *Store) SetNow(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.now = t
}

// now returns the store's clock; s.mu must be held.
func (s *Store) now() time.Time {
	if s.mu.now.IsZero() {
		return time.Now()
	}
	return s.mu.now
}

// put stores data under name with a fresh ETag; s.mu must be held.
func (s *Store) put(name string, data []byte) {
	s.mu.seq++
	s.mu.objects[name] = object{data: data, etag: `"` + strconv.FormatUint(s.mu.seq, 10) + `"`, modified: s.now()}
}

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", objstore.ErrInvalidName)
	}
	return nil
}

// Get returns a reader over a snapshot of the object.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, objstore.Attrs, error) {
	if err := ctx.Err(); err != nil {
		return nil, objstore.Attrs{}, err
	}
	s.mu.Lock()
	o, ok := s.mu.objects[name]
	s.mu.Unlock()
	if !ok {
		return nil, objstore.Attrs{}, fmt.Errorf("get %s: %w", name, objstore.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(o.data)), attrs(name, o), nil
}

func attrs(name string, o object) objstore.Attrs {
	return objstore.Attrs{Name: name, Size: int64(len(o.data)), ETag: o.etag, LastModified: o.modified}
}

// Put stores a copy of the size bytes of r.
func (s *Store) Put(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	data := make([]byte, size)
	if n, err := r.ReadAt(data, 0); int64(n) < size {
		return fmt.Errorf("put %s: read %d of %d bytes: %w", name, n, size, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(name, data)
	return nil
}

// Create stores a copy of data if name is free.
func (s *Store) Create(ctx context.Context, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mu.objects[name]; ok {
		return fmt.Errorf("create %s: already exists: %w", name, objstore.ErrPreconditionFailed)
	}
	s.put(name, bytes.Clone(data))
	return nil
}

// Replace stores a copy of data if the object's ETag is etag.
func (s *Store) Replace(ctx context.Context, name string, data []byte, etag string) error {
	if s.NoReplace {
		return fmt.Errorf("replace %s: %w", name, objstore.ErrNotImplemented)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.mu.objects[name]
	if !ok {
		return fmt.Errorf("replace %s: %w", name, objstore.ErrNotExist)
	}
	if o.etag != etag {
		return fmt.Errorf("replace %s: ETag %s is not %s: %w", name, o.etag, etag, objstore.ErrPreconditionFailed)
	}
	s.put(name, bytes.Clone(data))
	return nil
}

// List returns the objects whose names start with prefix, sorted by name.
func (s *Store) List(ctx context.Context, prefix string) ([]objstore.Attrs, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var out []objstore.Attrs
	for name, o := range s.mu.objects {
		if strings.HasPrefix(name, prefix) {
			out = append(out, attrs(name, o))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b objstore.Attrs) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete removes the object, if any.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mu.objects, name)
	return nil
}
