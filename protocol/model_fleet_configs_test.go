package protocol_test

import (
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

// The configurations of the fleet model (docs/MODEL.md, "Configurations").
// The default tier runs in every `go test`; the deep tier only with
// SLIPSTREAM_MODEL_DEEP=1.

func baseConfigs(n, maxRev int) []fleetConfig {
	return []fleetConfig{
		{name: "shipped+FailStop", n: n, maxRev: maxRev, layout: shipped, resync: failStop},
		{name: "shipped+None", n: n, maxRev: maxRev, layout: shipped, resync: noResync},
		{name: "legacy+FailStop", n: n, maxRev: maxRev, layout: legacy, resync: failStop},
		{name: "legacy+Degrade", n: n, maxRev: maxRev, layout: legacy, resync: degrade},
		{name: "legacy+None", n: n, maxRev: maxRev, layout: legacy, resync: noResync},
	}
}

// fleetCase is a configuration with the properties it must break; every
// other property must hold (always kinds) or be witnessed (sometimes).
type fleetCase struct {
	cfg    fleetConfig
	breaks []string
}

// defaultCases are the default tier at N=2 and the given maxRev (3; 2
// under the race detector, see defaultMaxRev). The legacy layout under FailStop breaks
// recoverability: a torn pair left by the last publishes wedges every later
// bootstrap in a cross-check/retry cycle — a hazard the terminal-state
// check cannot see, since the cycle has no terminal state.
func defaultCases(maxRev int) []fleetCase {
	b := baseConfigs(2, maxRev)
	mut := func(name string, m mutation) fleetConfig {
		c := b[0]
		c.name, c.mutation = name, m
		return c
	}
	noCC := b[2]
	noCC.name, noCC.mutation = "legacy+FailStop+NoCrossCheck (test-only mutation)", noCrossCheck
	return []fleetCase{
		{cfg: b[0]},
		{cfg: b[1]},
		{cfg: b[2], breaks: []string{propAlwaysRecoverable}},
		{cfg: b[3]},
		{cfg: b[4]},
		{cfg: mut("mutation LwwPointer", lwwPointer), breaks: []string{
			propNeverRegresses, propMonotonePointer, propTargetFetchable, propRefusesOlder, propFetchMissStale}},
		{cfg: mut("mutation PruneAgeOnly", pruneAgeOnly), breaks: []string{
			propTargetFetchable, propFetchMissStale, propAlwaysRecoverable}},
		{cfg: mut("mutation SilentClamp", silentClamp), breaks: []string{
			propNeverDiverges, propEveryRunCompletes, propAlwaysRecoverable}},
		{cfg: noCC, breaks: []string{propNoMixedImport, propTornPair}},
	}
}

// verdict checks one exploration against the case's expectations, logging
// every witness and counterexample (the latter step by step).
func verdict(t *testing.T, c *fleetConfig, m *modelSpec[fleetState], seen seenSet, r *checkReport, breaks []string) {
	t.Helper()
	for i, p := range m.props {
		d := r.disc[i]
		wantBreak := slices.Contains(breaks, p.name)
		switch {
		case p.kind == sometimes && d.found:
			tr := trace(m, seen, d, p.kind)
			t.Logf("sometimes %q: witness in %d steps: %s", p.name, len(tr), actions(tr))
		case p.kind == sometimes && wantBreak:
			t.Logf("sometimes %q: no witness, as expected", p.name)
		case p.kind == sometimes:
			t.Errorf("sometimes %q: no witness among %s states", p.name, si(r.states))
		case d.found:
			tr := trace(m, seen, d, p.kind)
			msg := fmt.Sprintf("%s %q: counterexample in %d steps: %s\n%s", p.kind, p.name, len(tr), actions(tr), render(m.init, tr, c.format))
			if wantBreak {
				t.Log(msg)
			} else {
				t.Error("VIOLATED " + msg)
			}
		case wantBreak:
			t.Errorf("%s %q: expected a counterexample, found none among %s states", p.kind, p.name, si(r.states))
		}
	}
	for _, b := range breaks {
		if !slices.ContainsFunc(m.props, func(p prop[fleetState]) bool { return p.name == b }) {
			t.Errorf("expected break %q is not a property of this configuration", b)
		}
	}
}

// checkExact explores a configuration with the exact visited set, including
// the recoverability property.
func checkExact(c fleetConfig) (*modelSpec[fleetState], *exactSet, *checkReport) {
	m := c.spec(true)
	seen := newExactSet(true)
	r := explore(m, seen, nil)
	checkRecoverable(m, seen, r)
	return m, seen, r
}

// defaultMaxRev is the default tier's maxRev: 3, as docs/MODEL.md
// specifies, or 2 under the race detector. The model is single-threaded, so
// the detector has nothing to find in it, and it slows the exploration
// tenfold (N=2 maxRev=3 is ~8 M states over the nine cases; maxRev=2 is
// ~30x smaller and decides every property the same way).
func defaultMaxRev() int {
	if raceEnabled {
		return 2
	}
	return 3
}

func TestModelFleet(t *testing.T) {
	for _, fc := range defaultCases(defaultMaxRev()) {
		t.Run(strings.NewReplacer(" ", "_", "+", "_").Replace(fc.cfg.name), func(t *testing.T) {
			t.Parallel()
			m, seen, r := checkExact(fc.cfg)
			t.Logf("%v: %s unique states, %s transitions, %s terminal, depth %d, %v",
				fc.cfg, si(r.states), si(r.transitions), si(r.terminals), r.depth, r.elapsed.Round(time.Millisecond))
			verdict(t, &fc.cfg, m, seen, r, fc.breaks)
		})
	}
}

// The deep tier uses fingerprints; on the default configurations (at
// maxRev=2, to stay cheap) it must find exactly what the exact set finds:
// the same counts and, since ties are broken by the same successor order,
// the same shortest traces.
func TestModelFleetFingerprintsMatchExact(t *testing.T) {
	for _, fc := range defaultCases(2) {
		m, es, er := checkExact(fc.cfg)
		fm := fc.cfg.spec(false)
		fs := newFPSet(0)
		fr := explore(fm, fs, nil)
		if er.states != fr.states || er.transitions != fr.transitions || er.terminals != fr.terminals || er.depth != fr.depth {
			t.Errorf("%v: exact %d/%d/%d/%d, fingerprints %d/%d/%d/%d (states/transitions/terminals/depth)", fc.cfg,
				er.states, er.transitions, er.terminals, er.depth, fr.states, fr.transitions, fr.terminals, fr.depth)
		}
		for i, p := range fm.props {
			ed, fd := er.disc[i], fr.disc[i]
			if ed.found != fd.found {
				t.Errorf("%v %q: exact found=%v, fingerprints found=%v", fc.cfg, p.name, ed.found, fd.found)
				continue
			}
			if ed.found {
				if a, b := actions(trace(m, es, ed, p.kind)), actions(trace(fm, fs, fd, p.kind)); a != b {
					t.Errorf("%v %q: exact trace %s, fingerprint trace %s", fc.cfg, p.name, a, b)
				}
			}
		}
	}
}

// The deep tier (SLIPSTREAM_MODEL_DEEP=1): N=2 maxRev=5 for the five base
// configurations, and N=3 maxRev=3 for both layouts. Select one with -run,
// e.g. -run 'TestModelFleetDeep/N=3_maxRev=3_shipped_FailStop'.
func TestModelFleetDeep(t *testing.T) {
	if os.Getenv("SLIPSTREAM_MODEL_DEEP") != "1" {
		t.Skip("deep model tier: set SLIPSTREAM_MODEL_DEEP=1 (hours of CPU, several GiB; docs/MODEL.md)")
	}
	var cases []fleetCase
	for _, c := range baseConfigs(2, 5) {
		cases = append(cases, fleetCase{cfg: c})
	}
	for _, c := range baseConfigs(3, 3) {
		cases = append(cases, fleetCase{cfg: c})
	}
	for _, fc := range cases {
		name := fmt.Sprintf("N=%d_maxRev=%d_%s", fc.cfg.n, fc.cfg.maxRev, strings.ReplaceAll(fc.cfg.name, "+", "_"))
		t.Run(name, func(t *testing.T) {
			m := fc.cfg.spec(false)
			seen := newFPSet(150_000_000) // 4 GiB: no growth up to ~188 M states
			lastLog := time.Now()
			r := explore(m, seen, func(r *checkReport) {
				if time.Since(lastLog) >= time.Minute {
					lastLog = time.Now()
					t.Logf("  depth %d: %s states, %s transitions, %v, table %s MiB, %s",
						r.depth, si(r.states), si(r.transitions), r.elapsed.Round(time.Second), si(seen.bytes()>>20), peakRSS())
				}
			})
			t.Logf("%v: %s unique states, %s transitions, %s terminal, depth %d, %v, table %s MiB, %s",
				fc.cfg, si(r.states), si(r.transitions), si(r.terminals), r.depth, r.elapsed.Round(time.Second), si(seen.bytes()>>20), peakRSS())
			verdict(t, &fc.cfg, m, seen, r, fc.breaks)
			debug.FreeOSMemory()
		})
	}
}

// peakRSS reports the process's peak resident set size (Linux VmHWM).
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "peak RSS unknown"
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return "peak RSS " + strings.TrimSpace(v)
		}
	}
	return "peak RSS unknown"
}
