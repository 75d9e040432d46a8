package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/memkv"
	"github.com/slipstream-kv/slipstream/natskv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/mem"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

func TestMirror_FleetUsageErrors(t *testing.T) {
	fold := t.TempDir()
	base := []string{"mirror", "-bucket", "b", "-fold", fold}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"export without period", []string{"-export-to", "s3://x/p"}, "-export-to needs -export-every of at least 1s"},
		{"export period too short", []string{"-export-to", "s3://x/p", "-export-every", "500ms"}, "at least 1s"},
		{"period without export", []string{"-export-every", "1m"}, "-export-every goes with -export-to"},
		{"node id without export", []string{"-node-id", "a"}, "-node-id goes with -export-to"},
		{"bootstrap key without source", []string{"-bootstrap-key", "k"}, "-bootstrap-key goes with -bootstrap-from"},
		{"bad export URL", []string{"-export-to", "bogus://x", "-export-every", "1m"}, "unknown scheme"},
		{"bad bootstrap URL", []string{"-bootstrap-from", "not a url"}, "invalid store URL"},
		{"prefix without key", []string{"-prefix", "a.", "-bootstrap-from", "s3://x/p"}, "name the artifact with -export-key or -bootstrap-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runMain(t, "", append(base, tt.args...)...)
			if !errors.As(err, new(*usageError)) || !strings.Contains(errorLine(err), tt.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tt.want)
			}
		})
	}
}

func TestLeaseKey(t *testing.T) {
	k := leaseKey("routes", "s3://b/fleet/", "edge/latest")
	if k != leaseKey("routes", "s3://b/fleet", "edge/latest") {
		t.Fatal("the lease key depends on a trailing slash")
	}
	for _, other := range []string{
		leaseKey("routes", "s3://b/other", "edge/latest"),
		leaseKey("routes", "s3://b/fleet", "edge/other"),
		leaseKey("orders", "s3://b/fleet", "edge/latest"),
	} {
		if other == k {
			t.Fatalf("two fleets share the lease key %s", k)
		}
	}
	if !strings.HasPrefix(k, "export.routes.") || len(k) != len("export.routes.")+16 {
		t.Fatalf("lease key %q", k)
	}
}

// fakeBucket is a mirrorBucket on memkv whose reported history can be
// narrowed.
type fakeBucket struct {
	*memkv.KV
	first uint64 // reported first sequence when set
}

func (b *fakeBucket) Status(ctx context.Context) (natskv.Status, error) {
	st := natskv.Status{FirstSeq: b.KV.FirstRevision(), LastSeq: b.KV.LastRevision()}
	if b.first != 0 {
		st.FirstSeq = b.first
	}
	return st, nil
}

// publishArtifact folds n puts into a fold of backend and publishes it.
func publishArtifact(t *testing.T, tr *objstore.Transport, key, backend string, n int) *artifact.Manifest {
	t.Helper()
	fd, err := openFold(filepath.Join(t.TempDir(), "src"), backend, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	var batch []slipstream.Update
	for i := range n {
		batch = append(batch, slipstream.Put(fmt.Sprintf("k.%d", i), []byte("v"), slipstream.VersionFromUint64(uint64(i+1))))
	}
	if err := fd.Apply(batch, slipstream.CursorFromUint64(uint64(n))); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "art")
	m, err := artifact.ExportStore(fd, art)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Upload(t.Context(), key, art); err != nil {
		t.Fatal(err)
	}
	return m
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// bootNode builds a fleet node bootstrapping from tr into a fresh fold of
// backend (explicit or not), on a bucket with revs revisions.
func bootNode(t *testing.T, tr *objstore.Transport, backend string, explicit bool, revs int) (*fleetNode, *fakeBucket, *bytes.Buffer) {
	t.Helper()
	kv := memkv.New()
	for i := range revs {
		if _, err := kv.Put(t.Context(), fmt.Sprintf("k.%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	fb := &fakeBucket{KV: kv}
	ff := fleetFlags{bootstrapFrom: "file:///unused", bootstrapKey: "key", nodeID: "n"}
	dir := filepath.Join(t.TempDir(), "fold")
	fd, err := openFold(dir, backend, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	fd = ff.wrapFold(fd)
	t.Cleanup(func() { fd.Close() })
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	n := newFleetNode(ff, explicit, "b", fb, fd, newTracker(slipstream.AllKeys(), log, nil), nil, log)
	n.bootTr, n.pointerTr, n.pointerKey = tr, tr, "key"
	return n, fb, &logs
}

func TestBootstrapDecisions(t *testing.T) {
	tr := &objstore.Transport{Store: mem.New()}
	publishArtifact(t, tr, "key", backendPebble, 20)

	t.Run("imports into an empty fold, taking the artifact's backend", func(t *testing.T) {
		n, _, logs := bootNode(t, tr, backendAppLog, false, 25)
		if err := n.beforeRun(t.Context()); err != nil {
			t.Fatal(err)
		}
		if c := n.fold.Cursor().Rank(); c != 20 || n.fold.backendName() != backendPebble {
			t.Fatalf("fold at %d, backend %s; want the artifact's 20, pebble\n%s", c, n.fold.backendName(), logs)
		}
		if k, _ := n.fold.Keys(); k != 20 {
			t.Fatalf("%d keys after the import", k)
		}
		if rec := n.status().Bootstrap.Last; rec.Outcome != bootImported || rec.Reason != "empty fold" || rec.Cursor != 20 {
			t.Fatalf("bootstrap record %+v", rec)
		}
		if ents, _ := os.ReadDir(n.scratch); len(ents) != 0 {
			t.Fatalf("scratch holds %v", ents)
		}
		// Only the first run bootstraps (and an expiry, below).
		first := n.status().Bootstrap.Last.Time
		if err := n.beforeRun(t.Context()); err != nil || n.status().Bootstrap.Last.Time != first {
			t.Fatalf("a second run bootstrapped again (%v)", err)
		}
	})
	fallbacks := []struct {
		name, backend string
		explicit      bool
		revs          int
		first         uint64
		want          string
	}{
		{"explicit backend differs", backendAppLog, true, 25, 0, "backend differs"},
		{"older than the history", backendPebble, false, 25, 22, "older than the bucket's retained history"},
		{"ahead of the bucket", backendPebble, false, 10, 0, "ahead of the bucket"},
	}
	for _, tt := range fallbacks {
		t.Run(tt.name, func(t *testing.T) {
			n, fb, logs := bootNode(t, tr, tt.backend, tt.explicit, tt.revs)
			fb.first = tt.first
			if err := n.beforeRun(t.Context()); err != nil {
				t.Fatal(err)
			}
			rec := n.status().Bootstrap.Last
			if rec.Outcome != bootFallback || !strings.Contains(rec.Message, tt.want) || !strings.Contains(logs.String(), tt.want) {
				t.Fatalf("record %+v, logs:\n%s\nwant a fallback because %q", rec, logs, tt.want)
			}
			if !n.fold.Cursor().IsNone() {
				t.Fatal("a fallback changed the fold")
			}
			if n.resyncNext {
				t.Fatal("an empty fold's fallback asked for a resync")
			}
		})
	}
	t.Run("another bucket's artifact", func(t *testing.T) {
		// The bucket holds other keys at the artifact's revisions.
		n, fb, logs := bootNode(t, tr, backendAppLog, false, 0)
		for i := range 25 {
			if _, err := fb.Put(t.Context(), fmt.Sprintf("x.%d", i), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		bd := &binder{dir: n.fold.Dir, want: newBinding("b", slipstream.AllKeys())}
		n.t.bind = bd
		if err := n.beforeRun(t.Context()); err != nil {
			t.Fatal(err)
		}
		rec := n.status().Bootstrap.Last
		if rec.Outcome != bootFallback || !strings.Contains(rec.Message, "not a fold of this bucket") ||
			!strings.Contains(logs.String(), `where bucket \"b\" holds a put of \"x.19\"`) {
			t.Fatalf("record %+v, logs:\n%s", rec, logs)
		}
		if k, _ := n.fold.Keys(); k != 0 || !n.fold.Cursor().IsNone() || n.fold.backendName() != backendAppLog {
			t.Fatalf("after the fallback the fold holds %d keys at %v (%s), want a fresh applog fold", k, n.fold.Cursor(), n.fold.backendName())
		}
		if bd.unbound.Load() {
			t.Fatal("the fresh fold is not bound")
		}
		if b, err := readBinding(n.fold.Dir); err != nil || b == nil || b.Bucket != "b" {
			t.Fatalf("fresh fold's binding %+v %v", b, err)
		}
	})
	t.Run("imported fold is unbound", func(t *testing.T) {
		n, _, _ := bootNode(t, tr, backendPebble, false, 25)
		bd := &binder{dir: n.fold.Dir, want: newBinding("b", slipstream.AllKeys())}
		n.t.bind = bd
		if err := n.beforeRun(t.Context()); err != nil {
			t.Fatal(err)
		}
		if rec := n.status().Bootstrap.Last; rec.Outcome != bootImported || !bd.unbound.Load() ||
			!strings.Contains(bd.reason(), "bootstrapped from the fleet's artifact") {
			t.Fatalf("record %+v, unbound %v (%q)", rec, bd.unbound.Load(), bd.reason())
		}
	})
	t.Run("no artifact", func(t *testing.T) {
		n, _, logs := bootNode(t, &objstore.Transport{Store: mem.New()}, backendAppLog, false, 3)
		if err := n.beforeRun(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := "no artifact published at key under file:///unused (remote artifact object not found: key.manifest.json)"
		if rec := n.status().Bootstrap.Last; rec.Outcome != bootFallback || rec.Message != want ||
			!strings.Contains(logs.String(), want) || strings.Contains(logs.String(), "invalid") {
			t.Fatalf("record %+v\n%s\nwant the fallback message %q", rec, logs, want)
		}
	})
	t.Run("expired fold, artifact no newer", func(t *testing.T) {
		n, _, logs := bootNode(t, tr, backendPebble, false, 25)
		if err := n.fold.Apply(nil, slipstream.CursorFromUint64(20)); err != nil {
			t.Fatal(err)
		}
		n.firstRun = false
		if !n.runEnded(fmt.Errorf("watch: %w", &errBootstrapWanted{cause: "x"})) {
			t.Fatal("runEnded did not take the bootstrap error")
		}
		if err := n.beforeRun(t.Context()); err != nil {
			t.Fatal(err)
		}
		if rec := n.status().Bootstrap.Last; rec.Outcome != bootFallback || rec.Reason != "cursor expired" || !n.resyncNext {
			t.Fatalf("record %+v, resyncNext %v\n%s", rec, n.resyncNext, logs)
		}
		// The next run's watcher is the plain one: it resyncs.
		w := n.watcher(nopWatcher{})
		if _, wrapped := w.(expiryWatcher); wrapped {
			t.Fatal("the run after a fallback would bootstrap again instead of resyncing")
		}
		if _, wrapped := n.watcher(nopWatcher{}).(expiryWatcher); !wrapped {
			t.Fatal("later runs do not bootstrap on expiry")
		}
	})
}

type nopWatcher struct{ slipstream.Watcher }

// The expiry watcher turns only a resume's expiry into the bootstrap
// request; a state sync's expiry and other errors pass through.
func TestExpiryWatcher(t *testing.T) {
	kv := memkv.New()
	for i := range 5 {
		kv.Put(t.Context(), fmt.Sprintf("k.%d", i), []byte("v"))
	}
	kv.Compact(4)
	w := expiryWatcher{kv}
	out := make(chan slipstream.Update, 16)
	err := w.Watch(t.Context(), slipstream.AllKeys(), slipstream.CursorFromUint64(1), out)
	var bw *errBootstrapWanted
	if !errors.As(err, &bw) || errors.Is(err, slipstream.ErrCursorExpired) {
		t.Fatalf("expired resume: %v, want errBootstrapWanted not wrapping ErrCursorExpired", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := w.Watch(ctx, slipstream.AllKeys(), slipstream.Cursor{}, out); err != nil {
		t.Fatalf("state sync: %v", err)
	}
}

// While the download runs, the mirror says bootstrapping, and the terminal
// shows a progress bar.
func TestBootstrapStateAndProgress(t *testing.T) {
	store := mem.New()
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	gated := &objstoretest.Faulty{Store: store, Fail: func(op, name string) error {
		if op == "get" && strings.HasSuffix(name, ".tar") {
			entered <- struct{}{}
			<-gate
		}
		return nil
	}}
	publishArtifact(t, &objstore.Transport{Store: store}, "key", backendAppLog, 200)
	n, _, _ := bootNode(t, &objstore.Transport{Store: gated}, backendAppLog, false, 200)
	var term syncBuffer
	n.term = &term
	var wg sync.WaitGroup
	var err error
	wg.Go(func() { err = n.beforeRun(t.Context()) })
	<-entered
	if state, _, _ := n.t.snapshot(); state != stateBootstrapping {
		t.Fatalf("state %s during the download", state)
	}
	close(gate)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if c := n.fold.Cursor().Rank(); c != 200 {
		t.Fatalf("fold at %d after the bootstrap", c)
	}
	if !strings.Contains(term.String(), "import    verifying and installing") {
		t.Fatalf("terminal output %q", term.String())
	}
}

// The export gate: no round before the mirror is synced, on an empty fold,
// or when the pointer already names the fold's cursor.
func TestLiveLoopGate(t *testing.T) {
	n, _, _ := bootNode(t, &objstore.Transport{Store: mem.New()}, backendAppLog, false, 0)
	f := &slipstream.Follower{}
	n.setLoop(f)
	if n.liveLoop() != nil {
		t.Fatal("a round before the mirror is synced")
	}
	n.t.setState(stateSynced)
	if n.liveLoop() != nil {
		t.Fatal("a round on an empty fold")
	}
	if err := n.fold.Apply(nil, slipstream.CursorFromUint64(7)); err != nil {
		t.Fatal(err)
	}
	if n.liveLoop() != f {
		t.Fatal("no round on a synced fold with no artifact yet")
	}
	n.mu.newest = &artifactStatus{Cursor: 7}
	if n.liveLoop() != nil {
		t.Fatal("a round although the pointer names the fold's cursor")
	}
	n.mu.newest = &artifactStatus{Cursor: 6}
	if n.liveLoop() != f {
		t.Fatal("no round although the fold is ahead of the pointer")
	}
}
