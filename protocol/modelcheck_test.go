package protocol_test

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// An explicit-state model checker for models too large for a map of full
// states (docs/MODEL.md). Breadth-first over states packed into two words;
// the visited set is either exact (a map of packed states, with the graph's
// edges for the recoverability check) or a table of 64-bit fingerprints
// (the deep tier). Both keep each state's parent, so every discovery comes
// with a shortest trace: the chain of parents is replayed from the initial
// state to recover the actions.

// key is a model state packed into two words.
type key [2]uint64

// propKind is how a property quantifies over the reachable graph.
type propKind uint8

const (
	// always: every reachable state satisfies the predicate.
	always propKind = iota
	// sometimes: some reachable state satisfies it (a witness).
	sometimes
	// terminal: every reachable state without an enabled action satisfies
	// it — liveness as a terminal-state invariant.
	terminal
	// alwaysStep: every transition satisfies it.
	alwaysStep
	// recoverable: from every reachable state some state satisfying the
	// predicate is still reachable. Needs the whole graph: exact tier only.
	recoverable
)

func (k propKind) String() string {
	return [...]string{"always", "sometimes", "terminal", "always-step", "recoverable"}[k]
}

// prop is one property of a model. state is the predicate of always,
// sometimes, terminal and recoverable; step that of alwaysStep.
type prop[S any] struct {
	name  string
	kind  propKind
	state func(s S) bool
	step  func(from S, act int, to S) bool
}

// modelSpec is a model: its initial state, its transition function (which
// emits every enabled action's successor, in a fixed order) and its
// packing.
type modelSpec[S any] struct {
	init    S
	succ    func(s S, emit func(act int, next S))
	actName func(act int) string
	pack    func(S) key
	unpack  func(key) S
	props   []prop[S]
}

// discovery is the first (so shortest) state, or for alwaysStep the first
// transition, at which a property was decided: a sometimes witness or a
// counterexample to any other kind.
type discovery struct {
	found bool
	at    key // state id (exact key or fingerprint)
	act   int // alwaysStep: the offending action taken from at
}

// checkReport is the outcome of one exploration.
type checkReport struct {
	states      uint64 // unique reachable states
	transitions uint64
	terminals   uint64 // states without an enabled action
	depth       int    // length of the longest shortest path
	elapsed     time.Duration
	disc        []discovery // per property, in spec order
}

// seenSet is the visited set. Ids are what it stores: the packed state
// itself (exact) or its fingerprint (in id[0]). add records id, reached
// from parent (the root is its own parent), and reports whether it is new.
type seenSet interface {
	id(k key) key
	add(id, parent key) bool
	parent(id key) key
	len() uint64
}

// exactSet stores every packed state, in discovery (so breadth-first)
// order, with its parent's index and, when edges is set, every explored
// edge in compressed form (for recoverable properties): since states are
// expanded in index order, state i's successors are to[out[i]:out[i+1]].
type exactSet struct {
	slots   []exactSlot // open addressing, linear probing
	mask    uint64
	keys    []key
	parents []int32
	edges   bool
	out     []int32
	to      []int32
	// The state being expanded (the parent of every add until the next
	// one): its key and index, cached.
	curKey key
	curIdx int32
}

type exactSlot struct {
	k   key
	idx int32 // index+1 into keys; 0 = empty
}

func newExactSet(edges bool) *exactSet {
	return &exactSet{slots: make([]exactSlot, 1<<10), mask: 1<<10 - 1, edges: edges, curIdx: -1}
}

func (e *exactSet) id(k key) key { return k }

// find returns k's slot and whether k is stored there.
func (e *exactSet) find(k key) (*exactSlot, bool) {
	for i := fingerprint(k) & e.mask; ; i = (i + 1) & e.mask {
		switch s := &e.slots[i]; {
		case s.idx == 0:
			return s, false
		case s.k == k:
			return s, true
		}
	}
}

func (e *exactSet) index(k key) int32 {
	s, ok := e.find(k)
	if !ok {
		return -1
	}
	return s.idx - 1
}

func (e *exactSet) add(id, parent key) bool {
	if parent != e.curKey || e.curIdx < 0 {
		e.curKey, e.curIdx = parent, e.index(parent)
		if e.edges && e.curIdx >= 0 {
			// Close the edge lists of the states expanded without successors
			// in between (terminal states).
			for int32(len(e.out)) <= e.curIdx {
				e.out = append(e.out, int32(len(e.to)))
			}
		}
	}
	slot, found := e.find(id)
	if found {
		if e.edges {
			e.to = append(e.to, slot.idx-1)
		}
		return false
	}
	idx := int32(len(e.keys))
	p := e.curIdx
	if p < 0 { // the root is its own parent
		p = idx
	}
	*slot = exactSlot{id, idx + 1}
	e.keys = append(e.keys, id)
	e.parents = append(e.parents, p)
	if e.edges && e.curIdx >= 0 {
		e.to = append(e.to, idx)
	}
	if uint64(len(e.keys))*10 > uint64(len(e.slots))*7 {
		old := e.slots
		e.slots = make([]exactSlot, 2*len(old))
		e.mask = uint64(len(e.slots)) - 1
		for _, o := range old {
			if o.idx != 0 {
				s, _ := e.find(o.k)
				*s = o
			}
		}
	}
	return true
}

func (e *exactSet) parent(id key) key { return e.keys[e.parents[e.index(id)]] }

func (e *exactSet) len() uint64 { return uint64(len(e.keys)) }

// canReach returns, per state index, whether some state satisfying goal is
// reachable from it (a backward search over the recorded edges).
func (e *exactSet) canReach(goal func(key) bool) []bool {
	n := len(e.keys)
	for len(e.out) <= n {
		e.out = append(e.out, int32(len(e.to)))
	}
	// Reverse adjacency in compressed form.
	start := make([]int32, n+1)
	for _, t := range e.to {
		start[t+1]++
	}
	for i := range n {
		start[i+1] += start[i]
	}
	pred := make([]int32, len(e.to))
	fill := slices.Clone(start[:n])
	for f := range n {
		for _, t := range e.to[e.out[f]:e.out[f+1]] {
			pred[fill[t]] = int32(f)
			fill[t]++
		}
	}
	ok := make([]bool, n)
	var queue []int32
	for i, k := range e.keys {
		if goal(k) {
			ok[i] = true
			queue = append(queue, int32(i))
		}
	}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		for _, f := range pred[start[t]:start[t+1]] {
			if !ok[f] {
				ok[f] = true
				queue = append(queue, f)
			}
		}
	}
	return ok
}

// fingerprint hashes a packed state to 64 bits, never 0 (the empty slot).
// Two rounds of the murmur3 finalizer: for equal second words the map is a
// bijection of the first, so states differing only in word 0 never collide.
func fingerprint(k key) uint64 {
	h := fmix64(k[0] ^ fmix64(k[1]^0x9e3779b97f4a7c15))
	if h == 0 {
		h = 1
	}
	return h
}

func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// fpSet is an open-addressing (linear probing) table of fingerprints, each
// with its parent's fingerprint: 16 bytes a slot, kept at most 70% full.
type fpSet struct {
	slots []fpSlot
	mask  uint64
	n     uint64
}

type fpSlot struct{ fp, parent uint64 }

// newFPSet sizes the table for about hint states without growing.
func newFPSet(hint uint64) *fpSet {
	size := uint64(1) << 10
	for size*7/10 < hint {
		size <<= 1
	}
	return &fpSet{slots: make([]fpSlot, size), mask: size - 1}
}

func (f *fpSet) id(k key) key { return key{fingerprint(k)} }

func (f *fpSet) add(id, parent key) bool {
	if !f.insert(id[0], parent[0]) {
		return false
	}
	f.n++
	if f.n*10 > uint64(len(f.slots))*7 {
		f.grow()
	}
	return true
}

func (f *fpSet) insert(fp, parent uint64) bool {
	for i := fp & f.mask; ; i = (i + 1) & f.mask {
		switch f.slots[i].fp {
		case 0:
			f.slots[i] = fpSlot{fp, parent}
			return true
		case fp:
			return false
		}
	}
}

func (f *fpSet) grow() {
	old := f.slots
	f.slots = make([]fpSlot, 2*len(old))
	f.mask = uint64(len(f.slots)) - 1
	for _, s := range old {
		if s.fp != 0 {
			f.insert(s.fp, s.parent)
		}
	}
}

func (f *fpSet) parent(id key) key {
	for i := id[0] & f.mask; ; i = (i + 1) & f.mask {
		switch f.slots[i].fp {
		case id[0]:
			return key{f.slots[i].parent}
		case 0:
			panic(fmt.Sprintf("fingerprint %#x not in the table", id[0]))
		}
	}
}

func (f *fpSet) len() uint64 { return f.n }

// bytes is the table's size in memory.
func (f *fpSet) bytes() uint64 { return uint64(len(f.slots)) * 16 }

// explorer runs one breadth-first exploration.
type explorer[S any] struct {
	m      *modelSpec[S]
	seen   seenSet
	r      *checkReport
	next   []key
	from   S
	fromID key
	any    bool
	// Indices of the properties checked per transition and per new state,
	// dropped once decided.
	stepProps, stateProps []int
}

// explore visits every state reachable from m.init, checking every
// property but the recoverable ones (see checkRecoverable). progress, if
// non-nil, is called after each breadth-first level.
func explore[S any](m *modelSpec[S], seen seenSet, progress func(*checkReport)) *checkReport {
	start := time.Now()
	x := &explorer[S]{m: m, seen: seen, r: &checkReport{disc: make([]discovery, len(m.props))}}
	for i, p := range m.props {
		switch p.kind {
		case alwaysStep:
			x.stepProps = append(x.stepProps, i)
		case always, sometimes:
			x.stateProps = append(x.stateProps, i)
		}
	}
	root := m.pack(m.init)
	rootID := seen.id(root)
	seen.add(rootID, rootID)
	x.r.states = 1
	x.checkState(m.init, rootID)
	cur := []key{root}
	emit := x.emit
	for len(cur) > 0 {
		for _, k := range cur {
			x.from, x.fromID, x.any = m.unpack(k), seen.id(k), false
			m.succ(x.from, emit)
			if !x.any {
				x.r.terminals++
				for i, p := range m.props {
					if p.kind == terminal && !x.r.disc[i].found && !p.state(x.from) {
						x.r.disc[i] = discovery{found: true, at: x.fromID}
					}
				}
			}
		}
		cur, x.next = x.next, cur[:0]
		if len(cur) > 0 {
			x.r.depth++
		}
		x.r.elapsed = time.Since(start)
		if progress != nil {
			progress(x.r)
		}
	}
	return x.r
}

func (x *explorer[S]) emit(act int, n S) {
	x.any = true
	x.r.transitions++
	for j := 0; j < len(x.stepProps); j++ {
		if i := x.stepProps[j]; !x.m.props[i].step(x.from, act, n) {
			x.r.disc[i] = discovery{found: true, at: x.fromID, act: act}
			x.stepProps = slices.Delete(x.stepProps, j, j+1)
			j--
		}
	}
	nk := x.m.pack(n)
	nid := x.seen.id(nk)
	if x.seen.add(nid, x.fromID) {
		x.r.states++
		x.next = append(x.next, nk)
		x.checkState(n, nid)
	}
}

func (x *explorer[S]) checkState(s S, id key) {
	for j := 0; j < len(x.stateProps); j++ {
		i := x.stateProps[j]
		p := &x.m.props[i]
		if p.state(s) != (p.kind == sometimes) {
			continue
		}
		x.r.disc[i] = discovery{found: true, at: id}
		x.stateProps = slices.Delete(x.stateProps, j, j+1)
		j--
	}
}

// checkRecoverable decides the recoverable properties over an exact set
// that recorded its edges: the counterexample is the first state, in
// breadth-first order, from which no goal state is reachable.
func checkRecoverable[S any](m *modelSpec[S], seen *exactSet, r *checkReport) {
	for i, p := range m.props {
		if p.kind != recoverable {
			continue
		}
		ok := seen.canReach(func(k key) bool { return p.state(m.unpack(k)) })
		for j, reach := range ok {
			if !reach {
				r.disc[i] = discovery{found: true, at: seen.keys[j]}
				break
			}
		}
	}
}

// step is one action of a trace and the state it led to.
type step[S any] struct {
	act   string
	state S
}

// trace replays the shortest path to a discovery: the actions from the
// initial state to d.at and, for a step property, the offending action.
func trace[S any](m *modelSpec[S], seen seenSet, d discovery, kind propKind) []step[S] {
	var chain []key
	for id := d.at; ; {
		chain = append(chain, id)
		p := seen.parent(id)
		if p == id {
			break
		}
		id = p
	}
	var out []step[S]
	s := m.init
	for i := len(chain) - 2; i >= -1; i-- {
		var found bool
		m.succ(s, func(act int, n S) {
			if found {
				return
			}
			if i >= 0 && seen.id(m.pack(n)) == chain[i] || i < 0 && kind == alwaysStep && act == d.act {
				out = append(out, step[S]{m.actName(act), n})
				s, found = n, true
			}
		})
		if i >= 0 && !found {
			panic("trace: no successor matches the recorded parent chain")
		}
	}
	return out
}

// actions is the action sequence of a trace, comma-separated.
func actions[S any](tr []step[S]) string {
	names := make([]string, len(tr))
	for i, s := range tr {
		names[i] = s.act
	}
	return strings.Join(names, ", ")
}

// render prints a trace one numbered step per line, with the state after it.
func render[S any](init S, tr []step[S], format func(S) string) string {
	var b strings.Builder
	w := len("(init)")
	for _, s := range tr {
		w = max(w, len(s.act))
	}
	fmt.Fprintf(&b, "    0. %-*s  %s\n", w, "(init)", format(init))
	for i, s := range tr {
		fmt.Fprintf(&b, "   %2d. %-*s  %s\n", i+1, w, s.act, format(s.state))
	}
	return b.String()
}

// si formats a count with thousands separators.
func si(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
