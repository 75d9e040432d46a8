package protocol

import "math"

// ResumeWindowOK reports whether a resume that reads revision+1 onward is
// sound against a stream whose first retained sequence is first: no message
// after the cursor may have been evicted from the head. It saturates at
// MaxUint64 (always true there; [ResumeStart] refuses that revision).
func ResumeWindowOK(revision, first uint64) bool {
	if revision == math.MaxUint64 {
		return true
	}
	return first <= revision+1
}

// ResumeStart returns the first sequence a resume after revision reads:
// revision+1, or false at MaxUint64, where wrapping to 0 would silently turn
// the resume into a full replay.
func ResumeStart(revision uint64) (uint64, bool) {
	if revision == math.MaxUint64 {
		return 0, false
	}
	return revision + 1, true
}
