package fleet_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/fleet"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
	"github.com/slipstream-kv/slipstream/pebblestore"
)

// Multi-exporter prevention on live NATS with the LSM backend (pebble).

var pebbleBackend = backends[1]

// A slow exporter cannot clobber a newer artifact. A wins a ttl-2 s
// round and parks inside its upload; B takes the lease over once it expires
// and publishes a newer fold; A, released, lands its payload at its own
// address but its pointer swap is refused. A new node bootstraps from B's
// artifact and converges.
func TestSlowExporterCannotClobberNewerArtifact(t *testing.T) {
	fx := newNATSFixture(t)
	for i := range 10 {
		fx.put(t, fmt.Sprintf("route.pre.%d", i), "pre")
	}
	a := startNode(t, fx.bucketHandle(t), pebbleBackend.open(t, filepath.Join(t.TempDir(), "a")))
	b := startNode(t, fx.bucketHandle(t), pebbleBackend.open(t, filepath.Join(t.TempDir(), "b")))
	a.waitCursor(t, fx.last(t))

	parked, release := make(chan string, 1), make(chan struct{})
	gated := &objstoretest.Faulty{Store: fx.tr.Store, Fail: func(op, name string) error {
		if op == "put" {
			parked <- name
			<-release
		}
		return nil
	}}
	ra := &fleet.ExportRound{Lease: leaseNode(fx.leases, "node-a"), TTL: 2 * time.Second, Follower: a.f,
		Transport: &objstore.Transport{Store: gated, Prefix: fx.tr.Prefix}, Key: roundKey, ScratchDir: t.TempDir(), Logger: quiet()}
	type outcome struct {
		res fleet.Result
		err error
	}
	doneA := make(chan outcome, 1)
	go func() {
		res, err := ra.Run(t.Context())
		doneA <- outcome{res, err}
	}()
	var payloadA string
	select {
	case payloadA = <-parked:
	case o := <-doneA:
		t.Fatalf("A's round returned before its upload: %+v %v", o.res, o.err)
	}
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	for i := range 8 {
		fx.put(t, fmt.Sprintf("route.post.%d", i), "post")
	}
	b.waitCursor(t, fx.last(t))
	rb := &fleet.ExportRound{Lease: leaseNode(fx.leases, "node-b"), TTL: 60 * time.Second, Follower: b.f,
		Transport: fx.tr, Key: roundKey, ScratchDir: t.TempDir(), Logger: quiet()}
	var resB fleet.Result
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := rb.Run(t.Context())
		if err != nil {
			t.Fatalf("B's round: %v", err)
		}
		if res.Outcome == fleet.Published {
			resB = res
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B never took the lease over within 15 s")
		}
		time.Sleep(250 * time.Millisecond)
	}

	close(release)
	oa := <-doneA
	if oa.err != nil {
		t.Fatalf("A's round: %v", oa.err)
	}
	revA, revB := oa.res.Manifest.Cursor.Rank(), resB.Manifest.Cursor.Rank()
	if oa.res.Outcome != fleet.Superseded || oa.res.Remote.Rank() != revB {
		t.Fatalf("A's round: %+v, want superseded by B's %d", oa.res, revB)
	}
	if revA >= revB {
		t.Fatalf("rev(A) %d ≥ rev(B) %d", revA, revB)
	}
	found := false
	for _, p := range payloads(t, fx.tr, roundKey) {
		found = found || p.Name == payloadA
	}
	if !found || oa.res.Payload != payloadA {
		t.Fatalf("A's payload %s did not land at its own address", payloadA)
	}
	if m, err := fx.tr.Manifest(t.Context(), roundKey); err != nil || m.Cursor.Rank() != revB {
		t.Fatalf("pointer %+v, %v; want B's %d", m, err, revB)
	}
	rec, cur := completed(t, rb.Lease)
	if rec == nil || rec.Holder != "node-b" || cur != revB || rec.CompletedCursorHex != fmt.Sprintf("%016x", revB) {
		t.Fatalf("lease record %+v, want holder node-b completed at %d", rec, revB)
	}
	mustEmpty(t, ra.ScratchDir)
	mustEmpty(t, rb.ScratchDir)

	// Node C bootstraps from B's artifact and converges.
	dest := filepath.Join(t.TempDir(), "c")
	if _, err := fleet.ImportRemote(t.Context(), fx.tr, roundKey, t.TempDir(), dest, pebbleBackend.artifact); err != nil {
		t.Fatal(err)
	}
	cs := pebbleBackend.open(t, dest)
	post := 0
	for k := range dump(t, cs) {
		if strings.HasPrefix(k, "route.post.") {
			post++
		}
	}
	if post != 8 {
		t.Fatalf("node C's artifact holds %d post keys, want 8", post)
	}
	c := startNode(t, fx.bucketHandle(t), cs)
	for i := range 3 {
		fx.put(t, fmt.Sprintf("route.tail.%d", i), "tail")
	}
	c.waitCursor(t, fx.last(t))
	if d := diff(dump(t, cs), fx.scan(t)); d != "" {
		t.Fatalf("node C differs from the bucket: %s", d)
	}
	if got := len(c.deliveries()); got != 3 {
		t.Fatalf("node C received %d updates, want the 3 tail puts", got)
	}
}

// A crash between payload and pointer keeps bootstrap available.
// The new round's pointer write fails: the round fails and abandons the
// lease, the pointer still names the old artifact, which downloads and
// imports; the next round publishes the new state.
func TestCrashBetweenPayloadAndPointerKeepsBootstrap(t *testing.T) {
	fx := newNATSFixture(t)
	for i := range 5 {
		fx.put(t, fmt.Sprintf("route.pre.%d", i), "pre")
	}
	a := startNode(t, fx.bucketHandle(t), pebbleBackend.open(t, filepath.Join(t.TempDir(), "a")))
	a.waitCursor(t, fx.last(t))
	round := func(tr *objstore.Transport) *fleet.ExportRound {
		return &fleet.ExportRound{Lease: leaseNode(fx.leases, "node-a"), TTL: time.Minute, Follower: a.f,
			Transport: tr, Key: roundKey, ScratchDir: t.TempDir(), Logger: quiet()}
	}
	if res, err := round(fx.tr).Run(t.Context()); err != nil || res.Outcome != fleet.Published {
		t.Fatalf("old round: %+v %v", res, err)
	}
	old, err := fx.tr.Manifest(t.Context(), roundKey)
	if err != nil {
		t.Fatal(err)
	}
	forceExpireNATS(t, fx)

	for i := range 5 {
		fx.put(t, fmt.Sprintf("route.post.%d", i), "post")
	}
	a.waitCursor(t, fx.last(t))
	injected := errors.New("injected: crash before the pointer")
	noPointer := &objstoretest.Faulty{Store: fx.tr.Store, Fail: func(op, name string) error {
		if (op == "replace" || op == "create") && strings.HasSuffix(name, objstore.PointerSuffix) {
			return injected
		}
		return nil
	}}
	failing := round(&objstore.Transport{Store: noPointer, Prefix: fx.tr.Prefix})
	if _, err := failing.Run(t.Context()); !errors.Is(err, injected) {
		t.Fatalf("round with a failing pointer write: %v", err)
	}
	mustEmpty(t, failing.ScratchDir)
	if m, err := fx.tr.Manifest(t.Context(), roundKey); err != nil || m.Cursor != old.Cursor {
		t.Fatalf("pointer %+v %v moved, want the old %v", m, err, old.Cursor)
	}
	countPost := func() int {
		t.Helper()
		dest := filepath.Join(t.TempDir(), "fold")
		if _, err := fleet.ImportRemote(t.Context(), fx.tr, roundKey, t.TempDir(), dest, pebbleBackend.artifact); err != nil {
			t.Fatal(err)
		}
		s := pebbleBackend.open(t, dest)
		defer s.Close()
		n := 0
		for k := range dump(t, s) {
			if strings.HasPrefix(k, "route.post.") {
				n++
			}
		}
		return n
	}
	if n := countPost(); n != 0 {
		t.Fatalf("bootstrap during the window holds %d post keys, want the old state (0)", n)
	}
	// The failed round abandoned the lease: the next one wins at once.
	if res, err := round(fx.tr).Run(t.Context()); err != nil || res.Outcome != fleet.Published {
		t.Fatalf("next round: %+v %v", res, err)
	}
	if n := countPost(); n != 5 {
		t.Fatalf("bootstrap after the next round holds %d post keys, want 5", n)
	}
}

// forceExpireNATS overwrites the fixture's lease with one that expired.
func forceExpireNATS(t testing.TB, fx *natsFixture) {
	t.Helper()
	e, ok, err := fx.leases.Entry(t.Context(), "export.test")
	if err != nil || !ok {
		t.Fatalf("lease entry: %v %v", ok, err)
	}
	if _, err := fx.leases.Update(t.Context(), "export.test", []byte(`{"holder_id":"old","acquired_at_unix":1,"expires_at_unix":2}`), revOf(e)); err != nil {
		t.Fatal(err)
	}
}

// A compacted multi-file pebble artifact survives source churn.
// The export hard-links the fold's tables; churn and a settle then unlink
// the sources; the upload still ships exactly the at-export state.
func TestCompactedMultiFileArtifactSurvivesChurn(t *testing.T) {
	fx := newNATSFixture(t)
	dir := filepath.Join(t.TempDir(), "a")
	st, err := pebblestore.Open(dir, &pebblestore.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	a := startNode(t, fx.bucketHandle(t), st)
	value := func(batch, i int) string {
		return fmt.Sprintf("%04d-%04d-%s", batch, i, strings.Repeat("v", 2<<10))
	}
	settle := func() {
		t.Helper()
		a.waitCursor(t, fx.last(t))
		if err := st.Settle(); err != nil {
			t.Fatal(err)
		}
	}
	for batch := range 12 {
		for i := range 50 {
			fx.put(t, fmt.Sprintf("route.%03d", (batch*50+i*7)%100), value(batch, i))
		}
		if batch%4 == 3 {
			for i := range 10 {
				if _, err := fx.bucket.Delete(t.Context(), fmt.Sprintf("route.%03d", (batch*13+i*3)%100)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if batch == 5 {
			settle()
		}
	}
	settle()
	for i := range 30 {
		fx.put(t, fmt.Sprintf("route.%03d", (i*11)%100), value(99, i))
	}
	a.waitCursor(t, fx.last(t))
	// A restart: pebble flushes the tail it replays from its WAL into a
	// table of its own, beside the settled one.
	a.stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = pebblestore.Open(dir, &pebblestore.Options{Logger: quiet()}); err != nil {
		t.Fatal(err)
	}
	a = startNode(t, fx.bucketHandle(t), st)
	a.waitCursor(t, fx.last(t))
	want := fx.scan(t)
	art := filepath.Join(t.TempDir(), "artifact")
	m, err := artifact.Export(t.Context(), a.f, art)
	if err != nil {
		t.Fatal(err)
	}
	if m.Cursor.Rank() != fx.last(t) {
		t.Fatalf("export cursor %v, want %d", m.Cursor, fx.last(t))
	}
	sst := 0
	for _, f := range m.Files {
		if strings.HasSuffix(f.Path, ".sst") {
			sst++
		}
	}
	if sst < 2 {
		t.Fatalf("the export holds %d sstables, want ≥ 2 (files %v)", sst, m.Files)
	}

	for batch := range 6 {
		for i := range 50 {
			fx.put(t, fmt.Sprintf("route.%03d", (batch*17+i)%100), value(200+batch, i))
		}
		if _, err := fx.bucket.Delete(t.Context(), fmt.Sprintf("route.%03d", batch)); err != nil {
			t.Fatal(err)
		}
	}
	settle()

	if res, err := fx.tr.Upload(t.Context(), roundKey, art); err != nil || res.Outcome != objstore.Published {
		t.Fatalf("upload: %+v %v", res, err)
	}
	dest := filepath.Join(t.TempDir(), "fold")
	if _, err := fleet.ImportRemote(t.Context(), fx.tr, roundKey, t.TempDir(), dest, pebbleBackend.artifact); err != nil {
		t.Fatal(err)
	}
	s := pebbleBackend.open(t, dest)
	defer s.Close()
	if s.Cursor() != m.Cursor {
		t.Fatalf("imported cursor %v, want %v", s.Cursor(), m.Cursor)
	}
	if d := diff(dump(t, s), want); d != "" {
		t.Fatalf("imported fold differs from the at-export state: %s", d)
	}
	if d := diff(dump(t, st), fx.scan(t)); d != "" {
		t.Fatalf("the source fold differs from the bucket after the churn: %s", d)
	}
}
