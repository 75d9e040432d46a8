package main

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// runMirror runs m until the returned stop is called.
func runMirror(t *testing.T, m *mirror) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- m.run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("run: %v", err)
		}
	}
}

// The mirror audits after each resume has caught up (repairing through the
// follower what no cursor check saw) and every auditEvery; verified is
// reset by each resume and set by the audit that follows it.
func TestMirror_AuditsAfterResumeAndPeriodically(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		m, fb := newSupervised(t, func(int) error { return nil })
		m.audits, m.auditEvery = true, time.Hour
		for _, k := range []string{"a", "b", "gone"} {
			fb.Put(ctx, k, []byte("v"))
		}
		stop := runMirror(t, m)
		time.Sleep(time.Second)
		synctest.Wait()
		st := m.t.audit.status()
		if !st.Verified || st.Audits != 1 || st.LastAudit == nil || !st.LastAudit.Equal || st.LastAudit.Checked != 3 {
			t.Fatalf("after the first sync: %+v (last %+v), want one equal audit of 3 keys, verified", st, st.LastAudit)
		}
		stop()

		// Down: gone is deleted and its marker purged (no resume can see
		// it), and a key is added (the resume delivers it).
		fb.Delete(ctx, "gone")
		fb.PurgeDeletes()
		fb.Put(ctx, "c", []byte("v"))
		stop = runMirror(t, m)
		time.Sleep(time.Second)
		synctest.Wait()
		st = m.t.audit.status()
		if !st.Verified || st.Audits != 2 || st.LastAudit.Stale != 1 || st.LastAudit.Repaired != 1 || st.LastAudit.Error != "" {
			t.Fatalf("after the resume: %+v (last %+v), want the stale key repaired, verified", st, st.LastAudit)
		}
		if _, ok, _ := m.fold.Get("gone"); ok {
			t.Fatal("the audit's repair left gone in the fold")
		}
		if got := m.t.audit.divergences[0].Load(); got != 1 {
			t.Fatalf("stale divergences counted %d, want 1", got)
		}

		time.Sleep(time.Hour)
		synctest.Wait()
		if st := m.t.audit.status(); st.Audits != 3 || !st.LastAudit.Equal {
			t.Fatalf("after an hour: %+v, want a third, periodic audit", st)
		}
		stop()
		// A new run is not verified until its own audit.
		m.t.runStarting(m.fold.Cursor())
		if m.t.audit.status().Verified {
			t.Fatal("still verified after a resume")
		}
	})
}

// An audit that started before a follower restart does not mark the new
// run verified.
func TestAuditState_VerifiedOnlyForTheSameRun(t *testing.T) {
	var a auditState
	a.init()
	a.resumed()
	gen := a.generation()
	a.resumed() // the follower restarted during the audit
	a.done(gen, auditSummary{Equal: true}, true)
	if a.status().Verified {
		t.Fatal("an audit of the previous run verified the new one")
	}
	a.done(a.generation(), auditSummary{Equal: true}, true)
	if !a.status().Verified || a.status().Audits != 2 {
		t.Fatalf("status %+v", a.status())
	}
}

// A catch-up the audit loop has not taken yet when the follower restarts
// is dropped: the new run is audited when it catches up itself.
func TestAuditState_RestartDropsAPendingCatchUp(t *testing.T) {
	var a auditState
	a.init()
	a.resumed()
	a.caughtUpNow()
	a.resumed() // restarted before the audit loop took it
	select {
	case <-a.caughtUp:
		t.Fatal("the previous run's catch-up would audit the new run mid-resume")
	default:
	}
	a.caughtUpNow()
	select {
	case <-a.caughtUp:
	default:
		t.Fatal("the new run's catch-up was lost")
	}
}
