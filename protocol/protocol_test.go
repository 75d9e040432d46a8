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

func TestPublishGuardBoundaries(t *testing.T) {
	cases := []struct {
		name string
		cur  PointerState
		cand uint64
		want bool
	}{
		{"absent", Absent, 0, true},
		{"corrupt", CorruptPointer(), 0, true},
		{"equal republishes", PointerAt(5), 5, true},
		{"greater", PointerAt(5), 6, true},
		{"smaller refused", PointerAt(5), 4, false},
		{"zero over nonzero refused", PointerAt(1), 0, false},
	}
	for _, c := range cases {
		if got := PointerPublishAllowed(c.cur, c.cand); got != c.want {
			t.Errorf("%s: PointerPublishAllowed(%+v, %d) = %v, want %v", c.name, c.cur, c.cand, got, c.want)
		}
	}
}

func TestPruneGuardBoundaries(t *testing.T) {
	r := func(v uint64) *uint64 { return &v }
	cases := []struct {
		name            string
		rank            *uint64
		pointer         uint64
		target, agedOut bool
		want            bool
	}{
		{"strictly below, aged, not target", r(4), 5, false, true, true},
		{"equal rank kept", r(5), 5, false, true, false},
		{"higher rank kept", r(6), 5, false, true, false},
		{"pointer target kept", r(4), 5, true, true, false},
		{"unparseable kept", nil, 5, false, true, false},
		{"within grace kept", r(4), 5, false, false, false},
	}
	for _, c := range cases {
		if got := PayloadPrunable(c.rank, c.pointer, c.target, c.agedOut); got != c.want {
			t.Errorf("%s: PayloadPrunable = %v, want %v", c.name, got, c.want)
		}
	}
}
