package natskv_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/memstore"
	"github.com/slipstream-kv/slipstream/natskv"
)

// supervised runs a Follower with a store the way a supervisor would: when
// Run fails it is restarted from the store's own cursor. It records every
// applied revision across runs.
type supervised struct {
	mu       sync.Mutex
	revs     []uint64
	restarts int
	errs     []error
	store    *memstore.Store
	cancel   context.CancelFunc
	done     chan struct{}
}

func supervise(t *testing.T, b *natskv.Bucket) *supervised {
	t.Helper()
	s := &supervised{store: memstore.New(), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			f := slipstream.NewFollower(b, func(_ context.Context, batch []slipstream.Update) error {
				s.mu.Lock()
				for _, u := range batch {
					r, _ := u.Version.Uint64()
					s.revs = append(s.revs, r)
				}
				s.mu.Unlock()
				return nil
			})
			f.Store, f.Lister, f.Resume, f.Logger = s.store, b, s.store.Cursor(), quietLogger()
			_, err := f.Run(ctx)
			if err == nil || ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			s.restarts++
			s.errs = append(s.errs, err)
			s.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

func (s *supervised) cursor() uint64 { return s.store.Cursor().Rank() }

// check asserts the run applied every revision 1..last exactly once, in
// order, and that the fold matches the bucket.
func (s *supervised) check(t *testing.T, b *natskv.Bucket, last uint64) {
	t.Helper()
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("%d revisions applied, %d follower restarts: %v", len(s.revs), s.restarts, s.errs)
	for i, r := range s.revs {
		if r != uint64(i+1) {
			t.Fatalf("applied revision #%d is %d, want %d (gap or duplicate); around: %v", i, r, i+1, s.revs[max(0, i-3):min(len(s.revs), i+3)])
		}
	}
	if uint64(len(s.revs)) != last {
		t.Fatalf("applied %d revisions, want %d", len(s.revs), last)
	}
	want := map[string]string{}
	if err := b.Scan(t.Context(), "", func(e slipstream.Entry) error {
		want[e.Key] = string(e.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := s.store.Values()
	if len(got) != len(want) {
		t.Fatalf("fold has %d keys, bucket %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("fold %s=%q, bucket %q", k, got[k], v)
		}
	}
}

// writeKeys creates keys w0..w(n-1), pacing them, and retries through
// outages; a create whose ack was lost is recognised on retry by
// ErrAlreadyExists, so every key is written exactly once.
func writeKeys(t *testing.T, b *natskv.Bucket, n int, pace time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := range n {
			key := fmt.Sprintf("w%05d", i)
			deadline := time.Now().Add(60 * time.Second)
			for {
				_, err := b.Create(t.Context(), key, []byte("v"))
				if err == nil || errors.Is(err, slipstream.ErrAlreadyExists) {
					break
				}
				if t.Context().Err() != nil || time.Now().After(deadline) {
					done <- fmt.Errorf("create %s: %w", key, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(pace)
		}
		done <- nil
	}()
	return done
}

func waitWriter(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("writer did not finish")
	}
}

func waitCursor(t *testing.T, s *supervised, rev uint64, d time.Duration) {
	t.Helper()
	poll.True(t, d, fmt.Sprintf("fold cursor reaches %d", rev), func() bool { return s.cursor() >= rev })
}

// TestServerRestartMidWatch restarts the server (same store and port) while
// a Follower follows a bucket under writes: the run resumes with no gap and
// no duplicate.
func TestServerRestartMidWatch(t *testing.T) {
	srv := natstest.Start(t)
	e := envFor(t, srv, srv.Conn(t))
	// A short timeout keeps a write that straddles the restart from
	// blocking for 30 s.
	b := e.open(t, natskv.Config{Bucket: "restart", Timeout: 2 * time.Second})
	const n = 400
	s := supervise(t, b)
	writer := writeKeys(t, b, n, 2*time.Millisecond)
	waitCursor(t, s, n/4, 30*time.Second)
	start := time.Now()
	srv.Restart(t)
	t.Logf("restarted in %v", time.Since(start))
	waitWriter(t, writer)
	t.Logf("writer done %v after the restart", time.Since(start))
	st, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSeq != n {
		t.Fatalf("stream holds %d revisions, want %d", st.LastSeq, n)
	}
	waitCursor(t, s, n, 30*time.Second)
	caughtUp := time.Since(start)
	t.Logf("follower caught up %v after the restart", caughtUp)
	s.check(t, b, n)
	// nats.go's ordered consumer alone would notice the lost consumer only
	// after two missed 5 s heartbeats; the watch re-creates itself on
	// reconnect instead.
	if caughtUp > 9*time.Second {
		t.Errorf("follower needed %v to catch up after the restart; the reconnect re-creation did not happen", caughtUp)
	}
}

// TestClusterFailoverMidWatch shuts down the cluster node the follower's
// client is connected to, mid-watch, on an R3 bucket.
func TestClusterFailoverMidWatch(t *testing.T) {
	servers := natstest.StartCluster(t, 3)
	url := natstest.ClusterURL(servers)
	nc := natstest.Connect(t, url, nats.DontRandomize())
	writerNC := natstest.Connect(t, url)
	var b *natskv.Bucket
	poll.True(t, 20*time.Second, "R3 bucket created", func() bool {
		var err error
		b, err = natskv.Open(t.Context(), nc, natskv.Config{Bucket: "r3", Replicas: 3, Timeout: 5 * time.Second, Logger: quietLogger()})
		return err == nil
	})
	wb, err := natskv.Open(t.Context(), writerNC, natskv.Config{Bucket: "r3", Timeout: 5 * time.Second, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := b.Status(t.Context()); err != nil || st.Replicas != 3 {
		t.Fatalf("Status = %+v, %v; want 3 replicas", st, err)
	}
	const n = 300
	s := supervise(t, b)
	writer := writeKeys(t, wb, n, 3*time.Millisecond)
	waitCursor(t, s, n/4, 30*time.Second)
	connected := nc.ConnectedServerName()
	var victim *natstest.Server
	for _, srv := range servers {
		if srv.NATS() != nil && srv.NATS().Name() == connected {
			victim = srv
		}
	}
	if victim == nil {
		t.Fatalf("connected to %q, not one of the cluster's servers", connected)
	}
	victim.Shutdown()
	// The client notices the closed connection asynchronously.
	poll.True(t, 20*time.Second, "client reconnected to another server", func() bool {
		now := nc.ConnectedServerName()
		return now != connected && now != ""
	})
	waitWriter(t, writer)
	waitCursor(t, s, n, 60*time.Second)
	s.check(t, b, n)
	t.Logf("follower moved from %s to %s", connected, nc.ConnectedServerName())
	if keys, err := b.Keys(t.Context(), ""); err != nil || len(keys) != n {
		t.Fatalf("Keys on the R3 bucket = %d keys, %v; want %d", len(keys), err, n)
	}
	// Replicated streams report CAS conflicts as 10164, not 10071.
	ctx := t.Context()
	r, err := b.Create(ctx, "cas", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "cas", []byte("2")); !errors.Is(err, slipstream.ErrAlreadyExists) {
		t.Fatalf("Create on R3 over a live key = %v, want ErrAlreadyExists", err)
	}
	if _, err := b.Update(ctx, "cas", []byte("2"), r); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, "cas", []byte("3"), r); !errors.Is(err, slipstream.ErrRevisionMismatch) {
		t.Fatalf("stale Update on R3 = %v, want ErrRevisionMismatch", err)
	}
	if _, err := b.DeleteWithVersion(ctx, "cas", r); !errors.Is(err, slipstream.ErrRevisionMismatch) {
		t.Fatalf("stale DeleteWithVersion on R3 = %v, want ErrRevisionMismatch", err)
	}
}

// TestReconnectDetectsHistoryLostWhileDisconnected: history evicted while
// the watch's client was away fails the re-created watch instead of letting
// the server clamp it silently.
func TestReconnectDetectsHistoryLostWhileDisconnected(t *testing.T) {
	srv := natstest.Start(t)
	// The watch's client comes back slowly; the admin client at once.
	watchNC := natstest.Connect(t, srv.URL(), nats.ReconnectWait(2*time.Second))
	admin := envFor(t, srv, srv.Conn(t))
	progress, started := initialDone()
	b, err := natskv.Open(t.Context(), watchNC, natskv.Config{Bucket: "lost", Timeout: 2 * time.Second, Logger: quietLogger(), OnProgress: progress})
	if err != nil {
		t.Fatal(err)
	}
	ab := admin.open(t, natskv.Config{Bucket: "lost"})
	var cursor uint64
	for i := range 5 {
		cursor = put(t, ab, keyN("p.k", i), "1")
	}
	// A prefix watch has no live floor guard: only the re-creation's own
	// resume checks can notice.
	w := startWatch(t, b, slipstream.Prefix("p."), slipstream.CursorFromUint64(cursor))
	waitClosed(t, started, "the resumed watch's initial values") // its resume checks passed
	srv.Restart(t)
	poll.True(t, 5*time.Second, "admin client reconnected", func() bool { return admin.nc.IsConnected() })
	if watchNC.IsConnected() {
		t.Fatal("premise: the watch's client reconnected before the eviction")
	}
	var last uint64
	for i := range 3 {
		last = put(t, ab, keyN("p.new", i), "1")
	}
	if err := admin.stream(t, "lost").Purge(t.Context(), jetstream.WithPurgeSequence(last)); err != nil {
		t.Fatal(err)
	}
	err = w.waitResult(t, 15*time.Second)
	if !errors.Is(err, slipstream.ErrOverrun) {
		t.Fatalf("watch after history was lost while disconnected = %v", err)
	}
	select {
	case u := <-w.updates:
		t.Fatalf("forwarded %s@%s across the lost history", u.Key, u.Version)
	default:
	}
}

// TestInitialDoneReportsTheHead: each watcher's "initial values done"
// report carries the stream's last sequence read before its consumer was
// created — the first, and the one re-created after a reconnect — so a
// consumer can tell it is caught up to records it will never be delivered
// (removed before the watch reached them).
func TestInitialDoneReportsTheHead(t *testing.T) {
	srv := natstest.Start(t)
	e := envFor(t, srv, srv.Conn(t))
	var mu sync.Mutex
	var dones []natskv.Progress
	b := e.open(t, natskv.Config{Bucket: "head", Timeout: 2 * time.Second, AllowTTL: true, LimitMarkerTTL: time.Second,
		OnProgress: func(p natskv.Progress) {
			if p.InitialDone {
				mu.Lock()
				dones = append(dones, p)
				mu.Unlock()
			}
		}})
	put(t, b, "a", "1")
	put(t, b, "b", "1")
	put(t, b, "c", "1") // 3
	// 4 expires after 1 s; the server's delete marker (5) a second later.
	if _, err := b.PutTTL(t.Context(), "gone", []byte("x"), time.Second); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, func() (bool, string) {
		st, err := b.Status(t.Context())
		if err != nil {
			return false, err.Error()
		}
		return st.LastSeq == 5 && st.Values == 3, fmt.Sprintf("stream last %d, %d messages", st.LastSeq, st.Values)
	})
	reports := func() []natskv.Progress {
		mu.Lock()
		defer mu.Unlock()
		return append([]natskv.Progress(nil), dones...)
	}
	w := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(2))
	if u := w.next(t); u.Key != "c" || rev(u) != 3 {
		t.Fatalf("resume delivered %+v, want c@3", u)
	}
	poll.Until(t, 10*time.Second, func() (bool, string) {
		r := reports()
		return len(r) == 1 && r[0].Head == 5 && r[0].Delivered == 1, fmt.Sprintf("initial-done reports %+v, want one with Head 5", r)
	})
	w.none(t, 200*time.Millisecond) // 4 and 5 are gone

	srv.Restart(t)
	poll.Until(t, 30*time.Second, func() (bool, string) {
		r := reports()
		return len(r) == 2 && r[1].Head == 5, fmt.Sprintf("initial-done reports %+v, want a second with Head 5 after the reconnect", r)
	})
	put(t, b, "d", "1")
	if u := w.next(t); u.Key != "d" || rev(u) != 6 {
		t.Fatalf("after the reconnect: %+v, want d@6", u)
	}
}
