package slipstream_test

import (
	"testing"

	"github.com/slipstream-kv/slipstream/protocol"
)

// Model of the live retention floor guard (docs/LOOP.md, "Model checks").
// Claim: with the guard every maximal run ends
// with the fold equal to the bucket; without it permanent silent divergence
// is reachable. In both, divergence is only ever "stale" (no phantom
// deletes). The guard is protocol.ResumeWindowOK — the function natskv and
// memkv call — so a change to it is re-verified here.
//
// All-scope watch; revisions 1..liveMax; a sentinel key present at the
// start may be deleted once.

const liveMax = 5

type liveState struct {
	Head       uint8
	Floor      uint8 // revisions ≤ Floor are evicted; first sequence = Floor+1
	DeleteRev  uint8 // revision of the sentinel's delete marker; 0 = none
	Frontier   uint8 // max revision handed to the fold
	FoldHasKey bool
	Tripped    bool
}

func (s liveState) bucketHasKey() bool { return s.DeleteRev == 0 }

// guardFunc is the resume-window guard under test: protocol.ResumeWindowOK
// in production; nil means unguarded.
type guardFunc func(revision, first uint64) bool

func liveActions(guard guardFunc) []action[liveState] {
	guarded := guard != nil
	windowOK := func(s liveState) bool { return guard(uint64(s.Frontier), uint64(s.Floor)+1) }
	acts := []action[liveState]{
		{"Churn", func(s liveState) bool { return s.Head < liveMax }, func(s liveState) liveState {
			s.Head++ // a put to another key
			return s
		}},
		{"DeleteKey", func(s liveState) bool { return s.Head < liveMax && s.DeleteRev == 0 }, func(s liveState) liveState {
			s.Head++
			s.DeleteRev = s.Head
			return s
		}},
		{"Compact", func(s liveState) bool { return s.Floor < s.Head }, func(s liveState) liveState {
			s.Floor++ // evict the oldest retained revision
			return s
		}},
		{"Deliver", func(s liveState) bool {
			// Something retained lies beyond the frontier; guarded, a gapped
			// delivery may not fold (the in-band check).
			return max(s.Frontier, s.Floor) < s.Head && (!guarded || windowOK(s))
		}, func(s liveState) liveState {
			next := max(s.Frontier, s.Floor) + 1 // evicted revisions are skipped silently
			s.Frontier = next
			if s.DeleteRev == next {
				s.FoldHasKey = false
			}
			return s
		}},
	}
	if guarded {
		// Fail-stop → restart → resume → ErrCursorExpired → resync,
		// collapsed to its verified outcome.
		acts = append(acts, action[liveState]{"GuardRepair", func(s liveState) bool { return !windowOK(s) }, func(s liveState) liveState {
			s.Tripped = true
			s.FoldHasKey = s.DeleteRev == 0
			s.Frontier = s.Floor
			return s
		}})
	}
	return acts
}

var liveInit = liveState{FoldHasKey: true}

func noPhantomDeletes(s liveState, _ bool) bool { return s.FoldHasKey || !s.bucketHasKey() }

func markerDeliveredNormally(s liveState, _ bool) bool { return !s.FoldHasKey && !s.bucketHasKey() }

func TestModelLiveGuardedWatchAlwaysConverges(t *testing.T) {
	g := explore(liveInit, liveActions(protocol.ResumeWindowOK))
	g.wantStates(t, "model_live_watch guarded", 806)
	g.always(t, "no phantom deletes", noPhantomDeletes)
	g.always(t, "every terminal state is converged", func(s liveState, terminal bool) bool {
		return !terminal || s.FoldHasKey == s.bucketHasKey()
	})
	tr := g.sometimes(t, "marker delivered normally", markerDeliveredNormally)
	wantTrace(t, "marker delivered", tr, "DeleteKey", "Deliver")
	tr = g.sometimes(t, "tripped and converged", func(s liveState, _ bool) bool {
		return s.Tripped && s.FoldHasKey == s.bucketHasKey()
	})
	wantTrace(t, "guard repair", tr, "Churn", "Compact", "GuardRepair")
}

func TestModelLiveUnguardedWatchDivergesPermanently(t *testing.T) {
	g := explore(liveInit, liveActions(nil))
	g.wantStates(t, "model_live_watch unguarded", 511)
	g.always(t, "no phantom deletes", noPhantomDeletes)
	g.sometimes(t, "marker delivered normally", markerDeliveredNormally)
	tr := g.counterexample(t, "every terminal state is converged", func(s liveState, terminal bool) bool {
		return !(terminal && s.FoldHasKey && !s.bucketHasKey())
	})
	wantTrace(t, "unguarded divergence", tr,
		"Churn", "Churn", "Churn", "Churn", "DeleteKey", "Compact", "Compact", "Compact", "Compact", "Compact")
}

// A guard off by one (accepting a first sequence of revision+2, i.e. one
// evicted revision past the cursor) must be caught by the same model.
func TestModelLiveOffByOneGuardDiverges(t *testing.T) {
	offByOne := func(revision, first uint64) bool { return first <= revision+2 }
	g := explore(liveInit, liveActions(offByOne))
	t.Logf("model_live_watch off-by-one guard: %d reachable states", len(g.states))
	g.counterexample(t, "every terminal state is converged", func(s liveState, terminal bool) bool {
		return !terminal || s.FoldHasKey == s.bucketHasKey()
	})
}
