package natskv_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/memstore"
	"github.com/slipstream-kv/slipstream/natskv"
)

// node runs a slipstream.Follower over a bucket on its own goroutine.
type node struct {
	f       *slipstream.Follower
	cursor  atomic.Uint64 // last OnApplied revision
	mu      sync.Mutex
	applied []slipstream.Update
	cancel  context.CancelFunc
	done    chan struct{}
	result  slipstream.Cursor
	err     error
}

type nodeConfig struct {
	scope  slipstream.Scope
	resume slipstream.Cursor
	store  slipstream.Store
	lister slipstream.KeyLister
	filter func(slipstream.Update) bool
}

func runNode(t testing.TB, b *natskv.Bucket, cfg nodeConfig) *node {
	t.Helper()
	return runNodeWith(t, b, cfg, nil)
}

// runNodeWith is runNode with a hook to adjust the Follower before it runs.
func runNodeWith(t testing.TB, b *natskv.Bucket, cfg nodeConfig, configure func(*slipstream.Follower)) *node {
	t.Helper()
	n := &node{done: make(chan struct{})}
	f := slipstream.NewFollower(b, func(_ context.Context, batch []slipstream.Update) error {
		n.mu.Lock()
		n.applied = append(n.applied, batch...)
		n.mu.Unlock()
		return nil
	})
	f.Scope, f.Resume, f.Store, f.Lister, f.Filter = cfg.scope, cfg.resume, cfg.store, cfg.lister, cfg.filter
	f.Logger = quietLogger()
	f.OnApplied = func(c slipstream.Cursor) { n.cursor.Store(c.Rank()) }
	if configure != nil {
		configure(f)
	}
	n.f = f
	ctx, cancel := context.WithCancel(t.Context())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		n.result, n.err = f.Run(ctx)
	}()
	t.Cleanup(func() { n.stop() })
	return n
}

// stop shuts the node down and returns Run's result.
func (n *node) stop() (slipstream.Cursor, error) {
	n.cancel()
	<-n.done
	return n.result, n.err
}

// waitApplied waits until the applied cursor reaches rev.
func (n *node) waitApplied(t testing.TB, rev uint64, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for n.cursor.Load() < rev {
		select {
		case <-n.done:
			t.Fatalf("follower stopped at %d before reaching %d: %v", n.cursor.Load(), rev, n.err)
		case <-deadline:
			t.Fatalf("follower at %d, did not reach %d within %v", n.cursor.Load(), rev, d)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (n *node) appliedKeys() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var keys []string
	for _, u := range n.applied {
		keys = append(keys, u.Key)
	}
	return keys
}

// TestFollowerApplied runs the Follower on a real bucket: cursor after
// apply, resume from the store's cursor, rejected updates, expired resume.
func TestFollowerApplied(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()

	t.Run("applied_streams_and_advances_cursor", func(t *testing.T) {
		b := e.open(t, natskv.Config{Bucket: "applied-streams"})
		base := put(t, b, "node.base", "0")
		n := runNode(t, b, nodeConfig{resume: slipstream.CursorFromUint64(base)})
		put(t, b, "node.a", "1")
		put(t, b, "node.b", "1")
		last := put(t, b, "node.c", "1")
		n.waitApplied(t, last, 10*time.Second)
		c, err := n.stop()
		if err != nil || c.Rank() != last {
			t.Fatalf("Run = %s, %v; want %d", c, err, last)
		}
		if got := n.appliedKeys(); !slices.Equal(got, []string{"node.a", "node.b", "node.c"}) {
			t.Fatalf("applied %v", got)
		}
	})
	t.Run("applied_resumes_from_snapshot_cursor_without_skipping", func(t *testing.T) {
		b := e.open(t, natskv.Config{Bucket: "applied-resumes"})
		base := put(t, b, "node.base", "0")
		// The fold already holds everything up to base: a store's Follower
		// resumes from the store's cursor.
		store := memstore.New()
		if err := store.Apply([]slipstream.Update{slipstream.Put("node.base", []byte("0"), slipstream.VersionFromUint64(base))}, slipstream.CursorFromUint64(base)); err != nil {
			t.Fatal(err)
		}
		n1 := runNode(t, b, nodeConfig{store: store})
		put(t, b, "node.a", "1")
		rb := put(t, b, "node.b", "1")
		n1.waitApplied(t, rb, 10*time.Second)
		if _, err := n1.stop(); err != nil {
			t.Fatal(err)
		}
		if store.Cursor().Rank() != rb {
			t.Fatalf("persisted cursor %s, want %d", store.Cursor(), rb)
		}
		if got := n1.appliedKeys(); !slices.Equal(got, []string{"node.a", "node.b"}) {
			t.Fatalf("run 1 applied %v, want exactly [node.a node.b] (resume is exclusive of the cursor)", got)
		}
		if got := slices.Sorted(maps.Keys(store.Values())); !slices.Equal(got, []string{"node.a", "node.b", "node.base"}) {
			t.Fatalf("persisted keys %v", got)
		}
		put(t, b, "node.c", "1")
		rd := put(t, b, "node.d", "1")
		n2 := runNode(t, b, nodeConfig{resume: store.Cursor(), store: store})
		n2.waitApplied(t, rd, 10*time.Second)
		c, err := n2.stop()
		if err != nil || c.Rank() != rd {
			t.Fatalf("run 2 = %s, %v; want %d", c, err, rd)
		}
		if got := n2.appliedKeys(); !slices.Equal(got, []string{"node.c", "node.d"}) {
			t.Fatalf("run 2 applied %v, want exactly [node.c node.d]", got)
		}
	})
	t.Run("applied_advances_cursor_over_rejected_updates", func(t *testing.T) {
		b := e.open(t, natskv.Config{Bucket: "applied-rejected"})
		n := runNode(t, b, nodeConfig{filter: func(u slipstream.Update) bool { return strings.HasPrefix(u.Key, "node.") }})
		ra := put(t, b, "node.a", "1")
		n.waitApplied(t, ra, 10*time.Second)
		rx := put(t, b, "other.x", "1")
		n.waitApplied(t, rx, 10*time.Second)
		c, err := n.stop()
		if err != nil || c.Rank() != rx {
			t.Fatalf("Run = %s, %v; want %d", c, err, rx)
		}
		if got := n.appliedKeys(); !slices.Equal(got, []string{"node.a"}) {
			t.Fatalf("applied %v", got)
		}
	})
	t.Run("applied_survives_compacted_resume_cursor", func(t *testing.T) {
		b := e.open(t, natskv.Config{Bucket: "applied-compacted"})
		var last uint64
		for i := range 6 {
			last = put(t, b, "k", keyN("v", i))
		}
		// History 1: only k@6 is retained, so the resume after 1 expires
		// and the fallback state sync re-lists k@6.
		n := runNode(t, b, nodeConfig{resume: slipstream.CursorFromUint64(1)})
		n.waitApplied(t, last, 10*time.Second)
		live := put(t, b, "live", "1")
		n.waitApplied(t, live, 10*time.Second)
		c, err := n.stop()
		if err != nil || c.Rank() != live {
			t.Fatalf("Run = %s, %v; want %d", c, err, live)
		}
		if got := n.appliedKeys(); !slices.Equal(got, []string{"k", "live"}) {
			t.Fatalf("applied %v, want the re-listed k then live", got)
		}
	})
	_ = ctx
}

// resyncFixture builds a cursor-expired gap on bucket name: node A
// folds route.seed, route.gone, route.late and route.keep.0..4, stops at
// cursor C; offline, route.gone and route.late are deleted and their
// subjects purged (the markers are gone), route.seed and every keeper are
// rewritten (history 1 evicts the old records), and route.phoenix is
// deleted, purged and re-created. It returns the bucket, A's store and C.
func resyncFixture(t *testing.T, e *env, name string) (*natskv.Bucket, *memstore.Store, uint64) {
	t.Helper()
	ctx := t.Context()
	b := e.open(t, natskv.Config{Bucket: name, MaxBytes: 8 << 20})
	store := memstore.New()
	a := runNode(t, b, nodeConfig{store: store, lister: b})
	// A state sync: the seed reaches A whether it is re-listed or live.
	a.waitApplied(t, put(t, b, "route.seed", "seed-v1"), 10*time.Second)
	put(t, b, "route.gone", "x")
	put(t, b, "route.late", "x")
	put(t, b, "route.phoenix", "v1")
	var last uint64
	for i := range 5 {
		last = put(t, b, keyN("route.keep.", i), keyN("v1-", i))
	}
	a.waitApplied(t, last, 10*time.Second)
	if _, err := a.stop(); err != nil {
		t.Fatal(err)
	}
	c := store.Cursor().Rank()
	if c != last {
		t.Fatalf("store cursor %d, want %d", c, last)
	}

	stream := e.stream(t, name)
	for _, k := range []string{"route.gone", "route.late", "route.phoenix"} {
		if _, err := b.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+name+"."+k)); err != nil {
			t.Fatal(err)
		}
	}
	put(t, b, "route.phoenix", "reborn") // deleted and re-created in the gap
	put(t, b, "route.seed", "seed-v2")
	for i := range 5 {
		put(t, b, keyN("route.keep.", i), keyN("v2-", i))
	}
	if first := e.streamInfo(t, name).State.FirstSeq; first <= c+1 {
		t.Fatalf("premise: first sequence %d, want > %d", first, c+1)
	}
	return b, store, c
}

func wantFold(t *testing.T, store *memstore.Store, want map[string]string) {
	t.Helper()
	got := store.Values()
	if !maps.Equal(got, want) {
		t.Fatalf("fold = %v\nwant   %v", got, want)
	}
}

// lateLister re-creates route.late right after the listing it returns was
// taken: the synthetic delete for it must still come before the re-list's
// put (the ack barrier, docs/LOOP.md), or the new value would be erased.
type lateLister struct {
	b    *natskv.Bucket
	once sync.Once
}

func (l *lateLister) Keys(ctx context.Context, prefix string) ([]string, error) {
	keys, err := l.b.Keys(ctx, prefix)
	l.once.Do(func() {
		if _, perr := l.b.Put(ctx, "route.late", []byte("reborn-after-listing")); perr != nil && err == nil {
			err = perr
		}
	})
	return keys, err
}

// TestCursorExpiredResync is the expiry barrier (docs/LOOP.md) end to end
// with the Follower.
func TestCursorExpiredResync(t *testing.T) {
	e := newEnv(t)
	converged := map[string]string{
		"route.seed":    "seed-v2",
		"route.phoenix": "reborn",
		"route.late":    "reborn-after-listing",
		"route.keep.0":  "v2-0",
		"route.keep.1":  "v2-1",
		"route.keep.2":  "v2-2",
		"route.keep.3":  "v2-3",
		"route.keep.4":  "v2-4",
	}

	t.Run("resync_reconciles_offline_delete", func(t *testing.T) {
		b, store, c := resyncFixture(t, e, "routes-resync")
		var resyncs []slipstream.ResyncInfo
		n := runNodeResync(t, b, store, c, &lateLister{b: b}, &resyncs)
		poll.True(t, 10*time.Second, "route.late re-created after the listing reaches the fold", func() bool {
			en, ok, _ := store.Get("route.late")
			return ok && string(en.Value) == "reborn-after-listing"
		})
		last := e.streamInfo(t, b.Name()).State.LastSeq
		n.waitApplied(t, last, 10*time.Second)
		if _, err := n.stop(); err != nil {
			t.Fatal(err)
		}
		// route.gone exists nowhere any more: only a detected expiry plus
		// the resync removes it. route.late converges to the value written
		// after the listing.
		wantFold(t, store, converged)
		if len(resyncs) != 1 || resyncs[0].StaleKeys != 2 {
			t.Fatalf("resyncs = %+v, want one deleting route.gone and route.late", resyncs)
		}
		if store.Cursor().Rank() != last {
			t.Fatalf("store cursor %s, want %d", store.Cursor(), last)
		}
	})
	t.Run("without_lister_keeps_stale_key", func(t *testing.T) {
		// The "evil twin": no Lister, so the fallback is a re-list only.
		b, store, c := resyncFixture(t, e, "routes-evil")
		n := runNode(t, b, nodeConfig{resume: slipstream.CursorFromUint64(c), store: store})
		last := e.streamInfo(t, b.Name()).State.LastSeq
		n.waitApplied(t, last, 10*time.Second)
		if _, err := n.stop(); err != nil {
			t.Fatal(err)
		}
		want := maps.Clone(converged)
		want["route.gone"] = "x" // the silent divergence
		want["route.late"] = "x"
		wantFold(t, store, want)
	})
	t.Run("short_listing_never_deletes_live_keys", func(t *testing.T) {
		b, store, c := resyncFixture(t, e, "routes-short")
		before := store.Values()
		// The listing loses route.keep.0: without the cross-check the
		// resync would delete a live key from the fold.
		natskv.SetDropListed(b, func(key string) bool { return key == "route.keep.0" })
		n := runNode(t, b, nodeConfig{resume: slipstream.CursorFromUint64(c), store: store, lister: b})
		select {
		case <-n.done:
		case <-time.After(20 * time.Second):
			t.Fatal("follower kept running on a short listing")
		}
		_, err := n.stop()
		if !errors.Is(err, slipstream.ErrResync) || !errors.Is(err, natskv.ErrShortListing) {
			t.Fatalf("Run = %v; want the resync to fail on the short listing", err)
		}
		wantFold(t, store, before)
		if store.Cursor().Rank() != c {
			t.Fatalf("cursor moved to %s", store.Cursor())
		}
		// Restarted with a faithful listing, the same node converges.
		natskv.SetDropListed(b, nil)
		n2 := runNode(t, b, nodeConfig{resume: store.Cursor(), store: store, lister: b})
		n2.waitApplied(t, e.streamInfo(t, b.Name()).State.LastSeq, 10*time.Second)
		if _, err := n2.stop(); err != nil {
			t.Fatal(err)
		}
		want := maps.Clone(converged)
		delete(want, "route.late") // deleted in the gap, never re-created here
		wantFold(t, store, want)
	})
}

func runNodeResync(t *testing.T, b *natskv.Bucket, store *memstore.Store, c uint64, lister slipstream.KeyLister, resyncs *[]slipstream.ResyncInfo) *node {
	t.Helper()
	n := runNodeWith(t, b, nodeConfig{resume: slipstream.CursorFromUint64(c), store: store, lister: lister}, func(f *slipstream.Follower) {
		f.OnResync = func(info slipstream.ResyncInfo) { *resyncs = append(*resyncs, info) }
	})
	return n
}
