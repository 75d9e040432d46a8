package protocol

import (
	"math"
	"testing"
)

func TestResumeGuardBoundaries(t *testing.T) {
	cases := []struct {
		rev, first uint64
		want       bool
	}{
		{3, 4, true},
		{3, 1, true},
		{3, 0, true},
		{3, 5, false},
		{0, 1, true},
		{0, 2, false},
		{math.MaxUint64, math.MaxUint64, true},
		{math.MaxUint64, 0, true},
	}
	for _, c := range cases {
		if got := ResumeWindowOK(c.rev, c.first); got != c.want {
			t.Errorf("ResumeWindowOK(%d, %d) = %v, want %v", c.rev, c.first, got, c.want)
		}
	}
	if s, ok := ResumeStart(3); !ok || s != 4 {
		t.Errorf("ResumeStart(3) = %d, %v; want 4, true", s, ok)
	}
	if s, ok := ResumeStart(math.MaxUint64); ok {
		t.Errorf("ResumeStart(MaxUint64) = %d, true; want refusal", s)
	}
}
