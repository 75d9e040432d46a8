package slipstream_test

import "testing"

// Model of cursor authority under store failures and crashes (docs/LOOP.md,
// "Model checks"). Claim: the store's persisted
// cursor never advances past data that is not in the store — a violation is
// a restart-surviving hole, i.e. silent data loss.
//
// The model abstracts Follower's flush (follower.go, loop.flush): a
// successful Store.Apply commits the whole re-queued range at the applied
// cursor; a failed one leaves the range queued at the front of the raw batch
// while the in-memory cursor still advances. Flush boundaries interleave
// freely, a superset of the window/max/shutdown/export triggers. Unit test
// TestTransientStoreFailureNeverLeavesACursorGap pins the same rule in code.

const appliedMax = 5 // revisions 1..appliedMax

type appliedVariant int

const (
	appliedShipped appliedVariant = iota
	// dropFailedBatch forgets a batch whose store write failed (the shipped
	// bug until the re-queue fix).
	dropFailedBatch
	// resumeFromMemApplied restarts from the in-memory (OnApplied) cursor
	// instead of the store's own.
	resumeFromMemApplied
)

type appliedState struct {
	Head        uint8 // bucket high-water revision
	Delivered   uint8 // handed to the loop
	StoreCursor uint8 // persisted
	QFrom       uint8 // the loop holds (QFrom, Delivered] for the store
	AppliedMem  uint8 // in-memory applied cursor
	Holes       bool  // latched: a cursor was persisted over missing data
}

func appliedActions(v appliedVariant) []action[appliedState] {
	return []action[appliedState]{
		{"Churn", func(s appliedState) bool { return s.Head < appliedMax }, func(s appliedState) appliedState {
			s.Head++
			return s
		}},
		{"Deliver", func(s appliedState) bool { return s.Delivered < s.Head }, func(s appliedState) appliedState {
			s.Delivered++
			return s
		}},
		{"FlushOk", func(s appliedState) bool { return s.Delivered > s.QFrom }, func(s appliedState) appliedState {
			// Atomic commit of (QFrom, Delivered] at cursor Delivered.
			if s.QFrom > s.StoreCursor {
				s.Holes = true
			}
			s.StoreCursor, s.QFrom, s.AppliedMem = s.Delivered, s.Delivered, s.Delivered
			return s
		}},
		{"FlushFail", func(s appliedState) bool { return s.Delivered > s.QFrom }, func(s appliedState) appliedState {
			s.AppliedMem = s.Delivered
			if v == dropFailedBatch {
				s.QFrom = s.Delivered
			} // shipped: the failed range stays queued
			return s
		}},
		{"CrashRestart", func(appliedState) bool { return true }, func(s appliedState) appliedState {
			resume := s.StoreCursor
			if v == resumeFromMemApplied {
				resume = s.AppliedMem
			}
			if resume > s.StoreCursor {
				s.Holes = true
			}
			s.Delivered = resume
			s.QFrom = max(resume, s.StoreCursor)
			s.AppliedMem = resume
			return s
		}},
	}
}

func noHoles(s appliedState, _ bool) bool { return !s.Holes }

func TestModelAppliedShippedFlushSemanticsPreserveCursorAuthority(t *testing.T) {
	g := explore(appliedState{}, appliedActions(appliedShipped))
	g.wantStates(t, "model_applied shipped", 126)
	g.always(t, "contents complete up to the cursor", noHoles)
	g.always(t, "re-queued range anchored at the store cursor", func(s appliedState, _ bool) bool {
		return s.QFrom == s.StoreCursor
	})
	g.always(t, "quiescence means the store reached the head", func(s appliedState, _ bool) bool {
		quiet := s.Head == appliedMax && s.Delivered == s.Head && s.QFrom == s.Delivered
		return !quiet || s.StoreCursor == s.Head
	})
	g.sometimes(t, "a commit at the applied cursor", func(s appliedState, _ bool) bool {
		return s.StoreCursor > 0 && s.AppliedMem == s.StoreCursor && s.Head > 1
	})
	tr := g.sometimes(t, "the in-memory cursor runs ahead of the store", func(s appliedState, _ bool) bool {
		return s.AppliedMem > s.StoreCursor
	})
	wantTrace(t, "in-memory cursor ahead", tr, "Churn", "Deliver", "FlushFail")

	// The stronger witness the model asks for (docs/LOOP.md, model checks): a failed flush
	// followed — without a crash in between — by a cumulative commit that
	// lands the failed range. Phase 1: a failed range is queued; phase 2:
	// it was committed by a later FlushOk.
	const failed, committed = 1, 2
	og := explore(observed[appliedState]{}, observe(appliedActions(appliedShipped), func(p uint8, act string) uint8 {
		switch {
		case act == "FlushFail" && p != committed:
			return failed
		case act == "FlushOk" && p == failed:
			return committed
		case act == "CrashRestart" && p == failed:
			return 0 // the queued range died with the process
		}
		return p
	}))
	t.Logf("model_applied shipped with the FlushFail→FlushOk observer: %d reachable states", len(og.states))
	og.always(t, "contents complete up to the cursor", func(o observed[appliedState], _ bool) bool { return !o.S.Holes })
	tr = og.sometimes(t, "a failed flush then a cumulative commit", func(o observed[appliedState], _ bool) bool {
		return o.Phase == committed && o.S.StoreCursor > 0 && o.S.AppliedMem == o.S.StoreCursor
	})
	if len(tr) < 4 {
		t.Errorf("cumulative-commit witness %v is too short to contain a failure and a commit", tr)
	}
}

func TestModelAppliedDroppingFailedBatchesCorruptsTheFold(t *testing.T) {
	g := explore(appliedState{}, appliedActions(dropFailedBatch))
	g.wantStates(t, "model_applied DropFailedBatch", 161)
	tr := g.counterexample(t, "contents complete up to the cursor", noHoles)
	wantTrace(t, "DropFailedBatch", tr, "Churn", "Churn", "Deliver", "FlushFail", "Deliver", "FlushOk")
}

func TestModelAppliedResumingFromMemoryCursorCorruptsTheFold(t *testing.T) {
	g := explore(appliedState{}, appliedActions(resumeFromMemApplied))
	g.wantStates(t, "model_applied ResumeFromMemApplied", 287)
	tr := g.counterexample(t, "contents complete up to the cursor", noHoles)
	wantTrace(t, "ResumeFromMemApplied", tr, "Churn", "Deliver", "FlushFail", "CrashRestart")
}
