package protocol

// PointerState is what a publisher observed at the published pointer
// before a conditional write: absent, present with a known rank, or present
// but unparseable (corrupt, or a schema this build cannot read).
type PointerState struct {
	// Present is false when there is no pointer object.
	Present bool
	// RankKnown is true when the pointer parsed and Rank is its cursor's
	// rank.
	RankKnown bool
	// Rank is the pointer's cursor rank, valid when RankKnown.
	Rank uint64
}

// Absent is the state of a key that has no pointer yet.
var Absent = PointerState{}

// PointerAt returns the state of a pointer whose cursor has rank r.
func PointerAt(r uint64) PointerState { return PointerState{Present: true, RankKnown: true, Rank: r} }

// CorruptPointer returns the state of a pointer whose rank cannot be read.
func CorruptPointer() PointerState { return PointerState{Present: true} }

// PointerPublishAllowed reports whether an artifact of rank candidate may
// replace the observed pointer: always over an absent or unreadable pointer
// (one bad write must not wedge publishing), and over a readable one when
// candidate is at least its rank (equal ranks republish). Because every
// writer applies this guard with a conditional write, the pointer's rank
// never decreases, so a refusal observed once stays true.
func PointerPublishAllowed(current PointerState, candidate uint64) bool {
	if !current.Present || !current.RankKnown {
		return true
	}
	return candidate >= current.Rank
}

// PayloadPrunable reports whether a payload object may be deleted: it is not
// the pointer's target, it is older than the grace period, its rank is known
// (payloadRank non-nil; objects whose name does not parse are not ours), and
// its rank is strictly below the pointer's. Strictly below, with a pointer
// that never goes backwards, means no pointer can ever name a deleted
// payload, whatever the timing.
func PayloadPrunable(payloadRank *uint64, pointerRank uint64, isPointerTarget, agedOut bool) bool {
	return !isPointerTarget && agedOut && payloadRank != nil && *payloadRank < pointerRank
}
