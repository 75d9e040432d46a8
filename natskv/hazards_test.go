package natskv_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/audit"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/memstore"
	"github.com/slipstream-kv/slipstream/natskv"
)

// These tests pin the nats-server and nats.go behaviours the package relies
// on or defends against (package documentation, "Server behaviours this
// package depends on"). The "raw" halves use nats.go
// directly: if a future release changes the behaviour, they fail and the
// defence can be re-evaluated; the natskv halves must keep passing.

// firstEntry returns the first non-nil entry of a raw watcher, or nil when
// the done marker comes first.
func firstEntry(t *testing.T, w jetstream.KeyWatcher) jetstream.KeyValueEntry {
	t.Helper()
	select {
	case e := <-w.Updates():
		return e
	case <-time.After(updateTimeout):
		t.Fatal("raw watcher delivered nothing within 5s")
	}
	return nil
}

func TestServerPinsInclusiveStartSequence(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "inclusive"})
	for _, k := range []string{"a", "b", "c"} {
		put(t, b, k, "1")
	}
	w, err := e.rawKV(t, "inclusive").WatchAll(t.Context(), jetstream.ResumeFromRevision(2))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if en := firstEntry(t, w); en == nil || en.Revision() != 2 {
		t.Fatalf("raw ResumeFromRevision(2) starts at %v, want revision 2 (inclusive)", en)
	}
	// natskv resumes strictly after the cursor.
	ours := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(2))
	if u := ours.next(t); rev(u) != 3 || u.Key != "c" {
		t.Fatalf("Watch after cursor 2 starts at %s@%d, want c@3", u.Key, rev(u))
	}
}

func TestServerPinsNilDoneMarker(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "marker"})
	kv := e.rawKV(t, "marker")
	// Empty bucket: the marker comes at once.
	w, err := kv.WatchAll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if en := firstEntry(t, w); en != nil {
		t.Fatalf("empty bucket: first entry %v, want the nil marker", en)
	}
	w.Stop()
	for _, k := range []string{"a", "b", "c"} {
		put(t, b, k, "1")
	}
	w, err = kv.WatchAll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := range 3 {
		if en := firstEntry(t, w); en == nil {
			t.Fatalf("nil marker after %d of 3 initial values", i)
		}
	}
	if en := firstEntry(t, w); en != nil {
		t.Fatalf("after the initial values got %s, want the nil marker", en.Key())
	}
	// A resume at the head: nothing to replay, the marker at once.
	w2, err := kv.WatchAll(t.Context(), jetstream.ResumeFromRevision(4))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if en := firstEntry(t, w2); en != nil {
		t.Fatalf("resume at the head: first entry %s, want the nil marker", en.Key())
	}
}

// TestServerPinsSilentClampBelowFirstSeq: the server silently clamps a
// resume below its first sequence up to it.
func TestServerPinsSilentClampBelowFirstSeq(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "clamp"})
	for round := range 4 {
		put(t, b, "route.a", keyN("a", round))
		put(t, b, "route.b", keyN("b", round))
	}
	first := e.streamInfo(t, "clamp").State.FirstSeq
	if first <= 3 {
		t.Fatalf("premise: first sequence %d, want > 3", first)
	}
	// Raw half: the server accepts a start below its first sequence and
	// moves it up silently.
	w, err := e.rawKV(t, "clamp").WatchAll(t.Context(), jetstream.ResumeFromRevision(3))
	if err != nil {
		t.Fatalf("raw resume below the first sequence errored (server behaviour changed; re-evaluate the matcher): %v", err)
	}
	defer w.Stop()
	if en := firstEntry(t, w); en == nil || en.Revision() < first {
		t.Fatalf("raw resume at 3: first entry %v, want revision ≥ %d (clamped)", en, first)
	}
	// natskv half: ErrCursorExpired, never a silently clamped stream.
	ours := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(2))
	if err := ours.waitResult(t, 2*time.Second); !errors.Is(err, slipstream.ErrCursorExpired) {
		t.Fatalf("Watch after cursor 2 = %v, want ErrCursorExpired", err)
	}
	for _, s := range []slipstream.Scope{slipstream.Prefix("route."), slipstream.Prefixes("route.", "other.")} {
		ours := startWatch(t, b, s, slipstream.CursorFromUint64(2))
		if err := ours.waitResult(t, 2*time.Second); !errors.Is(err, slipstream.ErrCursorExpired) {
			t.Fatalf("Watch(%s) after cursor 2 = %v, want ErrCursorExpired", s, err)
		}
	}
}

// TestPurgeDeletesHoleIsRepaired: PurgeDeletes removes a delete from the
// middle of the stream without moving its first sequence, so no cursor
// check can see it (the raw half pins that: the resume delivers nothing for
// the deleted key). A follower that resumes over it keeps the key; the audit
// reports it stale and the repair, through the running follower, drops it.
func TestPurgeDeletesHoleIsRepaired(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "purgedeletes"})
	put(t, b, "head", "1") // keeps the first sequence at 1
	put(t, b, "gone", "1")
	var cursor uint64
	for i := range 8 {
		cursor = put(t, b, keyN("x", i), "1")
	}
	store := memstore.New()
	n := runNode(t, b, nodeConfig{store: store, lister: b})
	n.waitApplied(t, cursor, 10*time.Second)
	if _, err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Delete(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}
	last := put(t, b, "y", "1")
	if err := e.rawKV(t, "purgedeletes").PurgeDeletes(t.Context(), jetstream.DeleteMarkersOlderThan(-1)); err != nil {
		t.Fatal(err)
	}
	if first := e.streamInfo(t, "purgedeletes").State.FirstSeq; first != 1 {
		t.Fatalf("premise: first sequence %d after PurgeDeletes, want 1", first)
	}
	// The server half: the resume silently skips the delete.
	w := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(cursor))
	if u := w.next(t); u.Key != "y" || rev(u) != last {
		t.Fatalf("resume delivered %s %s@%d first, want y@%d (the delete of gone is gone)", u.Op, u.Key, rev(u), last)
	}
	w.none(t, 300*time.Millisecond)
	w.stop()

	n = runNode(t, b, nodeConfig{store: store, lister: b})
	n.waitApplied(t, last, 10*time.Second)
	if _, ok := store.Values()["gone"]; !ok {
		t.Fatal("premise: the resumed fold dropped gone without help")
	}
	auditAndRepair(t, b, store, n, "stale gone")
}

// auditAndRepair audits store against b, requires exactly the findings
// want ("class key"), repairs them through the running node, and requires
// the fold to equal the bucket and a second audit to find nothing.
func auditAndRepair(t *testing.T, b *natskv.Bucket, store *memstore.Store, n *node, want ...string) {
	t.Helper()
	a := &audit.Auditor{Bucket: b, Fold: store, Logger: quietLogger()}
	rep, err := a.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range rep.Divergences {
		got = append(got, d.Class.String()+" "+d.Key)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit found %q, want %q", got, want)
	}
	cursor := store.Cursor()
	info, err := n.f.Repair(t.Context(), b, rep.Keys())
	if err != nil || info.Folded != len(want) {
		t.Fatalf("Repair = %+v, %v", info, err)
	}
	if store.Cursor() != cursor {
		t.Fatalf("the repair moved the cursor from %s to %s", cursor, store.Cursor())
	}
	wantFold(t, store, bucketSnapshot(t, b))
	if rep, err := a.Run(t.Context()); err != nil || !rep.Equal() {
		t.Fatalf("audit after the repair: %+v, %v", rep.Divergences, err)
	}
}

// waitRunning waits until f's Run serves requests.
func waitRunning(t *testing.T, f *slipstream.Follower) {
	t.Helper()
	poll.True(t, 5*time.Second, "follower running", func() bool {
		_, err := f.Repair(t.Context(), nil, nil)
		return err == nil
	})
}

// bucketSnapshot returns the bucket's live keys and values.
func bucketSnapshot(t *testing.T, b *natskv.Bucket) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := b.Scan(t.Context(), "", func(e slipstream.Entry) error {
		m[e.Key] = string(e.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestServerPinsPerKeyTTLExpiry: a TTL expiry writes a marker that a
// resumed watch sees as a purge, until the marker's own TTL removes it;
// after that a resume misses the delete, without any error, and a follower
// keeps the key until the audit finds it stale and the repair drops it.
func TestServerPinsPerKeyTTLExpiry(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	b := e.open(t, natskv.Config{Bucket: "ttl", AllowTTL: true, LimitMarkerTTL: time.Second})
	put(t, b, "head", "1")
	cursor, err := b.PutTTL(ctx, "k", []byte("short-lived"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "TTL expiry writes a marker", func() bool {
		info := e.streamInfo(t, "ttl")
		return info.State.LastSeq > cursor
	})
	if _, ok, _ := b.Get(ctx, "k"); ok {
		t.Fatal("expired key still readable")
	}
	w := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(cursor))
	if u := w.next(t); u.Key != "k" || u.Op != slipstream.OpPurge || rev(u) != cursor+1 {
		t.Fatalf("resume after the TTL put delivered %s %s@%d, want purge k@%d", u.Op, u.Key, rev(u), cursor+1)
	}
	w.stop()
	if _, err := b.Create(ctx, "k", []byte("again")); err != nil {
		t.Fatalf("Create over a TTL marker: %v", err)
	}
	if keys, err := b.Keys(ctx, ""); err != nil || len(keys) != 2 {
		t.Fatalf("Keys after re-create = %v, %v", keys, err)
	}

	// Once the marker (and everything after the cursor) is gone, a resume
	// from the same cursor delivers nothing and reports nothing.
	b2 := e.open(t, natskv.Config{Bucket: "ttl2", AllowTTL: true, LimitMarkerTTL: time.Second})
	put(t, b2, "head", "1")
	store := memstore.New()
	n := runNode(t, b2, nodeConfig{store: store, lister: b2})
	cursor2, err := b2.PutTTL(ctx, "k", []byte("short-lived"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n.waitApplied(t, cursor2, 10*time.Second)
	if _, err := n.stop(); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 15*time.Second, "TTL marker expires", func() bool {
		info := e.streamInfo(t, "ttl2")
		return info.State.LastSeq > cursor2 && info.State.Msgs == 1
	})
	if first := e.streamInfo(t, "ttl2").State.FirstSeq; first != 1 {
		t.Fatalf("premise: first sequence %d, want 1 (head kept)", first)
	}
	w2 := startWatch(t, b2, slipstream.AllKeys(), slipstream.CursorFromUint64(cursor2))
	w2.none(t, 300*time.Millisecond)
	w2.stop()

	n = runNode(t, b2, nodeConfig{store: store, lister: b2})
	waitRunning(t, n.f)
	if _, ok := store.Values()["k"]; !ok {
		t.Fatal("premise: the resumed fold dropped k without help")
	}
	auditAndRepair(t, b2, store, n, "stale k")
}

func TestPutTTLUnsupported(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "nottl"})
	put(t, b, "k", "1")
	_, err := b.PutTTL(t.Context(), "k", []byte("2"), time.Minute)
	if !errors.Is(err, slipstream.ErrUnsupported) || !errors.Is(err, natskv.ErrTTLDisabled) {
		t.Fatalf("PutTTL on a bucket without TTLs = %v, want ErrTTLDisabled (ErrUnsupported)", err)
	}
	if _, err := b.PutTTL(t.Context(), "k", []byte("2"), 10*time.Millisecond); !errors.Is(err, slipstream.ErrOperationFailed) {
		t.Fatalf("PutTTL below 1s = %v", err)
	}
	if got, _, _ := b.Get(t.Context(), "k"); string(got.Value) != "1" {
		t.Fatalf("value after refused PutTTL = %q, want 1", got.Value)
	}
	if st, _ := b.Status(t.Context()); st.LastSeq != 1 {
		t.Fatalf("refused PutTTL wrote: last sequence %d", st.LastSeq)
	}
}

// TestServerPinsRecreatedBucketCursorAhead: after the bucket is deleted and
// recreated, an old cursor is ahead of the new stream and the server waits
// silently; natskv reports the cursor expired. Memory storage avoids the
// embedded server's occasional resurrection of a file-backed bucket
// recreated at once (package documentation).
func TestServerPinsRecreatedBucketCursorAhead(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	cfg := natskv.Config{Bucket: "recreated", Storage: natskv.MemoryStorage}
	b := e.open(t, cfg)
	var cursor uint64
	for i := range 10 {
		cursor = put(t, b, keyN("old", i), "1")
	}
	if err := e.js.DeleteKeyValue(ctx, "recreated"); err != nil {
		t.Fatal(err)
	}
	b = e.open(t, cfg)
	for i := range 5 {
		put(t, b, keyN("new", i), "1")
	}
	if last := e.streamInfo(t, "recreated").State.LastSeq; last != 5 {
		t.Fatalf("premise: recreated stream's last sequence %d, want 5", last)
	}
	// Raw half: the resume delivers nothing, its done marker arrives at
	// once, and new keys stay invisible until the sequence passes the old
	// cursor.
	w, err := e.rawKV(t, "recreated").WatchAll(ctx, jetstream.ResumeFromRevision(cursor+1))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if en := firstEntry(t, w); en != nil {
		t.Fatalf("raw resume past the end delivered %s@%d", en.Key(), en.Revision())
	}
	for i := 5; i < 8; i++ {
		put(t, b, keyN("new", i), "1")
	}
	select {
	case en := <-w.Updates():
		t.Fatalf("raw resume past the end delivered %v", en)
	case <-time.After(300 * time.Millisecond):
	}
	// natskv half: the cursor is ahead of the stream → expired.
	ours := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(cursor))
	err = ours.waitResult(t, 2*time.Second)
	if !errors.Is(err, slipstream.ErrCursorAhead) || !errors.Is(err, slipstream.ErrCursorExpired) {
		t.Fatalf("Watch after a cursor ahead of the stream = %v, want ErrCursorAhead (an ErrCursorExpired)", err)
	}
}
