package natskv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// pausedWatch starts a watch of scope resuming after the bucket's last
// revision, waits until it has delivered a put of ready (its setup, resume
// checks included, is over), and pauses its consumer on the server, so that
// the test can evict revisions the watch has not been sent yet. It returns
// the watch and a func that resumes the consumer.
func pausedWatch(t *testing.T, e *env, b *natskv.Bucket, scope slipstream.Scope, after uint64, ready string) (*watchRun, func()) {
	t.Helper()
	stream := "KV_" + b.Name()
	w := startWatch(t, b, scope, slipstream.CursorFromUint64(after))
	r := put(t, b, ready, "v")
	if u := w.next(t); u.Key != ready || rev(u) != r {
		t.Fatalf("first update %s@%d, want %s@%d", u.Key, rev(u), ready, r)
	}
	var consumer string
	poll.True(t, 5*time.Second, "the watch's consumer exists", func() bool {
		names := e.stream(t, b.Name()).ConsumerNames(t.Context())
		for name := range names.Name() {
			consumer = name
		}
		return consumer != ""
	})
	if _, err := e.js.PauseConsumer(t.Context(), stream, consumer, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("pause the watch's consumer: %v", err)
	}
	return w, func() {
		if _, err := e.js.ResumeConsumer(t.Context(), stream, consumer); err != nil {
			t.Fatalf("resume the watch's consumer: %v", err)
		}
	}
}

// TestWatchFloorGuardTripsOnEvictedRevisions is the live floor guard
// through Watch itself (not forward): revisions written while the watch's
// consumer was paused are evicted before it is sent them, and the server
// then sends the next retained revision as if nothing had been lost. A
// resumed all-keys Watch must fail with ErrOverrun before forwarding it.
func TestWatchFloorGuardTripsOnEvictedRevisions(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "floor", History: 1})
	var last uint64
	for _, k := range []string{"k1", "k2", "k3"} {
		last = put(t, b, k, "v")
	}
	w, resume := pausedWatch(t, e, b, slipstream.AllKeys(), last, "ready")
	put(t, b, "gone", "v")                                   // last+1: its delete below is evicted too
	if _, err := b.Delete(t.Context(), "gone"); err != nil { // last+2
		t.Fatal(err)
	}
	survivor := put(t, b, "k4", "v") // last+3
	if err := e.stream(t, b.Name()).Purge(t.Context(), jetstream.WithPurgeSequence(survivor)); err != nil {
		t.Fatal(err)
	}
	if first := e.streamInfo(t, b.Name()).State.FirstSeq; first != survivor {
		t.Fatalf("premise: first sequence %d, want %d", first, survivor)
	}
	resume()
	// The server resumes a consumer whose next sequence was removed only at
	// its next heartbeat (5 s) unless a new message arrives: send one.
	put(t, b, "kick", "v")
	select {
	case u := <-w.updates:
		t.Fatalf("forwarded %s %s@%s across the evicted revisions", u.Op, u.Key, u.Version)
	case err := <-w.result:
		w.result <- err // for the cleanup
		if !errors.Is(err, slipstream.ErrOverrun) {
			t.Fatalf("Watch = %v, want ErrOverrun: the delete of %q was evicted unseen", err, "gone")
		}
	case <-time.After(updateTimeout):
		t.Fatal("the watch neither failed nor forwarded")
	}
	select {
	case u := <-w.updates:
		t.Fatalf("forwarded %s %s@%s across the evicted revisions", u.Op, u.Key, u.Version)
	default:
	}
}

// TestWatchFloorGuardPassesABenignGap: a gap whose revisions were only
// overwritten (the first sequence did not pass the frontier + 1) is not a
// loss; the watch forwards the next revision and keeps running.
func TestWatchFloorGuardPassesABenignGap(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "floor-benign", History: 1})
	var last uint64
	for _, k := range []string{"k1", "k2", "k3"} {
		last = put(t, b, k, "v")
	}
	w, resume := pausedWatch(t, e, b, slipstream.AllKeys(), last, "ready")
	put(t, b, "k", "1") // last+1, overwritten below (history 1)
	r2 := put(t, b, "k", "2")
	resume()
	put(t, b, "kick", "v") // wake the consumer now (see above)
	u := w.next(t)
	if u.Key != "k" || rev(u) != r2 || string(u.Value) != "2" {
		t.Fatalf("got %s=%q@%d, want k=\"2\"@%d", u.Key, u.Value, rev(u), r2)
	}
	select {
	case err := <-w.result:
		t.Fatalf("watch ended on a benign gap: %v", err)
	default:
	}
}

// TestWatchPrefixResumeHasNoFloorGuard pins the documented limit: a prefix
// watch sees sparse revisions by design, so an eviction gap is not
// evidence there and the watch forwards across it (the resume checks and
// the audit cover that case).
func TestWatchPrefixResumeHasNoFloorGuard(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "floor-prefix", History: 1})
	var last uint64
	for _, k := range []string{"p.k1", "p.k2"} {
		last = put(t, b, k, "v")
	}
	w, resume := pausedWatch(t, e, b, slipstream.Prefix("p."), last, "p.ready")
	put(t, b, "p.gone", "v")
	survivor := put(t, b, "p.k3", "v")
	if err := e.stream(t, b.Name()).Purge(context.Background(), jetstream.WithPurgeSequence(survivor)); err != nil {
		t.Fatal(err)
	}
	resume()
	put(t, b, "p.kick", "v") // as in the benign case: wake the consumer now
	if u := w.next(t); u.Key != "p.k3" || rev(u) != survivor {
		t.Fatalf("got %s@%d, want p.k3@%d", u.Key, rev(u), survivor)
	}
}
