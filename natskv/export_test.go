package natskv

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipstream-kv/slipstream"
)

// Test-only access to internals, for the black-box tests in natskv_test.

// SetDropListed makes listings drop the messages of keys for which drop
// reports true, faking a short listing.
func SetDropListed(b *Bucket, drop func(key string) bool) { b.testDropListed = drop }

// SetStreamCheckInterval changes how often a running watch checks its
// stream's identity.
func SetStreamCheckInterval(b *Bucket, d time.Duration) { b.streamCheck = d }

// SetListed runs fn in every listing between the first read of the
// stream's state and the creation of the listing's consumer.
func SetListed(b *Bucket, fn func()) { b.testListed = fn }

// SetGuardInterval changes the floor guard's backstop period.
func SetGuardInterval(b *Bucket, d time.Duration) { b.guardInterval = d }

// MemStore is a minimal in-memory slipstream.Store for tests (the real
// folds are built elsewhere). It records every Apply.
type MemStore struct {
	mu      sync.Mutex
	data    map[string]slipstream.Entry
	cursor  slipstream.Cursor
	applies [][]slipstream.Update
	closed  bool
}

var _ slipstream.Store = (*MemStore)(nil)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{data: make(map[string]slipstream.Entry)} }

// Apply folds batch and records it.
func (s *MemStore) Apply(batch []slipstream.Update, cursor slipstream.Cursor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return slipstream.ErrClosed
	}
	cp := make([]slipstream.Update, len(batch))
	for i, u := range batch {
		u.Value = append([]byte(nil), u.Value...)
		cp[i] = u
		switch u.Op {
		case slipstream.OpPut:
			s.data[u.Key] = slipstream.Entry{Key: u.Key, Value: cp[i].Value, Version: u.Version}
		default:
			delete(s.data, u.Key)
		}
	}
	s.applies = append(s.applies, cp)
	s.cursor = cursor
	return nil
}

// Get returns the live entry for key.
func (s *MemStore) Get(key string) (slipstream.Entry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.data[key]
	return e, ok, nil
}

// ForEachInRange calls fn for the keys under prefix, in order.
func (s *MemStore) ForEachInRange(prefix string, fn func(slipstream.Entry) error) error {
	s.mu.Lock()
	var entries []slipstream.Entry
	for k, e := range s.data {
		if strings.HasPrefix(k, prefix) {
			entries = append(entries, e)
		}
	}
	s.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool { return entries[i].Key < entries[j].Key })
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Cursor returns the cursor of the last Apply.
func (s *MemStore) Cursor() slipstream.Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor
}

// ExportTo is not supported.
func (s *MemStore) ExportTo(string) (slipstream.Export, error) {
	return slipstream.Export{}, fmt.Errorf("memstore: %w", slipstream.ErrUnsupported)
}

// Close marks the store closed.
func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("memstore: closed twice")
	}
	s.closed = true
	return nil
}

// Snapshot returns a copy of the key → value map.
func (s *MemStore) Snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]string, len(s.data))
	for k, e := range s.data {
		m[k] = string(e.Value)
	}
	return m
}

// Updates returns every update folded so far, in order.
func (s *MemStore) Updates() []slipstream.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []slipstream.Update
	for _, b := range s.applies {
		all = append(all, b...)
	}
	return all
}
