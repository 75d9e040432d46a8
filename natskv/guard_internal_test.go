package natskv

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
)

// guardBucket opens bucket "guard" (history 1) with k1..k5 at revisions
// 1..5.
func guardBucket(t *testing.T) (*Bucket, jetstream.KeyValue) {
	t.Helper()
	srv := natstest.Start(t)
	nc := srv.Conn(t)
	b, err := Open(t.Context(), nc, Config{Bucket: "guard", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := b.Put(t.Context(), "k"+string(rune('0'+i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	return b, b.kv
}

// runGuarded runs the guarded forwarding loop over a raw watcher with the
// given frontier and returns its updates and result.
func runGuarded(t *testing.T, b *Bucket, w jetstream.KeyWatcher, frontier uint64) (chan slipstream.Update, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan slipstream.Update, 64)
	res := make(chan error, 1)
	go func() { res <- b.forward(ctx, w, []string{">"}, frontier, true, b.stream.CachedInfo().Created, 0, out) }()
	t.Cleanup(func() {
		cancel()
		<-res
	})
	return out, res
}

func TestGappedDeliveryWithAdvancedFloorTrips(t *testing.T) {
	b, kv := guardBucket(t)
	if err := b.stream.Purge(t.Context(), jetstream.WithPurgeSequence(4)); err != nil {
		t.Fatal(err)
	}
	if info, _ := b.streamInfo(t.Context()); info.State.FirstSeq != 4 {
		t.Fatalf("premise: first sequence %d, want 4", info.State.FirstSeq)
	}
	// The server clamps the raw resume at 2 up to 4.
	w, err := kv.WatchAll(t.Context(), jetstream.ResumeFromRevision(2))
	if err != nil {
		t.Fatal(err)
	}
	out, res := runGuarded(t, b, w, 1)
	start := time.Now()
	select {
	case err := <-res:
		res <- err
		if !errors.Is(err, slipstream.ErrOverrun) {
			t.Fatalf("guard result = %v, want ErrOverrun", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("floor guard did not trip within 5s (in-band check missing; the backstop is 30s)")
	}
	t.Logf("tripped after %v", time.Since(start))
	// The gapped entry was never forwarded.
	select {
	case u := <-out:
		t.Fatalf("forwarded %s@%s past the gap", u.Key, u.Version)
	default:
	}
}

func TestBenignInteriorGapPasses(t *testing.T) {
	b, kv := guardBucket(t)
	// Overwrite k2 and k3 (revisions 6, 7): history 1 evicts 2 and 3 from
	// the interior; the first sequence stays 1.
	for _, k := range []string{"k2", "k3"} {
		if _, err := b.Put(t.Context(), k, []byte("v2")); err != nil {
			t.Fatal(err)
		}
	}
	if info, _ := b.streamInfo(t.Context()); info.State.FirstSeq != 1 {
		t.Fatalf("premise: first sequence %d, want 1", info.State.FirstSeq)
	}
	w, err := kv.WatchAll(t.Context(), jetstream.ResumeFromRevision(2))
	if err != nil {
		t.Fatal(err)
	}
	out, res := runGuarded(t, b, w, 1)
	var got []uint64
	for len(got) < 4 {
		select {
		case u := <-out:
			r, _ := u.Version.Uint64()
			got = append(got, r)
		case err := <-res:
			t.Fatalf("guard tripped on a benign gap: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatalf("delivered %v, want [4 5 6 7]", got)
		}
	}
	if want := []uint64{4, 5, 6, 7}; !equal(got, want) {
		t.Fatalf("delivered revisions %v, want %v", got, want)
	}
}

func TestFloorGuardBackstopTripsWithoutTraffic(t *testing.T) {
	b, _ := guardBucket(t)
	b.guardInterval = 50 * time.Millisecond
	if err := b.stream.Purge(t.Context(), jetstream.WithPurgeSequence(4)); err != nil {
		t.Fatal(err)
	}
	// A watcher that delivers nothing: only the backstop can notice.
	_, res := runGuarded(t, b, newFakeWatcher(), 1)
	select {
	case err := <-res:
		res <- err
		if !errors.Is(err, slipstream.ErrOverrun) {
			t.Fatalf("backstop result = %v, want ErrOverrun", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("backstop did not trip")
	}
}

func TestFloorGuardIgnoresMarkerAndRevisionZero(t *testing.T) {
	b, _ := guardBucket(t)
	if err := b.stream.Purge(t.Context(), jetstream.WithPurgeSequence(4)); err != nil {
		t.Fatal(err)
	}
	w := newFakeWatcher()
	out, res := runGuarded(t, b, w, 3)
	// A nil marker and a revision-0 entry neither trip the guard nor move
	// its frontier; revision 4 is the next one and passes.
	w.ch <- nil
	w.ch <- fakeEntry{key: "z", rev: 0}
	w.ch <- fakeEntry{key: "k4", rev: 4}
	u1, u2 := <-out, <-out
	if !u1.Version.IsUnknown() || u1.Key != "z" {
		t.Fatalf("revision 0 became %s", u1.Version)
	}
	if r, _ := u2.Version.Uint64(); r != 4 {
		t.Fatalf("second update at %s, want 4", u2.Version)
	}
	select {
	case u := <-out:
		t.Fatalf("the nil marker was forwarded as %+v", u)
	case err := <-res:
		t.Fatalf("watch ended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	// Closing the subscription without cancellation is an error.
	close(w.ch)
	if err := <-res; !errors.Is(err, slipstream.ErrWatch) {
		t.Fatalf("closed updates = %v", err)
	} else {
		res <- err
	}
	if !w.stopped {
		t.Fatal("watcher not stopped")
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type fakeWatcher struct {
	ch      chan jetstream.KeyValueEntry
	stopped bool
}

func newFakeWatcher() *fakeWatcher { return &fakeWatcher{ch: make(chan jetstream.KeyValueEntry, 8)} }

func (w *fakeWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.ch }
func (w *fakeWatcher) Stop() error                             { w.stopped = true; return nil }

type fakeEntry struct {
	key string
	rev uint64
}

func (e fakeEntry) Bucket() string                  { return "guard" }
func (e fakeEntry) Key() string                     { return e.key }
func (e fakeEntry) Value() []byte                   { return []byte("v") }
func (e fakeEntry) Revision() uint64                { return e.rev }
func (e fakeEntry) Created() time.Time              { return time.Time{} }
func (e fakeEntry) Delta() uint64                   { return 0 }
func (e fakeEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }
