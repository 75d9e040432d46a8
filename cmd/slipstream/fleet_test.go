package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/natsobj"
)

// The fleet through the built binary: mirrors exporting to a NATS object
// store under the export lease, and mirrors bootstrapping from it.

const fleetStoreURL = "nats-object://artifacts/fleet"

// fleetPointer reads the fleet's pointer in the server's object store.
type fleetPointer struct{ tr *objstore.Transport }

func newFleetPointer(t *testing.T, url string) *fleetPointer {
	t.Helper()
	st, err := natsobj.Open(t.Context(), natstest.Connect(t, url), natsobj.Config{Bucket: "artifacts"})
	if err != nil {
		t.Fatal(err)
	}
	return &fleetPointer{tr: &objstore.Transport{Store: st, Prefix: "fleet"}}
}

// cursor returns the pointer's cursor; false when there is none yet.
func (p *fleetPointer) cursor(ctx context.Context, key string) (uint64, bool, error) {
	m, err := p.tr.Manifest(ctx, key)
	if errors.Is(err, objstore.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return m.Cursor.Rank(), true, nil
}

// waitPointer waits until the key's pointer names a cursor ≥ rev and
// returns it.
func (p *fleetPointer) waitPointer(t *testing.T, key string, rev uint64) uint64 {
	t.Helper()
	var c uint64
	poll.Until(t, 60*time.Second, func() (bool, string) {
		var ok bool
		var err error
		c, ok, err = p.cursor(t.Context(), key)
		return err == nil && ok && c >= rev, fmt.Sprintf("pointer %d (present %v, %v), want ≥ %d", c, ok, err, rev)
	})
	return c
}

// metric returns the value of an unlabelled (or fully labelled) series in
// the mirror's /metrics; false when absent.
func metric(t testing.TB, base, series string) (float64, bool) {
	t.Helper()
	code, body, _ := httpGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f, true
		}
	}
	return 0, false
}

func lastSeq(t testing.TB, b *natskv.Bucket) uint64 {
	t.Helper()
	st, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.LastSeq
}

// Bootstrap (docs/FLEET.md) through the binary, on both backends: node A exports; node B,
// started on an empty fold with -bootstrap-from, imports A's artifact and
// folds exactly the 7 updates after its cursor, ending equal to the bucket
// without the key deleted after the export.
func TestFleet_BootstrapFromArtifact(t *testing.T) {
	binary(t)
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			srv := natstest.Start(t)
			bucketName := "fleet_" + backend
			b := openBucket(t, srv.URL(), natskv.Config{Bucket: bucketName})
			ptr := newFleetPointer(t, srv.URL())
			dir := t.TempDir()
			a := startProc(t, "mirror", "-bucket", bucketName, "-fold", filepath.Join(dir, "a"), "-nats", srv.URL(),
				"-http", "127.0.0.1:0", "-backend", backend, "-batch-window", "1ms",
				"-export-to", fleetStoreURL, "-export-every", "1s", "-node-id", "node-a")
			baseA := a.httpBase(t)
			var last uint64
			for i := range 12 {
				last = put(t, b, fmt.Sprintf("route.pre.%d", i), fmt.Sprintf("pre-%d", i))
			}
			cursor := ptr.waitPointer(t, bucketName, last)
			// The round reports once it has completed the lease and pruned,
			// a moment after the pointer moved.
			poll.Until(t, 30*time.Second, func() (bool, string) {
				st, ok := getStatus(baseA)
				if !ok || st.Fleet == nil || st.Fleet.Export == nil {
					return false, "no fleet status"
				}
				e := st.Fleet.Export
				return e.LastPublishedCursor == cursor && e.LastRound != nil && e.LastRound.Cursor == cursor &&
						e.LastRound.Outcome == "published" && e.Rounds["published"] >= 1,
					fmt.Sprintf("exporter status %+v, want its last round published at %d", e, cursor)
			})
			if v, _ := metric(t, baseA, "slipstream_export_last_published_cursor"); uint64(v) != cursor {
				t.Fatalf("slipstream_export_last_published_cursor %v, want %d", v, cursor)
			}
			if v, ok := metric(t, baseA, `slipstream_export_rounds_total{outcome="published"}`); !ok || v < 1 {
				t.Fatalf("published rounds %v %v", v, ok)
			}
			a.stop(t)
			if c, _, _ := ptr.cursor(t.Context(), bucketName); c != cursor {
				t.Fatalf("the pointer moved from %d to %d while stopping", cursor, c)
			}

			for i := range 6 {
				put(t, b, fmt.Sprintf("route.post.%d", i), fmt.Sprintf("post-%d", i))
			}
			if _, err := b.Delete(t.Context(), "route.pre.0"); err != nil {
				t.Fatal(err)
			}
			last = lastSeq(t, b)
			if last-cursor != 7 {
				t.Fatalf("%d updates after the artifact, want 7", last-cursor)
			}

			foldB := filepath.Join(dir, "b")
			bp := startProc(t, "mirror", "-bucket", bucketName, "-fold", foldB, "-nats", srv.URL(),
				"-http", "127.0.0.1:0", "-batch-window", "1ms", "-bootstrap-from", fleetStoreURL)
			baseB := bp.httpBase(t)
			stB := waitCaughtUp(t, baseB, b)
			if stB.Fleet == nil || stB.Fleet.Bootstrap == nil || stB.Fleet.Bootstrap.Last == nil ||
				stB.Fleet.Bootstrap.Last.Outcome != bootImported || stB.Fleet.Bootstrap.Last.Cursor != cursor ||
				stB.Fleet.Bootstrap.Last.Reason != "empty fold" {
				t.Fatalf("node B's bootstrap status %+v, want imported at %d", stB.Fleet, cursor)
			}
			if stB.Backend != backend || stB.Resyncs != 0 {
				t.Fatalf("node B: backend %s resyncs %d, want %s and none", stB.Backend, stB.Resyncs, backend)
			}
			if v, _ := metric(t, baseB, "slipstream_updates_total"); v != 7 {
				t.Fatalf("node B folded %v updates, want exactly the 7 after the artifact's cursor\n%s", v, bp.stderr.String())
			}
			if v, _ := metric(t, baseB, `slipstream_bootstraps_total{outcome="imported"}`); v != 1 {
				t.Fatalf("slipstream_bootstraps_total{imported} = %v", v)
			}
			if resumed := bp.logValue(t, "follower resuming", "cursor"); resumed != strconv.FormatUint(cursor, 10) {
				t.Fatalf("node B resumed from %s, want the artifact's cursor %d", resumed, cursor)
			}
			want := bucketLines(t, t.Context(), b)
			if d := diffLines(httpRange(t, baseB, ""), want); d != "" {
				t.Fatalf("node B ≠ bucket: %s", d)
			}
			if code, _, _ := httpGet(t, baseB+"/v1/kv/route.pre.0"); code != 404 {
				t.Fatalf("route.pre.0, deleted after the export, is served by node B (%d)", code)
			}
			if final := bp.stop(t); final != last {
				t.Fatalf("node B's final cursor %d, want %d", final, last)
			}
			if got := mustBin(t, "", "stat", "-fold", foldB); !strings.Contains(got, "backend:  "+backend) {
				t.Fatalf("stat of node B's fold:\n%s", got)
			}
			if ents, err := os.ReadDir(foldB + scratchSuffix); err == nil && len(ents) != 0 {
				t.Fatalf("node B's scratch directory holds %v", ents)
			}
		})
	}
}

// A node whose cursor expired recovers through the artifact when one is
// recent enough (no resync ran) and falls back to the resync, saying so,
// when the only artifact is older than the bucket's retained history. Both
// converge, without the keys deleted while the node was down.
func TestFleet_ExpiredCursorBootstrap(t *testing.T) {
	const maxAge = 3 * time.Second
	binary(t)
	srv := natstest.Start(t)
	const bucketName = "expire_fleet"
	// History 64: overwrites keep the older revisions, so only the max age
	// trims the history (with history 1, every overwrite of the few live
	// keys would move the first sequence and expire any cursor at once).
	b := openBucket(t, srv.URL(), natskv.Config{Bucket: bucketName, MaxAge: maxAge, History: 64})
	ptr := newFleetPointer(t, srv.URL())

	// live.* are re-put faster than they expire; each round of the keeper
	// also moves the bucket's head, so the exporter has something new.
	ctx, stopKeeper := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var keepErr error
	wg.Go(func() {
		for n := 0; ; n++ {
			for k := range 3 {
				if _, err := b.Put(ctx, fmt.Sprintf("live.%d", k), fmt.Appendf(nil, "v%d", n)); err != nil {
					if ctx.Err() == nil {
						keepErr = err
					}
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(maxAge / 10):
			}
		}
	})
	defer func() {
		stopKeeper()
		wg.Wait()
		if keepErr != nil {
			t.Errorf("keeper: %v", keepErr)
		}
	}()

	dir := t.TempDir()
	exporterArgs := []string{"mirror", "-bucket", bucketName, "-fold", filepath.Join(dir, "a"), "-nats", srv.URL(),
		"-backend", "pebble", "-batch-window", "1ms", "-export-to", fleetStoreURL, "-export-every", "1s", "-node-id", "node-a"}
	nodeArgs := []string{"mirror", "-bucket", bucketName, "-fold", filepath.Join(dir, "b"), "-nats", srv.URL(),
		"-http", "127.0.0.1:0", "-backend", "pebble", "-batch-window", "1ms", "-bootstrap-from", fleetStoreURL}

	// expireWhileDown syncs node B with the gone keys, stops it, deletes
	// them and waits until their delete markers are out of the history.
	expireWhileDown := func(gone []string) {
		t.Helper()
		for _, k := range gone {
			put(t, b, k, "x")
		}
		m := startProc(t, nodeArgs...)
		base := m.httpBase(t)
		poll.Until(t, 30*time.Second, func() (bool, string) {
			keys := foldKeys(t, base)
			for _, k := range gone {
				if !slices.Contains(keys, k) {
					return false, fmt.Sprintf("fold keys %v", keys)
				}
			}
			return true, ""
		})
		cursor := m.stop(t)
		for _, k := range gone {
			if _, err := b.Delete(t.Context(), k); err != nil {
				t.Fatal(err)
			}
		}
		lastDelete := lastSeq(t, b)
		poll.Until(t, 10*maxAge, func() (bool, string) {
			st, err := b.Status(t.Context())
			return err == nil && st.FirstSeq > lastDelete && st.FirstSeq > cursor+1,
				fmt.Sprintf("first seq %d, waiting past the delete markers (≤ %d) and the cursor %d (%v)", st.FirstSeq, lastDelete, cursor, err)
		})
	}
	converged := func(m *proc, gone []string) statusDoc {
		t.Helper()
		base := m.httpBase(t)
		var st statusDoc
		poll.Until(t, 60*time.Second, func() (bool, string) {
			var ok bool
			st, ok = getStatus(base)
			keys := foldKeys(t, base)
			for _, k := range gone {
				if slices.Contains(keys, k) {
					return false, fmt.Sprintf("%s still in the fold; status %+v", k, st)
				}
			}
			return ok && st.State == stateSynced && len(keys) == 3, fmt.Sprintf("fold keys %v, status %+v", keys, st)
		})
		return st
	}

	// 1. The only artifact is older than the retained history: resync.
	a := startProc(t, exporterArgs...)
	ptr.waitPointer(t, bucketName, 1)
	a.stop(t)
	gone := []string{"gone.0", "gone.1", "gone.2"}
	expireWhileDown(gone)
	m := startProc(t, nodeArgs...)
	st := converged(m, gone)
	if st.Resyncs != 1 || st.Fleet.Bootstrap.Last == nil || st.Fleet.Bootstrap.Last.Outcome != bootFallback {
		t.Fatalf("stale artifact: resyncs %d, bootstrap %+v; want the resync path\n%s", st.Resyncs, st.Fleet.Bootstrap.Last, m.stderr.String())
	}
	if !strings.Contains(m.stderr.String(), "older than the bucket's retained history") {
		t.Fatalf("the fallback was not explained:\n%s", m.stderr.String())
	}
	m.stop(t)

	// 2. A fresh artifact: the node bootstraps, no resync runs.
	gone = []string{"gone.3", "gone.4"}
	expireWhileDown(gone)
	a = startProc(t, exporterArgs...)
	head := lastSeq(t, b)
	published := ptr.waitPointer(t, bucketName, head)
	t.Logf("head %d, pointer %d", head, published)
	m = startProc(t, nodeArgs...)
	st = converged(m, gone)
	if st.Resyncs != 0 || st.Fleet.Bootstrap.Last == nil || st.Fleet.Bootstrap.Last.Outcome != bootImported ||
		st.Fleet.Bootstrap.Last.Reason != "cursor expired" {
		t.Fatalf("fresh artifact: resyncs %d, bootstrap %+v; want the bootstrap path\n%s\nexporter:\n%s", st.Resyncs, st.Fleet.Bootstrap.Last, m.stderr.String(), a.stderr.String())
	}
	if !strings.Contains(m.stderr.String(), "bootstrapping from the fleet's latest artifact instead of resyncing") {
		t.Fatalf("the bootstrap was not logged:\n%s", m.stderr.String())
	}
	stopKeeper()
	wg.Wait()
	base := m.httpBase(t)
	st = waitCaughtUp(t, base, b)
	if d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), b)); d != "" {
		t.Fatalf("node ≠ bucket after the bootstrap: %s", d)
	}
	m.stop(t)
	a.stop(t)
}

// fleetSoak is how long TestFleet_ThreeExporters churns: a few seconds by
// default, SLIPSTREAM_FLEET_SOAK (a duration) for a long run.
func fleetSoak(t *testing.T) time.Duration {
	d := 6 * time.Second
	if s := os.Getenv("SLIPSTREAM_FLEET_SOAK"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			t.Fatalf("SLIPSTREAM_FLEET_SOAK=%q: want a positive duration", s)
		}
		d = v
	}
	return d
}

// Three mirrors of one bucket export to one store every second while keys
// churn and the mirrors are SIGKILLed and restarted at random. The
// pointer's cursor, sampled throughout, never decreases; at the end a fourth
// node bootstraps from the latest artifact and equals the bucket.
func TestFleet_ThreeExporters(t *testing.T) {
	soak := fleetSoak(t)
	binary(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, soak %v", seed, soak)
	rng := rand.New(rand.NewPCG(seed, 2))
	srv := natstest.Start(t)
	const bucketName = "fleet3"
	b := openBucket(t, srv.URL(), natskv.Config{Bucket: bucketName, MaxBytes: -1})
	ptr := newFleetPointer(t, srv.URL())
	dir := t.TempDir()
	args := func(i int) []string {
		return []string{"mirror", "-bucket", bucketName, "-fold", filepath.Join(dir, fmt.Sprintf("n%d", i)), "-nats", srv.URL(),
			"-backend", allBackends[i%len(allBackends)], "-batch-window", "2ms",
			"-export-to", fleetStoreURL, "-export-every", "1s", "-node-id", fmt.Sprintf("node-%d", i)}
	}
	nodes := make([]*proc, 3)
	for i := range nodes {
		nodes[i] = startProc(t, args(i)...)
	}

	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var churnErr, sampleErr error
	var samples []uint64
	crng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
	wg.Go(func() {
		// Puts and deletes over 300 keys, a few hundred a second.
		for i := 0; ctx.Err() == nil; i++ {
			key := fmt.Sprintf("k.%03d", crng.IntN(300))
			var err error
			if crng.IntN(5) == 0 {
				_, err = b.Delete(ctx, key)
			} else {
				_, err = b.Put(ctx, key, fmt.Appendf(nil, "v%d", i))
			}
			if err != nil && ctx.Err() == nil {
				churnErr = err
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	wg.Go(func() {
		var prev uint64
		for ctx.Err() == nil {
			c, ok, err := ptr.cursor(ctx, bucketName)
			switch {
			case err != nil && ctx.Err() == nil:
				sampleErr = err
				return
			case ok && c < prev:
				sampleErr = fmt.Errorf("the pointer went backwards: %d after %d", c, prev)
				return
			case ok:
				if c != prev {
					samples = append(samples, c)
				}
				prev = c
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	kills := 0
	for end := time.Now().Add(soak); time.Now().Before(end); {
		time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
		i := rng.IntN(len(nodes))
		nodes[i].kill(t)
		kills++
		nodes[i] = startProc(t, args(i)...)
	}
	stop()
	wg.Wait()
	if churnErr != nil {
		t.Fatal(churnErr)
	}
	if sampleErr != nil {
		t.Fatal(sampleErr)
	}
	head := lastSeq(t, b)
	final := ptr.waitPointer(t, bucketName, head)
	if len(samples) < 3 {
		t.Fatalf("only %d distinct pointer cursors sampled over %v: %v", len(samples), soak, samples)
	}
	t.Logf("%d kills, %d distinct pointer cursors sampled, never decreasing; final pointer %d = head", kills, len(samples), final)

	fourth := startProc(t, "mirror", "-bucket", bucketName, "-fold", filepath.Join(dir, "n4"), "-nats", srv.URL(),
		"-http", "127.0.0.1:0", "-bootstrap-from", fleetStoreURL)
	base := fourth.httpBase(t)
	st := waitCaughtUp(t, base, b)
	if st.Fleet == nil || st.Fleet.Bootstrap.Last == nil || st.Fleet.Bootstrap.Last.Outcome != bootImported ||
		st.Fleet.Bootstrap.Last.Cursor != final {
		t.Fatalf("fourth node's bootstrap %+v, want imported at %d\n%s", st.Fleet, final, fourth.stderr.String())
	}
	if d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), b)); d != "" {
		t.Fatalf("fourth node ≠ bucket: %s", d)
	}
	if v, _ := metric(t, base, "slipstream_updates_total"); v != 0 {
		t.Fatalf("the fourth node folded %v updates after an artifact at the head", v)
	}
	fourth.stop(t)
	for _, n := range nodes {
		n.logValue(t, "caught up", "cursor") // started up: a SIGTERM now is a clean stop
		n.stop(t)
	}
}

// Two mirrors in the test process (so the race detector sees the exporter,
// the pointer check, the bootstrap swap and the HTTP readers together): one
// exports while keys arrive and its status and metrics are read; the other
// bootstraps from it while its own HTTP API is polled, then follows.
func TestFleet_InProcess(t *testing.T) {
	srv := natstest.Start(t)
	b := openBucket(t, srv.URL(), natskv.Config{Bucket: "inproc_fleet"})
	ptr := newFleetPointer(t, srv.URL())
	dir := t.TempDir()
	a := startInProcess(t, "-bucket", "inproc_fleet", "-fold", filepath.Join(dir, "a"), "-nats", srv.URL(),
		"-http", "127.0.0.1:0", "-batch-window", "1ms", "-backend", "pebble",
		"-export-to", fleetStoreURL, "-export-every", "1s", "-node-id", "in-a")
	baseA := a.httpBase(t)
	var last uint64
	for i := range 50 {
		last = put(t, b, fmt.Sprintf("k.%d", i), "v")
		if i%10 == 0 {
			getStatus(baseA)
			metric(t, baseA, "slipstream_fleet_artifact_cursor")
		}
	}
	cursor := ptr.waitPointer(t, "inproc_fleet", last)

	bm := startInProcess(t, "-bucket", "inproc_fleet", "-fold", filepath.Join(dir, "b"), "-nats", srv.URL(),
		"-http", "127.0.0.1:0", "-batch-window", "1ms", "-bootstrap-from", fleetStoreURL)
	baseB := bm.httpBase(t)
	var st statusDoc
	poll.Until(t, 30*time.Second, func() (bool, string) {
		httpRange(t, baseB, "k.")
		var ok bool
		st, ok = getStatus(baseB)
		return ok && st.State == stateSynced && st.Fleet.Bootstrap.Last != nil, fmt.Sprintf("status %+v", st)
	})
	if l := st.Fleet.Bootstrap.Last; l.Outcome != bootImported || l.Cursor < cursor || st.Backend != backendPebble {
		t.Fatalf("bootstrap %+v, backend %s", l, st.Backend)
	}
	put(t, b, "after", "v")
	st = waitCaughtUp(t, baseB, b)
	if d := diffLines(httpRange(t, baseB, ""), bucketLines(t, t.Context(), b)); d != "" {
		t.Fatalf("node B ≠ bucket: %s", d)
	}
	if n := st.Fleet.Newest; n == nil || n.Cursor < cursor || n.Error != "" {
		t.Fatalf("node B's view of the newest artifact: %+v", n)
	}
	bm.stop(t)
	a.stop(t)
}
