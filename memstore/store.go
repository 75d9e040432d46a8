package memstore

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/slipstream-kv/slipstream"
)

const (
	// FileName is the file that holds a fold in its directory.
	FileName = "memstore.json"
	// Backend names this store in an [slipstream.Export].
	Backend = "memstore"
	// BackendVersion is the generation of the file's format.
	BackendVersion = "1"
)

// Store is an in-memory fold. The zero value is not usable; call [New] or
// [Open].
type Store struct {
	dir string // "" for a Store from New

	mu      sync.RWMutex
	entries map[string]slipstream.Entry
	cursor  slipstream.Cursor
	applies int
	closed  bool
	record  bool                // RecordUpdates was called
	updates []slipstream.Update // every update folded since
}

var _ slipstream.Store = (*Store)(nil)

// New returns an empty fold that lives only in memory.
func New() *Store { return &Store{entries: make(map[string]slipstream.Entry)} }

// Open returns the fold kept in dir, creating dir if needed; a directory
// without the file is an empty fold. It returns an error wrapping
// [slipstream.ErrInvalidFormat] when the file cannot be decoded.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("memstore: open %s: %w", dir, err)
	}
	s := New()
	s.dir = dir
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("memstore: open %s: %w", dir, err)
	}
	if err := s.decode(b); err != nil {
		return nil, fmt.Errorf("%w: memstore: %s: %w", slipstream.ErrInvalidFormat, filepath.Join(dir, FileName), err)
	}
	return s, nil
}

// Apply folds batch and sets cursor, atomically for readers. Puts insert or
// overwrite, deletes and purges remove. It copies what it keeps.
func (s *Store) Apply(batch []slipstream.Update, cursor slipstream.Cursor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memstore: apply: %w", slipstream.ErrClosed)
	}
	for _, u := range batch {
		switch u.Op {
		case slipstream.OpPut:
			s.entries[u.Key] = slipstream.Entry{Key: u.Key, Value: slices.Clone(u.Value), Version: u.Version}
		case slipstream.OpDelete, slipstream.OpPurge:
			delete(s.entries, u.Key)
		default:
			return fmt.Errorf("%w: memstore: update %q has op %v", slipstream.ErrInvalidFormat, u.Key, u.Op)
		}
		if s.record {
			u.Value = slices.Clone(u.Value)
			s.updates = append(s.updates, u)
		}
	}
	s.cursor = cursor
	s.applies++
	return nil
}

// Get returns the live entry for key; its Value is a copy.
func (s *Store) Get(key string) (slipstream.Entry, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return slipstream.Entry{}, false, fmt.Errorf("memstore: get: %w", slipstream.ErrClosed)
	}
	e, ok := s.entries[key]
	e.Value = slices.Clone(e.Value)
	return e, ok, nil
}

// ForEachInRange calls fn for the live entries under prefix in ascending
// key order, from a snapshot taken when it starts; values are copies.
func (s *Store) ForEachInRange(prefix string, fn func(slipstream.Entry) error) error {
	entries, err := s.snapshot(prefix)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// snapshot returns copies of the entries under prefix, sorted by key.
func (s *Store) snapshot(prefix string) ([]slipstream.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("memstore: scan: %w", slipstream.ErrClosed)
	}
	out := make([]slipstream.Entry, 0, len(s.entries))
	for k, e := range s.entries {
		if strings.HasPrefix(k, prefix) {
			e.Value = slices.Clone(e.Value)
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b slipstream.Entry) int { return cmp.Compare(a.Key, b.Key) })
	return out, nil
}

// Cursor returns the cursor of the last Apply, or the one loaded by Open.
func (s *Store) Cursor() slipstream.Cursor {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cursor
}

// Len returns the number of live keys.
func (s *Store) Len() (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, fmt.Errorf("memstore: len: %w", slipstream.ErrClosed)
	}
	return len(s.entries), nil
}

// Applies returns how many Apply calls succeeded.
func (s *Store) Applies() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applies
}

// RecordUpdates makes every later Apply keep a copy of the updates it
// folds, for [Store.Updates].
func (s *Store) RecordUpdates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record = true
}

// Updates returns the updates folded since RecordUpdates, in order.
func (s *Store) Updates() []slipstream.Update {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.updates)
}

// Values returns the fold as key → value.
func (s *Store) Values() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := make(map[string]string, len(s.entries))
	for k, e := range s.entries {
		m[k] = string(e.Value)
	}
	return m
}

// ExportTo writes the fold into dir/[FileName]. dir must be absent (it is
// created) or an empty directory; otherwise the error wraps
// [slipstream.ErrArtifactInvalid] and dir is left alone.
func (s *Store) ExportTo(dir string) (slipstream.Export, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return slipstream.Export{}, fmt.Errorf("memstore: export: %w", slipstream.ErrClosed)
	}
	switch des, err := os.ReadDir(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return slipstream.Export{}, fmt.Errorf("memstore: export to %s: %w", dir, err)
		}
	case err != nil:
		return slipstream.Export{}, fmt.Errorf("%w: memstore: export destination %s: %w", slipstream.ErrArtifactInvalid, dir, err)
	case len(des) > 0:
		return slipstream.Export{}, fmt.Errorf("%w: memstore: export destination %s is not empty", slipstream.ErrArtifactInvalid, dir)
	}
	if err := s.writeLocked(dir); err != nil {
		return slipstream.Export{}, err
	}
	return slipstream.Export{Backend: Backend, BackendVersion: BackendVersion, Cursor: s.cursor, Files: []string{FileName}}, nil
}

// Close releases the store; a Store from Open first writes its fold to its
// directory. A second Close returns [slipstream.ErrClosed].
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memstore: close: %w", slipstream.ErrClosed)
	}
	s.closed = true
	if s.dir == "" {
		return nil
	}
	return s.writeLocked(s.dir)
}

// file is the JSON form of a fold.
type file struct {
	Version string      `json:"version"`
	Cursor  []byte      `json:"cursor"` // the cursor's version token; empty for none
	Entries []fileEntry `json:"entries"`
}

type fileEntry struct {
	Key     string `json:"key"`
	Value   []byte `json:"value"`
	Version []byte `json:"version"`
}

// writeLocked writes the fold to dir/FileName through a temporary file.
func (s *Store) writeLocked(dir string) error {
	f := file{Version: BackendVersion, Cursor: s.cursor.Version().Bytes(), Entries: make([]fileEntry, 0, len(s.entries))}
	for _, e := range s.entries {
		f.Entries = append(f.Entries, fileEntry{Key: e.Key, Value: e.Value, Version: e.Version.Bytes()})
	}
	slices.SortFunc(f.Entries, func(a, b fileEntry) int { return cmp.Compare(a.Key, b.Key) })
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("memstore: encode: %w", err)
	}
	tmp := filepath.Join(dir, FileName+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("memstore: write %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, FileName)); err != nil {
		return fmt.Errorf("memstore: write %s: %w", dir, err)
	}
	return nil
}

// decode loads a fold written by writeLocked.
func (s *Store) decode(b []byte) error {
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if f.Version != BackendVersion {
		return fmt.Errorf("format version %q, want %q", f.Version, BackendVersion)
	}
	v, ok := slipstream.VersionFromBytes(f.Cursor)
	if !ok {
		return fmt.Errorf("cursor of %d bytes", len(f.Cursor))
	}
	s.cursor = slipstream.CursorAt(v)
	for _, fe := range f.Entries {
		v, ok := slipstream.VersionFromBytes(fe.Version)
		if !ok {
			return fmt.Errorf("key %q: version of %d bytes", fe.Key, len(fe.Version))
		}
		s.entries[fe.Key] = slipstream.Entry{Key: fe.Key, Value: fe.Value, Version: v}
	}
	return nil
}
