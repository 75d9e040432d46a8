package audit_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/audit"
	"github.com/slipstream-kv/slipstream/memkv"
)

// followUntil runs a Follower from kv into st until its cursor reaches the
// bucket's last revision, then stops it.
func followUntil(t *testing.T, kv *memkv.KV, st slipstream.Store) {
	t.Helper()
	target := kv.LastRevision()
	applied := make(chan uint64, 1024)
	f := slipstream.NewFollower(kv, func(context.Context, []slipstream.Update) error { return nil })
	f.Store, f.Lister, f.Resume, f.Logger = st, kv, st.Cursor(), quiet()
	f.OnApplied = func(c slipstream.Cursor) { applied <- c.Rank() }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := f.Run(ctx)
		done <- err
	}()
	deadline := time.After(10 * time.Second)
	for st.Cursor().Rank() < target {
		select {
		case <-applied:
		case err := <-done:
			t.Fatalf("follower stopped: %v", err)
		case <-deadline:
			t.Fatalf("follower at %s, want %d", st.Cursor(), target)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func foldState(t *testing.T, st slipstream.Store) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := st.ForEachInRange("", func(e slipstream.Entry) error {
		m[e.Key] = string(e.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

func bucketState(t *testing.T, kv *memkv.KV) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := kv.Scan(t.Context(), "", func(e slipstream.Entry) error {
		m[e.Key] = string(e.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

func openFold(t *testing.T, dir string) *applog.Store {
	t.Helper()
	st, err := applog.Open(dir, &applog.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func run(t *testing.T, b audit.Bucket, st audit.Fold) audit.Report {
	t.Helper()
	rep, err := (&audit.Auditor{Bucket: b, Fold: st, Logger: quiet()}).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestPurgedDeleteMarkerIsFoundAndRepaired is the purged-marker hole on the
// in-memory bucket: a resume cannot see the delete, the audit reports the
// key stale, and the repair drops it without moving the cursor.
func TestPurgedDeleteMarkerIsFoundAndRepaired(t *testing.T) {
	ctx := t.Context()
	kv := memkv.New()
	for _, k := range []string{"a", "b", "gone", "changed"} {
		mustPut(t, kv, k, "1")
	}
	st := openFold(t, t.TempDir())
	followUntil(t, kv, st)
	if rep := run(t, kv, st); !rep.Equal() || rep.Checked != 4 {
		t.Fatalf("a fold the follower built audits %+v, want equal over 4 keys", rep)
	}
	cursor := st.Cursor()

	// The follower is down: gone is deleted and the marker purged, changed
	// is updated (in flight: the resume delivers it).
	if _, err := kv.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	kv.PurgeDeletes()
	mustPut(t, kv, "changed", "2")

	rep := run(t, kv, st)
	if got, want := render(rep.Divergences), []string{"stale gone 3→0"}; !slices.Equal(got, want) || rep.InFlight != 1 {
		t.Fatalf("audit: %q (in flight %d), want %q and 1 in flight", got, rep.InFlight, want)
	}
	info, err := audit.RepairStore(ctx, st, kv, rep)
	if err != nil {
		t.Fatal(err)
	}
	if info.Keys != 1 || info.Folded != 1 || st.Cursor() != cursor {
		t.Fatalf("repair %+v, cursor %s → %s; want one key folded, the cursor unmoved", info, cursor, st.Cursor())
	}
	if _, ok, _ := st.Get("gone"); ok {
		t.Fatal("gone is still in the fold after the repair")
	}
	followUntil(t, kv, st)
	if got, want := foldState(t, st), bucketState(t, kv); !maps.Equal(got, want) {
		t.Fatalf("fold %v, bucket %v", got, want)
	}
	if rep := run(t, kv, st); !rep.Equal() || rep.InFlight != 0 {
		t.Fatalf("after repair and resume: %+v", rep)
	}
}

// TestRepairStoreCursorAhead: a fold whose cursor is past the bucket's last
// revision (a recreated bucket) is repaired key by key and its cursor
// rewound to none, so the next follower re-lists.
func TestRepairStoreCursorAhead(t *testing.T) {
	ctx := t.Context()
	old := memkv.New()
	for _, k := range []string{"old.a", "old.b", "same", "x", "y", "z"} {
		mustPut(t, old, k, "old")
	}
	dir := t.TempDir()
	st := openFold(t, dir)
	followUntil(t, old, st)

	kv := memkv.New() // the recreated bucket
	mustPut(t, kv, "same", "new")
	mustPut(t, kv, "new.a", "new")
	rep := run(t, kv, st)
	want := []string{"backwards  6→2", "stale old.a 1→0", "stale old.b 2→0", "missed new.a 0→2", "backwards same 3→1", "stale x 4→0", "stale y 5→0", "stale z 6→0"}
	if got := render(rep.Divergences); !sameSet(got, want) || !rep.CursorAhead() {
		t.Fatalf("audit: %q, want %q", got, want)
	}
	if _, err := audit.RepairStore(ctx, st, kv, rep); err != nil {
		t.Fatal(err)
	}
	if !st.Cursor().IsNone() {
		t.Fatalf("cursor %s after repairing a fold ahead of its bucket, want none", st.Cursor())
	}
	if got, want := foldState(t, st), bucketState(t, kv); !maps.Equal(got, want) {
		t.Fatalf("fold %v, bucket %v", got, want)
	}
	followUntil(t, kv, st)
	if rep := run(t, kv, st); !rep.Equal() {
		t.Fatalf("after the re-list: %q", render(rep.Divergences))
	}
}

type failingReader struct{ err error }

func (r failingReader) LastRecord(context.Context, string) (slipstream.Update, bool, error) {
	return slipstream.Update{}, false, r.err
}

func TestRepairStoreReadError(t *testing.T) {
	st := newFold(t, 10, map[string]uint64{"a": 3})
	rep := audit.Report{Divergences: []audit.Divergence{{Class: audit.Stale, Key: "a", FoldRevision: 3}}}
	boom := errors.New("boom")
	if _, err := audit.RepairStore(t.Context(), st, failingReader{boom}, rep); !errors.Is(err, boom) {
		t.Fatalf("RepairStore = %v, want the read error", err)
	}
	if _, ok, _ := st.Get("a"); !ok || st.Cursor().Rank() != 10 {
		t.Fatal("a failed repair changed the fold")
	}
}

func mustPut(t *testing.T, kv *memkv.KV, key, value string) uint64 {
	t.Helper()
	rev, err := kv.Put(t.Context(), key, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
