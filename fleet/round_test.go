package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/fleet"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/memkv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/mem"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

const roundKey = "edge/us-east/latest"

// liveNode folds a memkv bucket into an applog store in a fresh directory.
func liveNode(t *testing.T, kv *memkv.KV) *node {
	t.Helper()
	n := startNode(t, kv, backends[0].open(t, filepath.Join(t.TempDir(), "fold")))
	n.waitCursor(t, kv.LastRevision())
	return n
}

func puts(t testing.TB, kv *memkv.KV, prefix string, n int) uint64 {
	t.Helper()
	var rev uint64
	for i := range n {
		r, err := kv.Put(t.Context(), fmt.Sprintf("%s.%d", prefix, i), fmt.Appendf(nil, "v%d", i))
		if err != nil {
			t.Fatal(err)
		}
		rev = r
	}
	return rev
}

func pointerBytes(t testing.TB, tr *objstore.Transport, key string) []byte {
	t.Helper()
	rc, _, err := tr.Store.Get(t.Context(), strings.Trim(tr.Prefix+"/"+key, "/")+objstore.PointerSuffix)
	if err != nil {
		t.Fatalf("get pointer: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run_export_round_uploads_once_and_cleans_up: two concurrent rounds on one
// lease key publish exactly one artifact; the pointer is its manifest, the
// lease records its cursor, and both scratch directories are empty.
func TestRoundUploadsOnceAndCleansUp(t *testing.T) {
	kv := memkv.New()
	last := puts(t, kv, "route", 3)
	a, b := liveNode(t, kv), liveNode(t, kv)
	leases := memkv.New()
	tr := &objstore.Transport{Store: mem.New(), Prefix: "fleet"}
	rounds := []*fleet.ExportRound{
		{Lease: leaseNode(leases, "node-a"), TTL: time.Minute, Follower: a.f, Transport: tr, Key: roundKey, ScratchDir: t.TempDir(), Logger: quiet()},
		{Lease: leaseNode(leases, "node-b"), TTL: time.Minute, Follower: b.f, Transport: tr, Key: roundKey, ScratchDir: t.TempDir(), Logger: quiet()},
	}
	results := make([]fleet.Result, len(rounds))
	errs := make([]error, len(rounds))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, r := range rounds {
		wg.Go(func() {
			<-start
			results[i], errs[i] = r.Run(t.Context())
		})
	}
	close(start)
	wg.Wait()

	var won *fleet.Result
	for i := range rounds {
		if errs[i] != nil {
			t.Fatalf("round %d: %v", i, errs[i])
		}
		switch results[i].Outcome {
		case fleet.Published:
			if won != nil {
				t.Fatal("two rounds published")
			}
			won = &results[i]
		case fleet.NotAcquired:
			if results[i].Manifest != nil {
				t.Fatalf("a round that lost the lease exported: %+v", results[i])
			}
		default:
			t.Fatalf("round %d: outcome %v", i, results[i].Outcome)
		}
		mustEmpty(t, rounds[i].ScratchDir)
	}
	if won == nil {
		t.Fatal("no round published")
	}
	if won.Manifest.Cursor.Rank() != last {
		t.Fatalf("manifest cursor %v, want %d", won.Manifest.Cursor, last)
	}
	if p := payloads(t, tr, roundKey); len(p) != 1 || p[0].Name != won.Payload {
		t.Fatalf("payloads %+v, want exactly %s", p, won.Payload)
	}
	m, err := artifact.ParseManifest(pointerBytes(t, tr, roundKey))
	if err != nil {
		t.Fatal(err)
	}
	wantM, _ := won.Manifest.Marshal()
	gotM, _ := m.Marshal()
	if string(gotM) != string(wantM) {
		t.Fatalf("pointer %s\nis not the published manifest %s", gotM, wantM)
	}
	rec, cur := completed(t, rounds[0].Lease)
	if rec == nil || cur != last || rec.CompletedAtUnix == nil {
		t.Fatalf("lease record %+v: completion not recorded at %d", rec, last)
	}
}

// run_export_round_upload_failure_abandons_lease: the upload's error is
// returned, the scratch directory is empty, and the lease is free at once
// (a ttl-600 s acquire elsewhere wins; a retried round publishes).
func TestRoundUploadFailureAbandonsLease(t *testing.T) {
	kv := memkv.New()
	puts(t, kv, "route", 3)
	n := liveNode(t, kv)
	leases := memkv.New()
	store := mem.New()
	injected := errors.New("injected: disk on fire")
	faulty := &objstoretest.Faulty{Store: store, Fail: func(op, name string) error {
		if op == "put" {
			return injected
		}
		return nil
	}}
	scratch := t.TempDir()
	r := &fleet.ExportRound{Lease: leaseNode(leases, "node-a"), TTL: 600 * time.Second, Follower: n.f,
		Transport: &objstore.Transport{Store: faulty}, Key: roundKey, ScratchDir: scratch, Logger: quiet()}
	res, err := r.Run(t.Context())
	if !errors.Is(err, injected) || !errors.Is(err, slipstream.ErrOperationFailed) {
		t.Fatalf("Run = %+v, %v; want the injected upload failure", res, err)
	}
	mustEmpty(t, scratch)
	if rec, _ := completed(t, r.Lease); rec != nil {
		t.Fatalf("lease still held after the failure: %+v", rec)
	}

	// The next round anywhere wins at once, with a long ttl.
	r2 := *r
	r2.Lease = leaseNode(leases, "node-b")
	r2.Transport = &objstore.Transport{Store: store}
	res, err = r2.Run(t.Context())
	if err != nil || res.Outcome != fleet.Published {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	mustEmpty(t, scratch)
	if rec, cur := completed(t, r2.Lease); rec == nil || rec.Holder != "node-b" || cur != 3 {
		t.Fatalf("lease after the retry: %+v (cursor %d)", rec, cur)
	}
}

// run_export_round_dead_loop_abandons_lease: a loop that has stopped (or
// none at all) fails the round with ErrLoopGone, naming the watch loop;
// the scratch directory is empty and another node acquires at once.
func TestRoundDeadLoopAbandonsLease(t *testing.T) {
	kv := memkv.New()
	puts(t, kv, "route", 3)
	n := liveNode(t, kv)
	n.stop()
	leases := memkv.New()
	tr := &objstore.Transport{Store: mem.New()}
	for name, f := range map[string]*slipstream.Follower{"stopped": n.f, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			scratch := t.TempDir()
			r := &fleet.ExportRound{Lease: leaseNode(leases, "node-a"), TTL: 600 * time.Second, Follower: f,
				Transport: tr, Key: roundKey, ScratchDir: scratch, Logger: quiet()}
			_, err := r.Run(t.Context())
			if !errors.Is(err, fleet.ErrLoopGone) || !errors.Is(err, slipstream.ErrOperationFailed) ||
				!strings.Contains(err.Error(), "watch loop") {
				t.Fatalf("Run: %v, want ErrLoopGone", err)
			}
			mustEmpty(t, scratch)
			g, err := leaseNode(leases, "node-b").TryAcquire(t.Context(), 600*time.Second)
			if err != nil || g == nil {
				t.Fatalf("another node could not acquire at once: %v", err)
			}
			g.Abandon(t.Context())
		})
	}
	if p := payloads(t, tr, roundKey); len(p) != 0 {
		t.Fatalf("a dead loop uploaded %v", p)
	}
}

// A superseded round still records its cursor in the lease and does not
// prune; a published one prunes what is strictly below the pointer and
// older than 4×ttl, and nothing else.
func TestRoundCompletesBothOutcomesPrunesOnlyAfterPublish(t *testing.T) {
	behind, ahead := memkv.New(), memkv.New()
	puts(t, behind, "route", 3)
	puts(t, ahead, "route", 5)
	nb, na := liveNode(t, behind), liveNode(t, ahead)
	leases := memkv.New()
	store := mem.New()
	tr := &objstore.Transport{Store: store}
	const ttl = time.Minute
	round := func(f *slipstream.Follower, holder string) *fleet.ExportRound {
		return &fleet.ExportRound{Lease: leaseNode(leases, holder), TTL: ttl, Follower: f,
			Transport: tr, Key: roundKey, ScratchDir: t.TempDir(), Logger: quiet()}
	}

	// An old payload, 5×ttl old, at rank 1: prunable once a pointer above
	// it is published; and one at rank 2 that is too young.
	old := time.Now().Add(-5 * ttl)
	store.SetNow(old)
	mustPut(t, store, "edge/us-east/latest.payloads/0000000000000001-00000000000000aa.tar")
	store.SetNow(time.Time{})
	mustPut(t, store, "edge/us-east/latest.payloads/0000000000000002-00000000000000bb.tar")

	ra := round(na.f, "node-ahead")
	res, err := ra.Run(t.Context())
	if err != nil || res.Outcome != fleet.Published || res.Pruned != 1 {
		t.Fatalf("ahead: %+v, %v; want published with 1 pruned", res, err)
	}
	if got := len(payloads(t, tr, roundKey)); got != 2 {
		t.Fatalf("%d payloads after the prune, want 2 (the young one and the pointer's)", got)
	}
	// Free the lease for the next round (a new period).
	g, _ := leaseNode(leases, "x").TryAcquire(t.Context(), time.Second)
	if g != nil {
		t.Fatal("the completed lease was free before its expiry")
	}
	forceExpire(t, leases)

	rb := round(nb.f, "node-behind")
	res, err = rb.Run(t.Context())
	if err != nil || res.Outcome != fleet.Superseded || res.Remote.Rank() != 5 || res.Manifest.Cursor.Rank() != 3 || res.Pruned != 0 {
		t.Fatalf("behind: %+v, %v; want superseded by 5 with its own manifest at 3", res, err)
	}
	if rec, cur := completed(t, rb.Lease); rec == nil || rec.Holder != "node-behind" || cur != 3 {
		t.Fatalf("lease after the superseded round: %+v (cursor %d)", rec, cur)
	}
	if got := len(payloads(t, tr, roundKey)); got != 3 {
		t.Fatalf("%d payloads after the superseded round, want 3 (nothing pruned)", got)
	}
	m, err := tr.Manifest(t.Context(), roundKey)
	if err != nil || m.Cursor.Rank() != 5 {
		t.Fatalf("pointer %+v, %v; want cursor 5", m, err)
	}
}

func mustPut(t testing.TB, s objstore.Store, name string) {
	t.Helper()
	if err := s.Put(t.Context(), name, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
}

// forceExpire overwrites the lease with one that expired long ago.
func forceExpire(t testing.TB, kv *memkv.KV) {
	t.Helper()
	e, ok, err := kv.Entry(t.Context(), "export.test")
	if err != nil || !ok {
		t.Fatalf("lease entry: %v %v", ok, err)
	}
	if _, err := kv.Update(t.Context(), "export.test", []byte(`{"holder_id":"old","acquired_at_unix":1,"expires_at_unix":2}`), revOf(e)); err != nil {
		t.Fatal(err)
	}
}

func revOf(e slipstream.Entry) uint64 {
	r, _ := e.Version.Uint64()
	return r
}

// A round whose context ends during the export returns ctx's error,
// abandons the lease and leaves nothing in the scratch directory once the
// loop has answered.
func TestRoundCancelledDuringExport(t *testing.T) {
	kv := memkv.New()
	puts(t, kv, "route", 3)
	// The loop is blocked in Apply, so the export request waits.
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	entered := make(chan struct{}, 1)
	f := slipstream.NewFollower(kv, func(ctx context.Context, batch []slipstream.Update) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil
	})
	f.Store = backends[0].open(t, filepath.Join(t.TempDir(), "fold"))
	f.Logger = quiet()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	defer func() {
		unblock()
		cancel()
		<-done
	}()
	<-entered

	leases := memkv.New()
	scratch := t.TempDir()
	rctx, rcancel := context.WithCancel(t.Context())
	r := &fleet.ExportRound{Lease: leaseNode(leases, "node-a"), TTL: time.Minute, Follower: f,
		Transport: &objstore.Transport{Store: mem.New()}, Key: roundKey, ScratchDir: scratch, Logger: quiet()}
	errc := make(chan error, 1)
	go func() {
		_, err := r.Run(rctx)
		errc <- err
	}()
	// The round holds the lease while it waits for the loop.
	poll.Until(t, 10*time.Second, func() (bool, string) {
		rec, _ := completed(t, r.Lease)
		return rec != nil, "round has not taken the lease"
	})
	rcancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if rec, _ := completed(t, r.Lease); rec != nil {
		t.Fatalf("lease not abandoned: %+v", rec)
	}
	unblock()
	poll.Until(t, 10*time.Second, func() (bool, string) {
		return isEmpty(scratch), "scratch directory not emptied after the loop answered"
	})
}
