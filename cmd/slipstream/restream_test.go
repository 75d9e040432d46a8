package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// TestMirrorRestartOnRecreatedBucketResyncs: a fold bound to the bucket's
// stream S1 with cursor 10 (its binding records S1, as a mirror leaves it
// after a sync, or after a crash between a resync's synthetic deletes and
// its first flush on the new stream); the bucket is then recreated (S2)
// with more revisions than the cursor, keys the fold lacks at revisions
// ≤ 10 among them. The restarted mirror must not resume after 10 on S2
// (skipping new.0…new.9): it resyncs, its fold equals the bucket with no
// audit repair (the audit after the catch-up finds it equal), and the
// binding then records S2.
func TestMirrorRestartOnRecreatedBucketResyncs(t *testing.T) {
	cfg := natskv.Config{Bucket: "recreated_restart", Storage: natskv.MemoryStorage}
	e := newAuditEnv(t, cfg)
	putAll(t, e.b, keysN("old.", 0, 10), "1")
	if c := e.sync(t); c != 10 {
		t.Fatalf("cursor %d, want 10", c)
	}
	st1, err := e.b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if b, err := readBinding(e.fold); err != nil || b == nil || !b.StreamCreated.Equal(st1.Created) {
		t.Fatalf("binding after the sync: %+v %v, want stream_created %v", b, err, st1.Created)
	}

	if err := e.js.DeleteKeyValue(t.Context(), cfg.Bucket); err != nil {
		t.Fatal(err)
	}
	e.b = e.reopen()
	putAll(t, e.b, keysN("new.", 0, 14), "2") // revisions 1…14: past the cursor 10
	st2, err := e.b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st2.Created.Equal(st1.Created) {
		t.Fatalf("the recreated stream has the old creation time %v", st2.Created)
	}

	m := startProc(t, "mirror", "-bucket", cfg.Bucket, "-fold", e.fold, "-nats", e.srv.URL(),
		"-http", "127.0.0.1:0", "-batch-window", "1ms")
	base := m.httpBase(t)
	var st statusDoc
	poll.Until(t, 60*time.Second, func() (bool, string) {
		var ok bool
		st, ok = getStatus(base)
		return ok && st.State == stateSynced && st.Audits >= 1 && st.LastAudit != nil,
			fmt.Sprintf("status %+v (last audit %+v)", st, st.LastAudit)
	})
	la := st.LastAudit
	if st.Resyncs < 1 || !st.Verified || !la.Equal || la.Repaired != 0 || la.Missed != 0 || la.Stale != 0 {
		t.Fatalf("after the restart: %+v (last audit %+v), want a resync and an audit finding the fold equal, nothing repaired\n%s",
			st, la, m.stderr.String())
	}
	if d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), e.b)); d != "" {
		t.Fatalf("fold differs from the bucket: %s", d)
	}
	m.stop(t)
	if b, err := readBinding(e.fold); err != nil || b == nil || !b.StreamCreated.Equal(st2.Created) {
		t.Fatalf("binding after the resync: %+v %v, want stream_created %v", b, err, st2.Created)
	}
}
