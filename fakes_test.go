package slipstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/memstore"
)

// Test doubles shared by the Follower tests: a scripted watcher, listers, a
// failing watcher, and a Store wrapper with hooks; the fold itself is
// package memstore's.

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

// keepPuts is the tests' default Filter: keep puts, reject the rest.
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

// errorWatcher fails every watch.
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

// newMemStore returns an empty in-memory fold.
func newMemStore() *memstore.Store { return memstore.New() }

// seeded returns an in-memory fold holding batch at cursor.
func seeded(t testing.TB, cursor slipstream.Cursor, batch ...slipstream.Update) *memstore.Store {
	t.Helper()
	s := memstore.New()
	if err := s.Apply(batch, cursor); err != nil {
		t.Fatal(err)
	}
	return s
}

// loadExport opens what an in-memory fold's ExportTo wrote.
func loadExport(t testing.TB, dir string) *memstore.Store {
	t.Helper()
	s, err := memstore.Open(dir)
	if err != nil {
		t.Fatal(err)
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
