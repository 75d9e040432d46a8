package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/fleet"
	"github.com/slipstream-kv/slipstream/memkv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/mem"
)

// pointerLog is a store that records the cursor of every pointer write
// that succeeded, in order.
type pointerLog struct {
	objstore.Store
	mu      sync.Mutex
	cursors []uint64
}

func (p *pointerLog) record(name string, data []byte, err error) error {
	if err != nil || !strings.HasSuffix(name, objstore.PointerSuffix) {
		return err
	}
	m, perr := artifact.ParseManifest(data)
	if perr != nil {
		return fmt.Errorf("pointer write of an unparseable manifest: %w", perr)
	}
	p.mu.Lock()
	p.cursors = append(p.cursors, m.Cursor.Rank())
	p.mu.Unlock()
	return nil
}

func (p *pointerLog) Create(ctx context.Context, name string, data []byte) error {
	return p.record(name, data, p.Store.Create(ctx, name, data))
}

func (p *pointerLog) Replace(ctx context.Context, name string, data []byte, etag string) error {
	return p.record(name, data, p.Store.Replace(ctx, name, data, etag))
}

func (p *pointerLog) log() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.cursors)
}

// nodeReport is a round report with the node that ran it.
type nodeReport struct {
	node int
	fleet.Report
}

// simFleet runs n nodes following one memkv bucket with an Exporter each,
// and a writer putting a key every 500 ms, inside a synctest bubble.
type simFleet struct {
	kv      *memkv.KV
	leases  *memkv.KV
	ptrs    *pointerLog
	tr      *objstore.Transport
	nodes   []*node
	scratch []string
	loops   []func() *slipstream.Follower

	t0      time.Time
	mu      sync.Mutex
	reports []nodeReport
}

func newSimFleet(t *testing.T, n int) *simFleet {
	sf := &simFleet{kv: memkv.New(), leases: memkv.New(), ptrs: &pointerLog{Store: mem.New()}}
	sf.tr = &objstore.Transport{Store: sf.ptrs}
	for range n {
		nd := startNode(t, sf.kv, backends[0].open(t, filepath.Join(t.TempDir(), "fold")))
		sf.nodes = append(sf.nodes, nd)
		sf.scratch = append(sf.scratch, t.TempDir())
		sf.loops = append(sf.loops, func() *slipstream.Follower { return nd.f })
	}
	return sf
}

// run runs the writer and the exporters for d of bubble time.
func (sf *simFleet) run(t *testing.T, every, d time.Duration) {
	ctx, cancel := context.WithCancel(t.Context())
	sf.t0 = time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			if _, err := sf.kv.Put(ctx, fmt.Sprintf("route.%d", i%50), fmt.Appendf(nil, "v%d", i)); err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
	for i := range sf.nodes {
		e := &fleet.Exporter{
			Round: fleet.ExportRound{Lease: leaseNode(sf.leases, fmt.Sprintf("node-%d", i)), Transport: sf.tr,
				Key: roundKey, ScratchDir: sf.scratch[i], Logger: quiet()},
			Every: every,
			Loop:  func() *slipstream.Follower { return sf.loops[i]() },
			OnRound: func(r fleet.Report) {
				sf.mu.Lock()
				sf.reports = append(sf.reports, nodeReport{i, r})
				sf.mu.Unlock()
			},
		}
		wg.Go(func() {
			if err := e.Run(ctx); err != nil {
				t.Errorf("exporter %d: %v", i, err)
			}
		})
	}
	time.Sleep(d)
	cancel()
	wg.Wait()
}

func (sf *simFleet) all() []nodeReport {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	return slices.Clone(sf.reports)
}

func checkMonotone(t *testing.T, cursors []uint64) {
	t.Helper()
	for i := 1; i < len(cursors); i++ {
		if cursors[i] < cursors[i-1] {
			t.Fatalf("the pointer went backwards: %v", cursors)
		}
	}
}

// A fleet of three publishes about once per period: consecutive lease wins
// are at least a period apart (the lease's expiry is kept in whole seconds,
// so a period less one second), the others lose the lease meanwhile, every
// node tries once per jittered period, the pointer never goes backwards and
// the scratch directories end empty.
func TestExporterFleetPublishesOncePerPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 10 * time.Second
		sf := newSimFleet(t, 3)
		sf.run(t, every, 100*time.Second)

		reps := sf.all()
		var wins []nodeReport
		lost := 0
		lastStart := map[int]time.Time{}
		for _, r := range reps {
			if r.Err != nil || r.Skipped {
				t.Fatalf("node %d: %+v", r.node, r.Report)
			}
			if prev, ok := lastStart[r.node]; ok {
				if gap := r.Start.Sub(prev); gap < every*3/4 || gap > every*5/4 {
					t.Fatalf("node %d tried %v after its previous round, want within ±25%% of %v", r.node, gap, every)
				}
			} else if r.Start.Sub(sf.t0) > every {
				t.Fatalf("node %d's first round came after more than a period", r.node)
			}
			lastStart[r.node] = r.Start
			switch r.Result.Outcome {
			case fleet.Published, fleet.Superseded:
				wins = append(wins, r)
			case fleet.NotAcquired:
				lost++
			}
		}
		for i := 1; i < len(wins); i++ {
			if gap := wins[i].Start.Sub(wins[i-1].Start); gap < every-time.Second {
				t.Fatalf("two rounds won the lease %v apart, within one period", gap)
			}
		}
		// At most one win per period; with three nodes trying at least
		// every 12.5 s, a free lease is won within 12.5 s.
		if len(wins) < 100/23 || len(wins) > 11 {
			t.Fatalf("%d rounds won in 100 s with a 10 s period", len(wins))
		}
		t.Logf("%d wins, %d lost, pointer log %v", len(wins), lost, sf.ptrs.log())
		if lost == 0 {
			t.Fatal("no round lost the lease: nothing was deduplicated")
		}
		ptrs := sf.ptrs.log()
		checkMonotone(t, ptrs)
		if len(ptrs) == 0 || ptrs[len(ptrs)-1] < wins[len(wins)-1].Result.Manifest.Cursor.Rank() {
			t.Fatalf("pointer log %v does not end at the last win", ptrs)
		}
		for _, d := range sf.scratch {
			mustEmpty(t, d)
		}
	})
}

// A node whose loop dies keeps trying, fails with ErrLoopGone and abandons
// the lease each time: the next node to try after a failure wins at once,
// and the fleet keeps publishing. A node without a loop skips its rounds and
// never takes the lease.
func TestExporterDeadLoopHandsTheLeaseOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 5 * time.Second
		sf := newSimFleet(t, 3)
		sf.nodes[0].stop() // node 0's loop is dead from the start
		sf.loops[2] = func() *slipstream.Follower { return nil }
		sf.run(t, every, 120*time.Second)

		reps := sf.all()
		failed, published := 0, 0
		for i, r := range reps {
			switch r.node {
			case 0:
				if !errors.Is(r.Err, fleet.ErrLoopGone) && !(r.Err == nil && r.Result.Outcome == fleet.NotAcquired) {
					t.Fatalf("node 0: %+v", r.Report)
				}
				if r.Err == nil {
					continue
				}
				failed++
				// The lease was abandoned: whoever tries next wins it.
				for _, next := range reps[i+1:] {
					if next.node == 2 {
						continue
					}
					if next.Err == nil && next.Result.Outcome == fleet.NotAcquired {
						t.Fatalf("after node 0 abandoned the lease at %v, node %d lost it at %v",
							r.Start, next.node, next.Start)
					}
					break
				}
			case 1:
				if r.Err != nil {
					t.Fatalf("node 1: %v", r.Err)
				}
				if r.Result.Outcome == fleet.Published {
					published++
				}
			case 2:
				if !r.Skipped {
					t.Fatalf("node 2 has no loop but ran a round: %+v", r.Report)
				}
			}
		}
		if failed == 0 || published < 5 {
			t.Fatalf("%d failed rounds on the dead node, %d published by node 1", failed, published)
		}
		checkMonotone(t, sf.ptrs.log())
		for _, d := range sf.scratch {
			mustEmpty(t, d)
		}
		rec, _ := completed(t, leaseNode(sf.leases, "x"))
		if rec != nil && rec.Holder == "node-2" {
			t.Fatal("node 2 took the lease without a loop")
		}
	})
}

func TestExporterRefusesBadConfig(t *testing.T) {
	r := fleet.ExportRound{Lease: leaseNode(memkv.New(), "a"), Transport: &objstore.Transport{Store: mem.New()}, Key: "k", ScratchDir: t.TempDir()}
	loop := func() *slipstream.Follower { return nil }
	for name, e := range map[string]*fleet.Exporter{
		"short period": {Round: r, Every: 500 * time.Millisecond, Loop: loop},
		"no loop":      {Round: r, Every: time.Second},
		"no key":       {Round: fleet.ExportRound{Lease: r.Lease, Transport: r.Transport, ScratchDir: r.ScratchDir}, Every: time.Second, Loop: loop},
	} {
		if err := e.Run(t.Context()); !errors.Is(err, slipstream.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestJitterBounds(t *testing.T) {
	const d = 10 * time.Second
	lo, hi := d, time.Duration(0)
	for range 10000 {
		j := fleet.Jitter(d)
		lo, hi = min(lo, j), max(hi, j)
	}
	if lo < d*3/4 || hi > d*5/4 || hi-lo < d*4/10 {
		t.Fatalf("Jitter(%v) spans [%v, %v], want most of [7.5s, 12.5s]", d, lo, hi)
	}
}
