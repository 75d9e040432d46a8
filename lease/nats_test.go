package lease_test

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/lease"
	"github.com/slipstream-kv/slipstream/natskv"
)

var _ lease.KV = (*natskv.Bucket)(nil)

// natsNodes starts an embedded server and returns n nodes, each on its own
// connection and bucket handle, all on one lease key, and the raw bucket
// of the first.
func natsNodes(t *testing.T, n int) ([]*lease.Lease, *natskv.Bucket) {
	t.Helper()
	srv := natstest.Start(t)
	nodes := make([]*lease.Lease, n)
	var first *natskv.Bucket
	for i := range nodes {
		b, err := natskv.Open(t.Context(), srv.Conn(t), natskv.Config{Bucket: "fleet", Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		}
		nodes[i] = &lease.Lease{KV: b, Key: "export.lease", Holder: fmt.Sprintf("node-%d", i), Logger: quiet()}
	}
	return nodes, first
}

func TestNATSConcurrentAcquirersOneWinner(t *testing.T) {
	nodes, _ := natsNodes(t, 8)
	var wg sync.WaitGroup
	start := make(chan struct{})
	guards := make([]*lease.Guard, len(nodes))
	for i, l := range nodes {
		wg.Go(func() {
			<-start
			g, err := l.TryAcquire(t.Context(), time.Minute)
			if err != nil {
				t.Error(err)
			}
			guards[i] = g
		})
	}
	close(start)
	wg.Wait()
	var winners []string
	for _, g := range guards {
		if g != nil {
			winners = append(winners, g.Record().Holder)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("winners %v, want exactly 1", winners)
	}
	if r := current(t, nodes[0]); r == nil || r.Holder != winners[0] {
		t.Fatalf("Current = %+v, want %s", r, winners[0])
	}
}

func TestNATSLiveLeaseBlocksAndDroppedGuardHolds(t *testing.T) {
	nodes, _ := natsNodes(t, 2)
	a, b := nodes[0], nodes[1]
	func() { mustAcquire(t, a, time.Minute) }() // the guard is dropped
	runtime.GC()
	mustLose(t, b, time.Minute)
	if r := current(t, b); r == nil || r.Holder != a.Holder {
		t.Fatalf("Current = %+v, want %s", r, a.Holder)
	}
}

// TestNATSExpiryTakeover with a real ttl of 2 s (expiry in whole seconds:
// 1-2 s of waiting): b polls, is blocked while the wall clock is before a's
// expiry second and wins once it is reached.
func TestNATSExpiryTakeover(t *testing.T) {
	nodes, _ := natsNodes(t, 2)
	a, b := nodes[0], nodes[1]
	ga := mustAcquire(t, a, 2*time.Second)
	exp := ga.Record().ExpiresAtUnix
	deadline := time.Now().Add(5 * time.Second)
	losses := 0
	for {
		before := uint64(time.Now().Unix())
		g, err := b.TryAcquire(t.Context(), time.Minute)
		after := uint64(time.Now().Unix())
		if err != nil {
			t.Fatal(err)
		}
		if g != nil {
			if after < exp {
				t.Fatalf("won at %d, before a's expiry %d", after, exp)
			}
			break
		}
		losses++
		if before > exp {
			t.Fatalf("still blocked at %d, after a's expiry %d", before, exp)
		}
		if time.Now().After(deadline) {
			t.Fatal("takeover never happened")
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not ordering
	}
	if losses == 0 {
		t.Fatal("b won at its first attempt, within a's 2 s lease")
	}
	if r := current(t, a); r == nil || r.Holder != b.Holder {
		t.Fatalf("Current = %+v, want the new holder %s", r, b.Holder)
	}
}

// TestNATSExpiredRecordTakeover: a record written already expired (and
// one expiring this very second) is taken over at once.
func TestNATSExpiredRecordTakeover(t *testing.T) {
	for _, age := range []uint64{0, 1, 3600} {
		t.Run(fmt.Sprint(age), func(t *testing.T) {
			nodes, bucket := natsNodes(t, 1)
			now := uint64(time.Now().Unix())
			v := fmt.Sprintf(`{"holder_id":"node-old","acquired_at_unix":%d,"expires_at_unix":%d}`, now-age-60, now-age)
			if _, err := bucket.Put(t.Context(), "export.lease", []byte(v)); err != nil {
				t.Fatal(err)
			}
			g := mustAcquire(t, nodes[0], time.Minute)
			if r := current(t, nodes[0]); r == nil || *r != g.Record() {
				t.Fatalf("Current = %+v, want %+v", r, g.Record())
			}
		})
	}
}

func TestNATSCompleteRecord(t *testing.T) {
	nodes, _ := natsNodes(t, 2)
	a := nodes[0]
	g := mustAcquire(t, a, time.Minute)
	before := uint64(time.Now().Unix())
	if err := g.Complete(t.Context(), slipstream.CursorFromUint64(42)); err != nil {
		t.Fatal(err)
	}
	after := uint64(time.Now().Unix())
	r := current(t, nodes[1])
	if r == nil || r.CompletedCursorHex != "000000000000002a" {
		t.Fatalf("Current = %+v, want completed_cursor_hex 000000000000002a", r)
	}
	if r.CompletedAtUnix == nil || *r.CompletedAtUnix < before || *r.CompletedAtUnix > after {
		t.Fatalf("completed_at_unix = %v, want within [%d, %d]", r.CompletedAtUnix, before, after)
	}
	acq := g.Record()
	if r.Holder != a.Holder || r.AcquiredAtUnix != acq.AcquiredAtUnix || r.ExpiresAtUnix != acq.ExpiresAtUnix {
		t.Fatalf("Complete changed the holder or times: %+v", r)
	}
	mustLose(t, nodes[1], time.Minute) // the completed round keeps its period
}

// TestNATSCompleteAfterTakeover: the server's CAS conflict reaches
// Complete as a revision mismatch, which it logs and absorbs.
func TestNATSCompleteAfterTakeover(t *testing.T) {
	nodes, bucket := natsNodes(t, 2)
	ga := mustAcquire(t, nodes[0], time.Hour)
	// Expire a's lease out of band, then let b take it over.
	now := uint64(time.Now().Unix())
	e, _, err := bucket.Entry(t.Context(), "export.lease")
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := e.Version.Uint64()
	if _, err := bucket.Update(t.Context(), "export.lease",
		fmt.Appendf(nil, `{"holder_id":"node-0","acquired_at_unix":%d,"expires_at_unix":%d}`, now-10, now-1), rev); err != nil {
		t.Fatal(err)
	}
	gb := mustAcquire(t, nodes[1], time.Hour)
	if err := ga.Complete(t.Context(), slipstream.CursorFromUint64(9)); err != nil {
		t.Fatalf("Complete after takeover = %v, want nil", err)
	}
	if r := current(t, nodes[0]); r == nil || *r != gb.Record() {
		t.Fatalf("Current = %+v, want %+v", r, gb.Record())
	}
}

func TestNATSCorruptLeaseIsStolen(t *testing.T) {
	nodes, bucket := natsNodes(t, 1)
	if _, err := bucket.Put(t.Context(), "export.lease", []byte(`{"holder_id":"node-x"`)); err != nil {
		t.Fatal(err)
	}
	g := mustAcquire(t, nodes[0], time.Hour)
	if r := current(t, nodes[0]); r == nil || *r != g.Record() {
		t.Fatalf("Current = %+v, want %+v", r, g.Record())
	}
}

// TestNATSAbandonedLeaseIsWonAtOnce: Abandon leaves an empty-value
// tombstone that Create refuses and Get hides; the next node wins it by CAS
// without waiting for the hour-long ttl.
func TestNATSAbandonedLeaseIsWonAtOnce(t *testing.T) {
	nodes, bucket := natsNodes(t, 2)
	g := mustAcquire(t, nodes[0], time.Hour)
	g.Abandon(t.Context())
	e, ok, err := bucket.Entry(t.Context(), "export.lease")
	if err != nil || !ok || len(e.Value) != 0 {
		t.Fatalf("Entry after Abandon = %+v, %v, %v; want an empty tombstone", e, ok, err)
	}
	if _, err := bucket.Create(t.Context(), "export.lease", []byte("x")); err == nil {
		t.Fatal("Create succeeded over the tombstone: the lease would need no CAS")
	}
	if r := current(t, nodes[1]); r != nil {
		t.Fatalf("Current after Abandon = %+v, want nil", r)
	}
	gb := mustAcquire(t, nodes[1], time.Hour)
	if r := current(t, nodes[0]); r == nil || *r != gb.Record() {
		t.Fatalf("Current = %+v, want %+v", r, gb.Record())
	}
}
