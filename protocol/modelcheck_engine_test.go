package protocol_test

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// A small graph to test the checker itself: states 0..7 (packed in key[0]),
// with
//
//	0 ─a→ 1 ─a→ 2 ─a→ 3 (terminal)
//	0 ─b→ 4 ─a→ 5 ⟲ (5 ─a→ 5: a cycle with no way out)
//	0 ─c→ 6 ─a→ 3,   6 ─b→ 7 (terminal)
//
// so 3 is reached in two steps via 6 (not three via 1, 2), 7 is a terminal
// state other than 3, and 4 and 5 cannot reach 3 any more.
var tinyEdges = map[uint64][][2]uint64{ // state → (action, successor)
	0: {{0, 1}, {1, 4}, {2, 6}},
	1: {{0, 2}},
	2: {{0, 3}},
	4: {{0, 5}},
	5: {{0, 5}},
	6: {{0, 3}, {1, 7}},
}

func tinyModel(props ...prop[uint64]) *modelSpec[uint64] {
	return &modelSpec[uint64]{
		init: 0,
		succ: func(s uint64, emit func(int, uint64)) {
			for _, e := range tinyEdges[s] {
				emit(int(e[0]), e[1])
			}
		},
		actName: func(a int) string { return string(rune('a' + a)) },
		pack:    func(s uint64) key { return key{s} },
		unpack:  func(k key) uint64 { return k[0] },
		props:   props,
	}
}

func TestCheckerDecidesEveryPropertyKind(t *testing.T) {
	is := func(v uint64) func(uint64) bool { return func(s uint64) bool { return s == v } }
	props := []prop[uint64]{
		{name: "never 3", kind: always, state: func(s uint64) bool { return s != 3 }},
		{name: "below 8", kind: always, state: func(s uint64) bool { return s < 8 }},
		{name: "reach 3", kind: sometimes, state: is(3)},
		{name: "reach 9", kind: sometimes, state: is(9)},
		{name: "terminals are 3", kind: terminal, state: is(3)},
		{name: "no b out of 6", kind: alwaysStep, step: func(from uint64, act int, _ uint64) bool { return !(from == 6 && act == 1) }},
		{name: "3 stays reachable", kind: recoverable, state: is(3)},
		{name: "something stays reachable", kind: recoverable, state: func(uint64) bool { return true }},
	}
	type want struct {
		found bool
		trace string
	}
	wants := []want{
		{true, "c, a"}, // never 3: shortest path to 3 is via 6
		{false, ""},    // below 8 holds
		{true, "c, a"}, // reach 3: same witness
		{false, ""},    // reach 9: no witness
		{true, "c, b"}, // terminals are 3: 7 is terminal
		{true, "c, b"}, // no b out of 6: the step itself ends the trace
		{true, "b"},    // 3 stays reachable: not from 4
		{false, ""},    // trivially recoverable
	}
	for _, fp := range []bool{false, true} {
		m := tinyModel(props...)
		var seen seenSet
		var es *exactSet
		if fp {
			seen = newFPSet(0)
		} else {
			es = newExactSet(true)
			seen = es
		}
		r := explore(m, seen, nil)
		if r.states != 8 || r.transitions != 9 || r.terminals != 2 || r.depth != 2 {
			t.Fatalf("fp=%v: %d states, %d transitions, %d terminals, depth %d; want 8, 9, 2, 2",
				fp, r.states, r.transitions, r.terminals, r.depth)
		}
		if !fp {
			checkRecoverable(m, es, r)
		}
		for i, p := range props {
			if fp && p.kind == recoverable {
				continue // exact tier only
			}
			d := r.disc[i]
			got := want{found: d.found}
			if d.found {
				got.trace = actions(trace(m, seen, d, p.kind))
			}
			if got != wants[i] {
				t.Errorf("fp=%v %s %q: found=%v trace %q; want found=%v trace %q",
					fp, p.kind, p.name, got.found, got.trace, wants[i].found, wants[i].trace)
			}
		}
	}
}

// The fingerprint table must keep every fingerprint and its parent through
// growth.
func TestFingerprintSetGrows(t *testing.T) {
	f := newFPSet(0)
	const n = 50_000
	for i := uint64(1); i <= n; i++ {
		id := f.id(key{i, i * 7})
		if !f.add(id, key{i - 1}) {
			t.Fatalf("state %d reported as seen", i)
		}
		if f.add(id, key{12345}) {
			t.Fatalf("state %d added twice", i)
		}
	}
	if f.len() != n || f.bytes() < n*16 {
		t.Fatalf("len %d, %d bytes", f.len(), f.bytes())
	}
	for i := uint64(1); i <= n; i++ {
		if p := f.parent(f.id(key{i, i * 7})); p != (key{i - 1}) {
			t.Fatalf("parent of %d = %v", i, p)
		}
	}
}

func TestFleetStatePacksLosslessly(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10_000 {
		s := fleetState{
			head: uint8(rng.IntN(8)), deleteRev: uint8(rng.IntN(8)), floor: uint8(rng.IntN(8)),
			payload: artifact(rng.IntN(49)), manifest: artifact(rng.IntN(49)),
			uploaded:  rng.Uint64() & (1<<48 - 1),
			regressed: rng.IntN(2) == 1, refused: rng.IntN(2) == 1,
			imp: importer{kind: impKind(rng.IntN(6)), art: artifact(rng.IntN(49)), stale: rng.IntN(2) == 1},
		}
		for i := range fleetMaxN {
			s.applied[i] = uint8(rng.IntN(8))
			s.exp[i] = exporter{kind: expKind(rng.IntN(4)), cursor: uint8(rng.IntN(8)), hasKey: rng.IntN(2) == 1}
		}
		if got := unpackFleet(packFleet(s)); got != s {
			t.Fatalf("unpack(pack(%+v)) = %+v", s, got)
		}
	}
	for node := range uint8(fleetMaxN) {
		for c := range uint8(fleetMaxRev + 1) {
			for _, k := range []bool{false, true} {
				a := mkArtifact(node, c, k)
				if a == 0 || a > 48 || a.node() != node || a.cursor() != c || a.hasKey() != k {
					t.Fatalf("artifact(%d,%d,%v) = %d → (%d,%d,%v)", node, c, k, a, a.node(), a.cursor(), a.hasKey())
				}
			}
		}
	}
}

// Every property of the fleet model can fail: its predicate tells a
// hand-made good state from a bad one (for sometimes properties: a witness
// from a non-witness). The table must cover every property of every
// configuration, so a new property comes with its own discriminating case.
func TestModelFleetPropertiesDiscriminate(t *testing.T) {
	a := func(node, c uint8, k bool) artifact { return mkArtifact(node, c, k) }
	shippedFS := baseConfigs(2, 3)[0]
	shippedNone := baseConfigs(2, 3)[1]
	legacyFS := baseConfigs(2, 3)[2]
	synced := importer{kind: resumed, art: a(0, 2, true)}
	cases := []struct {
		cfg       fleetConfig
		prop      string
		good, bad fleetState // for alwaysStep: the step's source state
		goodTo    fleetState // alwaysStep: the good step's target
		badTo     fleetState // alwaysStep: the bad step's target
	}{
		{cfg: shippedFS, prop: propNeverRegresses,
			good: fleetState{manifest: a(0, 2, true)},
			bad:  fleetState{manifest: a(1, 1, true), regressed: true}},
		{cfg: shippedFS, prop: propMonotonePointer,
			good: fleetState{head: 3, manifest: a(1, 3, true), imp: importer{kind: gotManifest, art: a(0, 2, true)}},
			bad:  fleetState{head: 3, manifest: a(1, 1, true), imp: importer{kind: gotManifest, art: a(0, 2, true)}}},
		{cfg: shippedFS, prop: propNoCrossCheck,
			good: fleetState{imp: importer{kind: fetchMissed}},
			bad:  fleetState{imp: importer{kind: crossCheckFailed}}},
		{cfg: shippedFS, prop: propTargetFetchable,
			good: fleetState{manifest: a(0, 2, true), uploaded: a(0, 2, true).bit()},
			bad:  fleetState{manifest: a(0, 2, true), uploaded: a(0, 1, true).bit()}},
		{cfg: shippedFS, prop: propRefusesOlder,
			good: fleetState{refused: true},
			bad:  fleetState{}},
		{cfg: shippedFS, prop: propPruneRaceRetry,
			good: fleetState{imp: importer{kind: fetchMissed}},
			bad:  fleetState{imp: importer{kind: gotManifest, art: a(0, 1, true)}}},
		{cfg: shippedFS, prop: propFetchMissStale,
			good:   fleetState{manifest: a(1, 2, true), imp: importer{kind: gotManifest, art: a(0, 1, true)}},
			goodTo: fleetState{manifest: a(1, 2, true), imp: importer{kind: fetchMissed}},
			bad:    fleetState{manifest: a(1, 2, true), imp: importer{kind: gotManifest, art: a(1, 2, true)}},
			badTo:  fleetState{manifest: a(1, 2, true), imp: importer{kind: fetchMissed}}},
		{cfg: legacyFS, prop: propRegression,
			good: fleetState{regressed: true},
			bad:  fleetState{}},
		{cfg: legacyFS, prop: propTornPair,
			good: fleetState{imp: importer{kind: crossCheckFailed}},
			bad:  fleetState{imp: importer{kind: impStart}}},
		{cfg: legacyFS, prop: propRegressionNonFat,
			good: fleetState{head: 3, regressed: true, manifest: a(0, 2, true), imp: synced,
				exp: [fleetMaxN]exporter{{kind: done, cursor: 2}, {kind: done, cursor: 3}}},
			// The higher publish may be later than the read: no evidence of order.
			bad: fleetState{head: 3, regressed: true, manifest: a(0, 2, true), imp: synced,
				exp: [fleetMaxN]exporter{{kind: done, cursor: 2}, {kind: payloadUp, cursor: 3}}}},
		{cfg: legacyFS, prop: propNoMixedImport,
			good: fleetState{head: 3, deleteRev: 3, imp: importer{kind: imported, art: a(1, 2, true)}},
			bad:  fleetState{head: 3, deleteRev: 2, imp: importer{kind: imported, art: a(1, 2, true)}}},
		{cfg: shippedFS, prop: propNoMixedImport, // cursor above the head
			good: fleetState{head: 2, imp: importer{kind: resumed, art: a(1, 2, true)}},
			bad:  fleetState{head: 1, imp: importer{kind: resumed, art: a(1, 2, true)}}},
		{cfg: shippedFS, prop: propNeverDiverges,
			good: fleetState{imp: synced},
			bad:  fleetState{imp: importer{kind: resumed, art: a(0, 1, true), stale: true}}},
		{cfg: shippedNone, prop: propDivergence,
			good: fleetState{imp: importer{kind: resumed, art: a(0, 1, true), stale: true}},
			bad:  fleetState{imp: synced}},
		{cfg: shippedFS, prop: propBootstrapSynced,
			good: fleetState{imp: synced},
			bad:  fleetState{imp: importer{kind: imported, art: a(0, 2, true)}}},
		{cfg: shippedFS, prop: propSecondRound,
			good: fleetState{manifest: a(1, 1, true), exp: [fleetMaxN]exporter{{}, {kind: payloadUp, cursor: 2, hasKey: true}}},
			bad:  fleetState{manifest: a(0, 1, true), exp: [fleetMaxN]exporter{{}, {kind: payloadUp, cursor: 2, hasKey: true}}}},
		{cfg: shippedFS, prop: propEveryRunCompletes,
			good: fleetState{imp: synced},
			bad:  fleetState{imp: importer{kind: fetchMissed}}},
		{cfg: shippedFS, prop: propAlwaysRecoverable,
			good: fleetState{imp: synced},
			bad:  fleetState{imp: importer{kind: crossCheckFailed}}},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		props := c.cfg.props(true)
		i := slices.IndexFunc(props, func(p prop[fleetState]) bool { return p.name == c.prop })
		if i < 0 {
			t.Errorf("%v has no property %q", c.cfg, c.prop)
			continue
		}
		covered[c.prop] = true
		p := props[i]
		if p.kind == alwaysStep {
			if !p.step(c.good, actReadPayload, c.goodTo) || p.step(c.bad, actReadPayload, c.badTo) {
				t.Errorf("%s %q does not tell the good step from the bad one", p.kind, p.name)
			}
			continue
		}
		if !p.state(c.good) || p.state(c.bad) {
			t.Errorf("%s %q: good state → %v, bad state → %v; want true, false", p.kind, p.name, p.state(c.good), p.state(c.bad))
		}
	}
	for _, fc := range defaultCases(3) {
		for _, p := range fc.cfg.props(true) {
			if !covered[p.name] {
				t.Errorf("property %q of %v has no discriminating case", p.name, fc.cfg)
			}
		}
	}
}
