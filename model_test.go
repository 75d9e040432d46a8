package slipstream_test

import (
	"strings"
	"testing"
)

// A small explicit-state model checker (docs/LOOP.md, "Model checks"): breadth-first
// exploration of every interleaving of a model's actions over a comparable
// state struct. "Always" properties are invariants over every reachable
// state; "sometimes" properties need one reachable witness; liveness is a
// terminal-state invariant (a state with no enabled action must be
// converged). Breadth-first order makes every reported trace a shortest one.

// action is one guarded transition of a model.
type action[S comparable] struct {
	name    string
	enabled func(S) bool
	next    func(S) S
}

// graph is the reachable state space of a model.
type graph[S comparable] struct {
	states   []S         // in breadth-first order; states[0] is the initial state
	index    map[S]int   // state → position in states
	parent   []int       // predecessor on a shortest path (-1 for the root)
	via      []string    // action taken from parent
	terminal []bool      // no action enabled
	actions  []action[S] // for callers that inspect edges
}

// explore computes every state reachable from init.
func explore[S comparable](init S, actions []action[S]) *graph[S] {
	g := &graph[S]{index: map[S]int{init: 0}, actions: actions}
	g.states = append(g.states, init)
	g.parent = append(g.parent, -1)
	g.via = append(g.via, "")
	for i := 0; i < len(g.states); i++ {
		s := g.states[i]
		enabled := false
		for _, a := range actions {
			if !a.enabled(s) {
				continue
			}
			enabled = true
			n := a.next(s)
			if _, seen := g.index[n]; seen {
				continue
			}
			g.index[n] = len(g.states)
			g.states = append(g.states, n)
			g.parent = append(g.parent, i)
			g.via = append(g.via, a.name)
		}
		g.terminal = append(g.terminal, !enabled)
	}
	return g
}

// first returns the first state, in breadth-first order, satisfying pred.
func (g *graph[S]) first(pred func(s S, terminal bool) bool) (int, bool) {
	for i, s := range g.states {
		if pred(s, g.terminal[i]) {
			return i, true
		}
	}
	return 0, false
}

// trace returns the actions leading from the initial state to states[i].
func (g *graph[S]) trace(i int) []string {
	var out []string
	for ; g.parent[i] >= 0; i = g.parent[i] {
		out = append(out, g.via[i])
	}
	for l, r := 0, len(out)-1; l < r; l, r = l+1, r-1 {
		out[l], out[r] = out[r], out[l]
	}
	return out
}

// always fails the test with a shortest counterexample if some reachable
// state violates inv.
func (g *graph[S]) always(t *testing.T, name string, inv func(s S, terminal bool) bool) {
	t.Helper()
	if i, bad := g.first(func(s S, term bool) bool { return !inv(s, term) }); bad {
		t.Errorf("always %q violated at %+v\n  trace: %s", name, g.states[i], strings.Join(g.trace(i), ", "))
	}
}

// sometimes fails the test if no reachable state satisfies pred, and
// returns the shortest witness trace.
func (g *graph[S]) sometimes(t *testing.T, name string, pred func(s S, terminal bool) bool) []string {
	t.Helper()
	i, ok := g.first(pred)
	if !ok {
		t.Errorf("sometimes %q: no witness among %d states", name, len(g.states))
		return nil
	}
	tr := g.trace(i)
	t.Logf("sometimes %q: witness %s", name, strings.Join(tr, ", "))
	return tr
}

// counterexample asserts that some reachable state violates inv (a mutation
// must break the property) and returns the shortest trace to it.
func (g *graph[S]) counterexample(t *testing.T, name string, inv func(s S, terminal bool) bool) []string {
	t.Helper()
	i, bad := g.first(func(s S, term bool) bool { return !inv(s, term) })
	if !bad {
		t.Errorf("expected a counterexample to %q, found none in %d states", name, len(g.states))
		return nil
	}
	tr := g.trace(i)
	t.Logf("counterexample to %q (%d steps): %s", name, len(tr), strings.Join(tr, ", "))
	return tr
}

// wantStates asserts the reachable-state count the spec computed.
func (g *graph[S]) wantStates(t *testing.T, model string, want int) {
	t.Helper()
	t.Logf("%s: %d reachable states", model, len(g.states))
	if len(g.states) != want {
		t.Errorf("%s: %d reachable states, spec says %d", model, len(g.states), want)
	}
}

// observed pairs a model state with the phase of an observer automaton,
// to state properties over action sequences ("a FlushFail, later a FlushOk").
type observed[S comparable] struct {
	S     S
	Phase uint8
}

// observe lifts actions over observed states; step computes the observer's
// next phase from the action taken.
func observe[S comparable](actions []action[S], step func(phase uint8, act string) uint8) []action[observed[S]] {
	out := make([]action[observed[S]], len(actions))
	for i, a := range actions {
		out[i] = action[observed[S]]{
			name:    a.name,
			enabled: func(o observed[S]) bool { return a.enabled(o.S) },
			next: func(o observed[S]) observed[S] {
				return observed[S]{S: a.next(o.S), Phase: step(o.Phase, a.name)}
			},
		}
	}
	return out
}

func wantTrace(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: trace %v, spec's shortest is %v", what, got, want)
	}
}

func TestExplorerFindsShortestTrace(t *testing.T) {
	// A counter that can step by 1 or jump by 3: the shortest way to 4 is
	// two steps (1+3 or 3+1); BFS must not report the four-step path.
	acts := []action[int]{
		{"inc", func(n int) bool { return n < 6 }, func(n int) int { return n + 1 }},
		{"jump", func(n int) bool { return n < 4 }, func(n int) int { return n + 3 }},
	}
	g := explore(0, acts)
	if len(g.states) != 7 {
		t.Fatalf("states = %v, want 0..6", g.states)
	}
	i, ok := g.first(func(n int, _ bool) bool { return n == 4 })
	if !ok || len(g.trace(i)) != 2 {
		t.Fatalf("trace to 4 = %v, want 2 steps", g.trace(i))
	}
	if j := g.index[6]; !g.terminal[j] {
		t.Fatal("6 has no enabled action but is not terminal")
	}
}
