package slipstream_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// Test doubles shared by the Follower tests. They mirror the reference's
// mocks: a scripted watcher, listers, a failing watcher, and an in-memory
// Store with an exporter.

func put(key, value string, rev uint64) slipstream.Update {
	return slipstream.Put(key, []byte(value), slipstream.VersionFromUint64(rev))
}

func cur(rev uint64) slipstream.Cursor { return slipstream.CursorFromUint64(rev) }

// rank returns the revision of c, failing the test for a non-8-byte cursor
// other than none (which ranks 0).
func rank(t testing.TB, c slipstream.Cursor) uint64 {
	t.Helper()
	if c.IsNone() {
		return 0
	}
	r, ok := c.Uint64()
	if !ok {
		t.Fatalf("cursor %v has no uint64 view", c)
	}
	return r
}

// keepPuts is the reference's default parse: keep puts, reject the rest.
func keepPuts(u slipstream.Update) bool { return u.Op == slipstream.OpPut }

// watchCall records one Watch invocation.
type watchCall struct {
	scope slipstream.Scope
	after slipstream.Cursor
}

// scriptedWatcher serves a "full" script for state-sync watches (none
// cursor) and a "from" script for resumes. A resume can instead fail with
// ErrCursorExpired. After delivering, Watch returns (the stream closes) or,
// with hold, keeps the stream open until ctx is cancelled.
type scriptedWatcher struct {
	full        []slipstream.Update
	from        []slipstream.Update
	fromExpires bool
	hold        bool
	// beforeFull, if set, runs when a state-sync watch starts.
	beforeFull func()

	mu     sync.Mutex
	calls  []watchCall
	active atomic.Int32 // Watch calls in flight
}

func (w *scriptedWatcher) Watch(ctx context.Context, scope slipstream.Scope, after slipstream.Cursor, out chan<- slipstream.Update) error {
	w.active.Add(1)
	defer w.active.Add(-1)
	w.mu.Lock()
	w.calls = append(w.calls, watchCall{scope: scope, after: after})
	w.mu.Unlock()
	script := w.full
	if !after.IsNone() {
		if w.fromExpires {
			return fmt.Errorf("%w: scripted expiry of cursor %v", slipstream.ErrCursorExpired, after)
		}
		script = w.from
	} else if w.beforeFull != nil {
		w.beforeFull()
	}
	for _, u := range script {
		select {
		case out <- u:
		case <-ctx.Done():
			return nil
		}
	}
	if w.hold {
		<-ctx.Done()
	}
	return nil
}

func (w *scriptedWatcher) Calls() []watchCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]watchCall(nil), w.calls...)
}

// errorWatcher fails every watch, like the reference's ErrorWatcher.
type errorWatcher struct{}

func (errorWatcher) Watch(context.Context, slipstream.Scope, slipstream.Cursor, chan<- slipstream.Update) error {
	return fmt.Errorf("%w: %w", slipstream.ErrWatch, errInjectedWatch)
}

// prefixLister serves a fixed live-key list, filtered by string prefix like
// a real backend.
type prefixLister struct {
	live []string
	// afterList, if set, runs after each listing (to change the bucket
	// between the listing and the fallback watch).
	afterList func()
}

func (l *prefixLister) Keys(_ context.Context, prefix string) ([]string, error) {
	var out []string
	for _, k := range l.live {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	if l.afterList != nil {
		l.afterList()
	}
	return out, nil
}

// failingLister fails every listing.
type failingLister struct{}

func (failingLister) Keys(context.Context, string) ([]string, error) {
	return nil, fmt.Errorf("%w: %w", slipstream.ErrOperationFailed, errInjectedListing)
}

// recorder collects what the loop hands to Apply, Filter and OnApplied.
type recorder struct {
	mu       sync.Mutex
	batches  [][]slipstream.Update // copies of every Apply batch
	filtered []slipstream.Update   // every update Filter saw
	cursors  []slipstream.Cursor   // every OnApplied cursor
}

func (r *recorder) Apply(_ context.Context, batch []slipstream.Update) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, append([]slipstream.Update(nil), batch...))
	return nil
}

func (r *recorder) OnApplied(c slipstream.Cursor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cursors = append(r.cursors, c)
}

// filter returns a Filter that records every update and keeps those keep
// accepts.
func (r *recorder) filter(keep func(slipstream.Update) bool) func(slipstream.Update) bool {
	return func(u slipstream.Update) bool {
		r.mu.Lock()
		r.filtered = append(r.filtered, u)
		r.mu.Unlock()
		return keep(u)
	}
}

// values returns the values of every applied update, flattened, in order.
func (r *recorder) values() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.batches {
		for _, u := range b {
			out = append(out, string(u.Value))
		}
	}
	return out
}

func (r *recorder) batchSizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, b := range r.batches {
		out = append(out, len(b))
	}
	return out
}

func (r *recorder) applyCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

func (r *recorder) onApplied() []slipstream.Cursor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slipstream.Cursor(nil), r.cursors...)
}

// lastApplied returns the last OnApplied cursor (none if never called).
func (r *recorder) lastApplied() slipstream.Cursor {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cursors) == 0 {
		return slipstream.Cursor{}
	}
	return r.cursors[len(r.cursors)-1]
}

// memStore is an in-memory [slipstream.Store]. ExportTo writes fold.json,
// which loadExport reopens.
type memStore struct {
	mu      sync.Mutex
	entries map[string]slipstream.Entry
	cursor  slipstream.Cursor
	applies int
	closed  bool
}

var _ slipstream.Store = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{entries: make(map[string]slipstream.Entry)} }

// seed applies batch at cursor, failing the test on error.
func (s *memStore) seed(t testing.TB, cursor slipstream.Cursor, batch ...slipstream.Update) *memStore {
	t.Helper()
	if err := s.Apply(batch, cursor); err != nil {
		t.Fatal(err)
	}
	s.applies = 0
	return s
}

func (s *memStore) Apply(batch []slipstream.Update, cursor slipstream.Cursor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return slipstream.ErrClosed
	}
	for _, u := range batch {
		switch u.Op {
		case slipstream.OpPut:
			s.entries[u.Key] = slipstream.Entry{Key: u.Key, Value: append([]byte(nil), u.Value...), Version: u.Version}
		default:
			delete(s.entries, u.Key)
		}
	}
	s.cursor = cursor
	s.applies++
	return nil
}

func (s *memStore) Get(key string) (slipstream.Entry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return slipstream.Entry{}, false, slipstream.ErrClosed
	}
	e, ok := s.entries[key]
	return e, ok, nil
}

func (s *memStore) ForEachInRange(prefix string, fn func(slipstream.Entry) error) error {
	s.mu.Lock()
	var es []slipstream.Entry
	for k, e := range s.entries {
		if strings.HasPrefix(k, prefix) {
			es = append(es, e)
		}
	}
	s.mu.Unlock()
	sort.Slice(es, func(i, j int) bool { return es[i].Key < es[j].Key })
	for _, e := range es {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) applyCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applies
}

func (s *memStore) Cursor() slipstream.Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor
}

// snapshot returns key → value of the fold.
func (s *memStore) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.entries))
	for k, e := range s.entries {
		out[k] = string(e.Value)
	}
	return out
}

type exportFile struct {
	Cursor  string            `json:"cursor"` // hex of the version bytes
	Entries map[string]string `json:"entries"`
}

func (s *memStore) ExportTo(dir string) (slipstream.Export, error) {
	if des, err := os.ReadDir(dir); err == nil && len(des) > 0 {
		return slipstream.Export{}, fmt.Errorf("%w: destination %s is not empty", slipstream.ErrArtifactInvalid, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return slipstream.Export{}, err
	}
	s.mu.Lock()
	f := exportFile{Cursor: hex.EncodeToString(s.cursor.Version().Bytes()), Entries: make(map[string]string)}
	for k, e := range s.entries {
		f.Entries[k] = string(e.Value)
	}
	c := s.cursor
	s.mu.Unlock()
	b, err := json.Marshal(f)
	if err != nil {
		return slipstream.Export{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "fold.json"), b, 0o644); err != nil {
		return slipstream.Export{}, err
	}
	return slipstream.Export{Backend: "memstore", BackendVersion: "1", Cursor: c, Files: []string{"fold.json"}}, nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// loadExport reopens what memStore.ExportTo wrote.
func loadExport(t testing.TB, dir string) *memStore {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "fold.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f exportFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(f.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := slipstream.VersionFromBytes(raw)
	if !ok {
		t.Fatalf("bad exported cursor %q", f.Cursor)
	}
	s := newMemStore()
	s.cursor = slipstream.CursorAt(v)
	for k, val := range f.Entries {
		s.entries[k] = slipstream.Entry{Key: k, Value: []byte(val)}
	}
	return s
}

// hookStore wraps a Store, intercepting the calls whose hook is set.
type hookStore struct {
	slipstream.Store
	apply   func(batch []slipstream.Update, cursor slipstream.Cursor) error
	forEach func(prefix string, fn func(slipstream.Entry) error) error
	export  func(dir string) (slipstream.Export, error)
	calls   atomic.Int32 // Apply calls seen
}

func (s *hookStore) Apply(batch []slipstream.Update, cursor slipstream.Cursor) error {
	s.calls.Add(1)
	if s.apply != nil {
		return s.apply(batch, cursor)
	}
	return s.Store.Apply(batch, cursor)
}

func (s *hookStore) ForEachInRange(prefix string, fn func(slipstream.Entry) error) error {
	if s.forEach != nil {
		return s.forEach(prefix, fn)
	}
	return s.Store.ForEachInRange(prefix, fn)
}

func (s *hookStore) ExportTo(dir string) (slipstream.Export, error) {
	if s.export != nil {
		return s.export(dir)
	}
	return s.Store.ExportTo(dir)
}

var (
	errInjectedStore   = errors.New("injected transient store failure")
	errInjectedScan    = errors.New("injected fold scan failure")
	errInjectedListing = errors.New("injected listing failure")
	errInjectedWatch   = errors.New("injected watch failure")
)

// failFirstApply wraps inner so that its first Apply fails, then delegates.
func failFirstApply(inner slipstream.Store) *hookStore {
	var failed atomic.Bool
	s := &hookStore{Store: inner}
	s.apply = func(batch []slipstream.Update, cursor slipstream.Cursor) error {
		if !failed.Swap(true) {
			return errInjectedStore
		}
		return inner.Apply(batch, cursor)
	}
	return s
}
