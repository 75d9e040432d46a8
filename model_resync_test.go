package slipstream_test

import "testing"

// Model of the cursor-expired resync ack barrier (docs/LOOP.md, "Model
// checks"). Claim: the synthetic deletes are
// folded strictly before the first re-list put, so a key deleted and
// re-created during the gap converges.
//
// One key K, held by the fold from before the gap and deleted during it
// (its marker evicted), may be re-created at any time, before or after the
// live listing. In follower.go the barrier is resyncStaleKeys waiting for
// the loop's ack (closed by loop.resync after the synthetic-delete flush)
// before the fallback watch starts; TestResyncAckBarrier pins it in code.

type resyncPhase uint8

const (
	phaseExpired resyncPhase = iota
	phaseListed
	phaseFallback
)

type resyncState struct {
	Phase           resyncPhase
	BucketK         bool // truth
	KInList         bool // what the live listing captured
	FoldK           bool // the fold's view
	DeletesFolded   bool // synthetic deletes folded (and acked)
	RelistPutFolded bool
}

func resyncActions(ackBarrier bool) []action[resyncState] {
	return []action[resyncState]{
		{"ListLive", func(s resyncState) bool { return s.Phase == phaseExpired }, func(s resyncState) resyncState {
			s.KInList = s.BucketK
			s.Phase = phaseListed
			return s
		}},
		{"RecreateK", func(s resyncState) bool { return !s.BucketK }, func(s resyncState) resyncState {
			s.BucketK = true
			return s
		}},
		{"FoldSyntheticDeletes", func(s resyncState) bool { return s.Phase != phaseExpired && !s.DeletesFolded }, func(s resyncState) resyncState {
			if !s.KInList {
				s.FoldK = false
			}
			s.DeletesFolded = true
			return s
		}},
		{"StartFallback", func(s resyncState) bool {
			return s.Phase == phaseListed && (s.DeletesFolded || !ackBarrier)
		}, func(s resyncState) resyncState {
			s.Phase = phaseFallback
			return s
		}},
		{"DeliverRelistPut", func(s resyncState) bool {
			return s.Phase == phaseFallback && s.BucketK && !s.RelistPutFolded
		}, func(s resyncState) resyncState {
			s.FoldK = true
			s.RelistPutFolded = true
			return s
		}},
	}
}

var resyncInit = resyncState{Phase: phaseExpired, FoldK: true}

func resyncConverged(s resyncState, terminal bool) bool { return !terminal || s.FoldK == s.BucketK }

func TestModelResyncAckBarrierMakesResyncOrderingConverge(t *testing.T) {
	g := explore(resyncInit, resyncActions(true))
	g.wantStates(t, "model_resync_order barrier", 13)
	g.always(t, "every terminal state is converged", resyncConverged)
	g.sometimes(t, "recreate after listing converges via delete-then-put", func(s resyncState, _ bool) bool {
		return !s.KInList && s.RelistPutFolded && s.FoldK && s.BucketK
	})
	g.sometimes(t, "recreate before listing converges via the listing", func(s resyncState, _ bool) bool {
		return s.KInList && s.FoldK && s.BucketK
	})
	g.sometimes(t, "a never-recreated key is reconciled away", func(s resyncState, _ bool) bool {
		return !s.FoldK && !s.BucketK && s.DeletesFolded
	})
}

func TestModelResyncWithoutAckBarrierRecreatedKeysAreLost(t *testing.T) {
	g := explore(resyncInit, resyncActions(false))
	g.wantStates(t, "model_resync_order NoAckBarrier", 19)
	tr := g.counterexample(t, "every terminal state is converged", func(s resyncState, terminal bool) bool {
		return !(terminal && s.BucketK && !s.FoldK) // the synthetic delete erased a re-created key
	})
	wantTrace(t, "NoAckBarrier", tr, "ListLive", "RecreateK", "StartFallback", "DeliverRelistPut", "FoldSyntheticDeletes")
}
