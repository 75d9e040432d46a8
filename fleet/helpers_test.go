package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/lease"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/pebblestore"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// backend is a fold backend under test: how to open a fold, and its
// artifact description.
type backend struct {
	name     string
	open     func(t testing.TB, dir string) slipstream.Store
	artifact artifact.Backend
}

var backends = []backend{
	{
		name: "applog",
		open: func(t testing.TB, dir string) slipstream.Store {
			t.Helper()
			s, err := applog.Open(dir, &applog.Options{Logger: quiet()})
			if err != nil {
				t.Fatalf("open applog fold: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		artifact: applog.ArtifactBackend{},
	},
	{
		name: "pebble",
		open: func(t testing.TB, dir string) slipstream.Store {
			t.Helper()
			s, err := pebblestore.Open(dir, &pebblestore.Options{Logger: quiet()})
			if err != nil {
				t.Fatalf("open pebble fold: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		artifact: pebblestore.ArtifactBackend{Logger: quiet()},
	},
}

func allArtifactBackends() []artifact.Backend {
	var out []artifact.Backend
	for _, b := range backends {
		out = append(out, b.artifact)
	}
	return out
}

// watchBucket is the bucket a test node follows: memkv or natskv.
type watchBucket interface {
	slipstream.Watcher
	slipstream.KeyLister
}

// node is a running follower folding a bucket into a store. Apply records
// every delivered update.
type node struct {
	f     *slipstream.Follower
	store slipstream.Store
	stop  context.CancelFunc
	done  chan struct{}
	err   error

	mu        sync.Mutex
	delivered []slipstream.Update
}

// startNode runs a follower of b into store until the test ends (or stop).
func startNode(t testing.TB, b watchBucket, store slipstream.Store) *node {
	t.Helper()
	n := &node{store: store, done: make(chan struct{})}
	n.f = slipstream.NewFollower(b, func(_ context.Context, batch []slipstream.Update) error {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, u := range batch {
			u.Value = slices.Clone(u.Value)
			n.delivered = append(n.delivered, u)
		}
		return nil
	})
	n.f.Store = store
	n.f.Lister = b
	n.f.MaxBatchDelay = time.Millisecond
	n.f.Logger = quiet()
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = func() {
		cancel()
		<-n.done
	}
	go func() {
		defer close(n.done)
		_, n.err = n.f.Run(ctx)
	}()
	t.Cleanup(func() {
		n.stop()
		if n.err != nil && !errors.Is(n.err, context.Canceled) {
			t.Errorf("follower: %v", n.err)
		}
	})
	return n
}

// deliveries returns the updates Apply received so far.
func (n *node) deliveries() []slipstream.Update {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.delivered)
}

// waitCursor waits (real time) until the node's fold reaches rev.
func (n *node) waitCursor(t testing.TB, rev uint64) {
	t.Helper()
	poll.Until(t, 30*time.Second, func() (bool, string) {
		c := n.store.Cursor().Rank()
		return c >= rev, fmt.Sprintf("fold cursor %d, want %d", c, rev)
	})
}

// dump returns a store's live entries as key → value.
func dump(t testing.TB, s slipstream.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := s.ForEachInRange("", func(e slipstream.Entry) error {
		out[e.Key] = string(e.Value)
		return nil
	}); err != nil {
		t.Fatalf("dump: %v", err)
	}
	return out
}

// diff describes how two key → value maps differ ("" when equal).
func diff(got, want map[string]string) string {
	if maps.Equal(got, want) {
		return ""
	}
	var d []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			d = append(d, "missing "+k)
		} else if g != v {
			d = append(d, "stale "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "extra "+k)
		}
	}
	slices.Sort(d)
	if len(d) > 10 {
		d = append(d[:10], fmt.Sprintf("… %d more", len(d)-10))
	}
	return strings.Join(d, ", ")
}

// isEmpty reports whether dir is empty or absent.
func isEmpty(dir string) bool {
	ents, err := os.ReadDir(dir)
	return errors.Is(err, os.ErrNotExist) || (err == nil && len(ents) == 0)
}

// mustEmpty fails unless dir is empty (or absent).
func mustEmpty(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("scratch directory %s not empty: %v", dir, names)
	}
}

// payloads lists the payload objects of key under the transport.
func payloads(t testing.TB, tr *objstore.Transport, key string) []objstore.Attrs {
	t.Helper()
	prefix := strings.Trim(tr.Prefix+"/"+key+objstore.PayloadsSuffix+"/", "/") + "/"
	list, err := tr.Store.List(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// leaseNode returns a lease handle on kv's key for holder.
func leaseNode(kv lease.KV, holder string) *lease.Lease {
	return &lease.Lease{KV: kv, Key: "export.test", Holder: holder, Logger: quiet()}
}

// completed returns the lease record's completed cursor.
func completed(t testing.TB, l *lease.Lease) (*lease.Record, uint64) {
	t.Helper()
	r, err := l.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r == nil {
		return nil, 0
	}
	c, err := r.CompletedCursor()
	if err != nil {
		t.Fatal(err)
	}
	return r, c.Rank()
}
