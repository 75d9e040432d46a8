package protocol_test

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/slipstream-kv/slipstream/protocol"
)

// The fleet publishing model (docs/MODEL.md): N exporters racing to publish
// one shared key, each able to crash between any two steps; the object
// store under the shipped layout (content-addressed, write-once payloads and
// a monotone pointer) or the legacy one (payload and manifest as two
// independent last-write-wins registers); zero-grace prune; a source stream
// whose retention floor evicts old revisions; one bootstrapping importer.
// The transition function calls the protocol package's kernels —
// PointerPublishAllowed, PayloadPrunable, ResumeWindowOK, ResumeStart — the
// functions the transport and the watch backends call, so a change to a
// kernel is re-verified here.

// Bounds of the packed encoding: cursors and revisions fit 3 bits,
// artifacts 6.
const (
	fleetMaxN   = 3
	fleetMaxRev = 7
)

type layout uint8

const (
	// shipped: payloads are write-once content addresses, uploaded before
	// the pointer swap, and the pointer is published with
	// PointerPublishAllowed under a conditional write.
	shipped layout = iota
	// legacy: one payload object and one manifest object, each last
	// write wins.
	legacy
)

type resyncMode uint8

const (
	// failStop: a resume whose window expired resyncs from a live listing,
	// and a listing failure stops the importer (the shipped behaviour).
	failStop resyncMode = iota
	// degrade: as failStop, but a listing failure is downgraded to a
	// re-list-only resume.
	degrade
	// noResync: no resync reader; an expired resume is re-list-only.
	noResync
)

type mutation uint8

const (
	noMutation mutation = iota
	// lwwPointer: publish ignores PointerPublishAllowed.
	lwwPointer
	// pruneAgeOnly: prune deletes every aged-out payload but the pointer
	// target, whatever its rank.
	pruneAgeOnly
	// silentClamp: an expired resume is not detected and behaves like the
	// NATS clamp (a re-list-only resume from the first retained revision).
	silentClamp
	// noCrossCheck (test-only, legacy): the importer installs whatever the
	// payload register holds under the manifest's cursor, without comparing
	// the embedded manifest with the pointer.
	noCrossCheck
)

type fleetConfig struct {
	name     string
	n        int
	maxRev   int
	layout   layout
	resync   resyncMode
	mutation mutation
}

func (c fleetConfig) String() string {
	return fmt.Sprintf("%s (N=%d maxRev=%d)", c.name, c.n, c.maxRev)
}

// artifact identifies an exported state: (node, cursor, hasKey). 0 is
// "none"; otherwise 1 + (node·8 + cursor)·2 + hasKey, so an artifact is
// also a bit index (a-1) of the uploaded set.
type artifact uint8

func mkArtifact(node, cursor uint8, hasKey bool) artifact {
	a := artifact((node*8+cursor)*2 + 1)
	if hasKey {
		a++
	}
	return a
}

func (a artifact) node() uint8   { return uint8(a-1) / 16 }
func (a artifact) cursor() uint8 { return uint8(a-1) / 2 % 8 }
func (a artifact) hasKey() bool  { return (a-1)%2 == 1 }
func (a artifact) bit() uint64   { return 1 << (a - 1) }

func (a artifact) String() string {
	if a == 0 {
		return "-"
	}
	k := "-key"
	if a.hasKey() {
		k = "+key"
	}
	return fmt.Sprintf("n%d@%d%s", a.node(), a.cursor(), k)
}

type expKind uint8

const (
	idle expKind = iota
	exported
	payloadUp
	done
)

// exporter is one node's round: Idle, Exported(a), PayloadUp(a) or
// Done(c). Its artifact's node is the exporter's own index.
type exporter struct {
	kind   expKind
	cursor uint8
	hasKey bool
}

type impKind uint8

const (
	impStart impKind = iota
	gotManifest
	imported
	crossCheckFailed
	fetchMissed
	resumed
)

// importer is the bootstrapping node: Start, GotManifest(a), Imported(a),
// CrossCheckFailed, FetchMissed or Resumed(a, Synced|StaleKey).
type importer struct {
	kind  impKind
	art   artifact
	stale bool // Resumed: StaleKey (the fold silently diverged)
}

// fleetState is one state of the model. Revisions are 1..maxRev; the
// single sentinel key exists from the start and may be deleted once.
type fleetState struct {
	head      uint8 // bucket revision
	deleteRev uint8 // revision of the sentinel key's delete; 0 = not deleted
	floor     uint8 // revisions ≤ floor evicted; the first retained is floor+1
	applied   [fleetMaxN]uint8
	exp       [fleetMaxN]exporter
	payload   artifact // legacy payload register
	manifest  artifact // legacy manifest register / shipped pointer
	uploaded  uint64   // shipped: payloads present in the store, by artifact bit
	regressed bool     // latched: a publish moved the pointer's cursor down
	refused   bool     // latched: the swap refused an older publish
	imp       importer
}

// keyPresentAt reports whether the sentinel key exists at revision c.
func (s *fleetState) keyPresentAt(c uint8) bool { return s.deleteRev == 0 || c < s.deleteRev }

// held is the artifact the importer holds (read, installed or resumed).
func (s *fleetState) held() artifact {
	switch s.imp.kind {
	case gotManifest, imported, resumed:
		return s.imp.art
	}
	return 0
}

// installed is the artifact the importer's fold holds, if it imported one.
func (s *fleetState) installed() artifact {
	switch s.imp.kind {
	case imported, resumed:
		return s.imp.art
	}
	return 0
}

func (e exporter) String() string {
	switch e.kind {
	case exported, payloadUp:
		name := "Exported"
		if e.kind == payloadUp {
			name = "PayloadUp"
		}
		k := "-key"
		if e.hasKey {
			k = "+key"
		}
		return fmt.Sprintf("%s(@%d%s)", name, e.cursor, k)
	case done:
		return fmt.Sprintf("Done(%d)", e.cursor)
	}
	return "Idle"
}

func (i importer) String() string {
	switch i.kind {
	case gotManifest:
		return fmt.Sprintf("GotManifest(%v)", i.art)
	case imported:
		return fmt.Sprintf("Imported(%v)", i.art)
	case crossCheckFailed:
		return "CrossCheckFailed"
	case fetchMissed:
		return "FetchMissed"
	case resumed:
		if i.stale {
			return fmt.Sprintf("Resumed(%v, StaleKey)", i.art)
		}
		return fmt.Sprintf("Resumed(%v, Synced)", i.art)
	}
	return "Start"
}

// format renders a state of this configuration for traces.
func (c *fleetConfig) format(s fleetState) string {
	var b strings.Builder
	del := "-"
	if s.deleteRev != 0 {
		del = fmt.Sprint(s.deleteRev)
	}
	fmt.Fprintf(&b, "head=%d del=%s floor=%d applied=%v exporters=%v pointer=%v",
		s.head, del, s.floor, s.applied[:c.n], s.exp[:c.n], s.manifest)
	if c.layout == legacy {
		fmt.Fprintf(&b, " payload=%v", s.payload)
	} else {
		var up []string
		for a := artifact(1); a <= 48; a++ {
			if s.uploaded&a.bit() != 0 {
				up = append(up, a.String())
			}
		}
		fmt.Fprintf(&b, " uploaded={%s}", strings.Join(up, " "))
	}
	fmt.Fprintf(&b, " importer=%v", s.imp)
	if s.regressed {
		b.WriteString(" REGRESSED")
	}
	if s.refused {
		b.WriteString(" refused")
	}
	return b.String()
}

// pack encodes a state into two words (word 0: everything but the
// uploaded set; word 1: the uploaded set).
func packFleet(s fleetState) key {
	w := uint64(s.head) | uint64(s.deleteRev)<<3 | uint64(s.floor)<<6
	for i := range fleetMaxN {
		w |= uint64(s.applied[i]) << (9 + 3*i)
		e := s.exp[i]
		v := uint64(e.kind) | uint64(e.cursor)<<2
		if e.hasKey {
			v |= 1 << 5
		}
		w |= v << (18 + 6*i)
	}
	w |= uint64(s.manifest)<<36 | uint64(s.payload)<<42
	if s.regressed {
		w |= 1 << 48
	}
	if s.refused {
		w |= 1 << 49
	}
	w |= uint64(s.imp.kind)<<50 | uint64(s.imp.art)<<53
	if s.imp.stale {
		w |= 1 << 59
	}
	return key{w, s.uploaded}
}

func unpackFleet(k key) fleetState {
	w := k[0]
	s := fleetState{
		head:      uint8(w & 7),
		deleteRev: uint8(w >> 3 & 7),
		floor:     uint8(w >> 6 & 7),
		manifest:  artifact(w >> 36 & 63),
		payload:   artifact(w >> 42 & 63),
		regressed: w>>48&1 == 1,
		refused:   w>>49&1 == 1,
		imp:       importer{kind: impKind(w >> 50 & 7), art: artifact(w >> 53 & 63), stale: w>>59&1 == 1},
		uploaded:  k[1],
	}
	for i := range fleetMaxN {
		s.applied[i] = uint8(w >> (9 + 3*i) & 7)
		v := w >> (18 + 6*i) & 63
		s.exp[i] = exporter{kind: expKind(v & 3), cursor: uint8(v >> 2 & 7), hasKey: v>>5&1 == 1}
	}
	return s
}

// Actions: the global ones, then six per node.
const (
	actChurn = iota
	actDeleteKey
	actCompact
	actPrune
	actReadManifest
	actReadPayload
	actRetry
	actResume
	actResumeResyncDegraded
	actPerNode // first per-node action
)

const (
	actApply = iota
	actExport
	actUploadPayload
	actPublish
	actCrash
	actNextRound
	perNodeActions
)

var (
	globalActionNames  = [...]string{"Churn", "DeleteKey", "Compact", "Prune", "ReadManifest", "ReadPayload", "Retry", "Resume", "ResumeResyncDegraded"}
	perNodeActionNames = [...]string{"Apply", "Export", "UploadPayload", "Publish", "Crash", "NextRound"}
)

func fleetActionName(act int) string {
	if act < actPerNode {
		return globalActionNames[act]
	}
	act -= actPerNode
	return fmt.Sprintf("%s(%d)", perNodeActionNames[act%perNodeActions], act/perNodeActions)
}

// prunable is the prune rule under the configuration: PayloadPrunable with
// zero grace (every payload is aged out), or the mutation's age-only rule.
func (c *fleetConfig) prunable(a, pointer artifact) bool {
	if c.mutation == pruneAgeOnly {
		return a != pointer
	}
	rank := uint64(a.cursor())
	return protocol.PayloadPrunable(&rank, uint64(pointer.cursor()), a == pointer, true)
}

// relistOnly is the outcome of a resume that re-lists without a resync: the
// watch reads from max(ResumeStart(cursor), floor+1), so a delete marker at
// or below the floor is never seen and a fold that held the key keeps it.
func relistOnly(s *fleetState, a artifact) (stale bool) {
	start, ok := protocol.ResumeStart(uint64(a.cursor()))
	if !ok {
		panic("cursor at MaxUint64")
	}
	from := max(start, uint64(s.floor)+1)
	markerSeen := s.deleteRev != 0 && uint64(s.deleteRev) >= from
	return a.hasKey() && s.deleteRev != 0 && !markerSeen
}

// successors emits every enabled action's successor of s.
func (c *fleetConfig) successors(s fleetState, emit func(act int, next fleetState)) {
	maxRev := uint8(c.maxRev)
	if s.head < maxRev {
		n := s
		n.head++
		emit(actChurn, n)
		if s.deleteRev == 0 {
			n.deleteRev = n.head
			emit(actDeleteKey, n)
		}
	}
	if s.floor < s.head {
		n := s
		n.floor++
		emit(actCompact, n)
	}
	if c.layout == shipped && s.manifest != 0 && s.uploaded != 0 {
		n, any := s, false
		for up := s.uploaded; up != 0; up &= up - 1 {
			a := artifact(bits.TrailingZeros64(up) + 1)
			if c.prunable(a, s.manifest) {
				n.uploaded &^= a.bit()
				any = true
			}
		}
		if any {
			emit(actPrune, n)
		}
	}
	c.importerSuccessors(s, emit)
	for i := range c.n {
		c.exporterSuccessors(s, i, emit)
	}
}

func (c *fleetConfig) importerSuccessors(s fleetState, emit func(int, fleetState)) {
	n := s
	switch s.imp.kind {
	case impStart:
		if s.manifest != 0 {
			n.imp = importer{kind: gotManifest, art: s.manifest}
			emit(actReadManifest, n)
		}
	case gotManifest:
		m := s.imp.art
		switch {
		case c.layout == shipped && s.uploaded&m.bit() != 0,
			c.layout == legacy && s.payload == m:
			n.imp = importer{kind: imported, art: m}
		case c.layout == shipped:
			n.imp = importer{kind: fetchMissed}
		case c.mutation == noCrossCheck:
			// The payload's content installed under the manifest's cursor.
			n.imp = importer{kind: imported, art: mkArtifact(s.payload.node(), m.cursor(), s.payload.hasKey())}
		default:
			n.imp = importer{kind: crossCheckFailed}
		}
		emit(actReadPayload, n)
	case crossCheckFailed, fetchMissed:
		n.imp = importer{kind: impStart}
		emit(actRetry, n)
	case imported:
		a := s.imp.art
		windowOK := protocol.ResumeWindowOK(uint64(a.cursor()), uint64(s.floor)+1)
		var stale bool
		switch {
		case windowOK:
		case c.mutation == silentClamp:
			stale = relistOnly(&s, a)
		case c.resync != noResync:
			// Expiry detected; the resync from a live listing converges.
		default:
			stale = relistOnly(&s, a)
		}
		n.imp = importer{kind: resumed, art: a, stale: stale}
		emit(actResume, n)
		if c.resync == degrade && !windowOK {
			n.imp.stale = relistOnly(&s, a)
			emit(actResumeResyncDegraded, n)
		}
	}
}

func (c *fleetConfig) exporterSuccessors(s fleetState, i int, emit func(int, fleetState)) {
	base := actPerNode + i*perNodeActions
	node := uint8(i)
	e := s.exp[i]
	if s.applied[i] < s.head {
		n := s
		n.applied[i]++
		emit(base+actApply, n)
	}
	switch e.kind {
	case idle:
		if cur := s.applied[i]; cur >= 1 {
			n := s
			n.exp[i] = exporter{kind: exported, cursor: cur, hasKey: s.keyPresentAt(cur)}
			emit(base+actExport, n)
		}
	case exported:
		n := s
		a := mkArtifact(node, e.cursor, e.hasKey)
		if c.layout == shipped {
			n.uploaded |= a.bit()
		} else {
			n.payload = a
		}
		n.exp[i].kind = payloadUp
		emit(base+actUploadPayload, n)
	case payloadUp:
		n := s
		a := mkArtifact(node, e.cursor, e.hasKey)
		allowed := true
		if c.layout == shipped && c.mutation != lwwPointer {
			observed := protocol.Absent
			if s.manifest != 0 {
				observed = protocol.PointerAt(uint64(s.manifest.cursor()))
			}
			allowed = protocol.PointerPublishAllowed(observed, uint64(e.cursor))
		}
		if allowed {
			if s.manifest != 0 && s.manifest.cursor() > e.cursor {
				n.regressed = true
			}
			n.manifest = a
		} else {
			n.refused = true
		}
		n.exp[i] = exporter{kind: done, cursor: e.cursor}
		emit(base+actPublish, n)
	case done:
		if s.applied[i] > e.cursor {
			n := s
			n.exp[i] = exporter{}
			emit(base+actNextRound, n)
		}
	}
	if e.kind == exported || e.kind == payloadUp {
		n := s
		n.exp[i] = exporter{}
		emit(base+actCrash, n)
	}
}

// Property names (docs/MODEL.md, "Properties").
const (
	propNeverRegresses    = "published cursor never regresses"
	propMonotonePointer   = "monotone pointer: importer never observes a cursor drop"
	propNoCrossCheck      = "cross-check never fires (torn pair structurally impossible)"
	propTargetFetchable   = "pointer target always fetchable (write-once before publish)"
	propRefusesOlder      = "the swap refuses an older publish"
	propPruneRaceRetry    = "a prune racing a stale pointer read forces a detected retry"
	propFetchMissStale    = "a fetch miss only happens on a stale pointer read, never the current one"
	propRegression        = "regression reachable"
	propTornPair          = "torn pair reachable"
	propRegressionNonFat  = "regression is non-fatal: a post-regression bootstrap still converges"
	propNoMixedImport     = "no mixed import: an installed fold is one exporter's exported state"
	propNeverDiverges     = "bootstrap never silently diverges"
	propDivergence        = "silent divergence reachable"
	propBootstrapSynced   = "a bootstrap completes and resumes synced"
	propSecondRound       = "a publisher runs a second round against its own previous publish"
	propEveryRunCompletes = "every maximal run ends with a completed, synced bootstrap"
	propAlwaysRecoverable = "a completed, synced bootstrap stays reachable from every state"
)

func bootstrapSynced(s *fleetState) bool { return s.imp.kind == resumed && !s.imp.stale }

// fleetProps is the property set of a configuration. recoverability adds
// the recoverable property (exact tier only).
func (c *fleetConfig) props(recoverability bool) []prop[fleetState] {
	var ps []prop[fleetState]
	add := func(name string, kind propKind, pred func(s *fleetState) bool) {
		ps = append(ps, prop[fleetState]{name: name, kind: kind, state: func(s fleetState) bool { return pred(&s) }})
	}
	if c.layout == shipped {
		add(propNeverRegresses, always, func(s *fleetState) bool { return !s.regressed })
		add(propMonotonePointer, always, func(s *fleetState) bool {
			h := s.held()
			return h == 0 || h.cursor() <= s.manifest.cursor()
		})
		add(propNoCrossCheck, always, func(s *fleetState) bool { return s.imp.kind != crossCheckFailed })
		add(propTargetFetchable, always, func(s *fleetState) bool {
			return s.manifest == 0 || s.uploaded&s.manifest.bit() != 0
		})
		add(propRefusesOlder, sometimes, func(s *fleetState) bool { return s.refused })
		add(propPruneRaceRetry, sometimes, func(s *fleetState) bool { return s.imp.kind == fetchMissed })
		ps = append(ps, prop[fleetState]{name: propFetchMissStale, kind: alwaysStep,
			step: func(from fleetState, _ int, to fleetState) bool {
				missed := from.imp.kind == gotManifest && to.imp.kind == fetchMissed
				return !missed || from.imp.art != from.manifest
			}})
	} else {
		add(propRegression, sometimes, func(s *fleetState) bool { return s.regressed })
		add(propTornPair, sometimes, func(s *fleetState) bool { return s.imp.kind == crossCheckFailed })
		// The importer synced on the current manifest a, while some exporter's
		// latest publish has a higher cursor. Each artifact is published at most
		// once (a round exports a cursor above its previous publish), so a was
		// written after that higher one — the manifest regressed before the
		// importer read it.
		add(propRegressionNonFat, sometimes, func(s *fleetState) bool {
			if !s.regressed || !bootstrapSynced(s) || s.imp.art != s.manifest {
				return false
			}
			for i := range c.n {
				if e := s.exp[i]; e.kind == done && e.cursor > s.manifest.cursor() {
					return true
				}
			}
			return false
		})
	}
	add(propNoMixedImport, always, func(s *fleetState) bool {
		a := s.installed()
		return a == 0 || int(a.node()) < c.n && a.cursor() >= 1 && a.cursor() <= s.head && a.hasKey() == s.keyPresentAt(a.cursor())
	})
	if c.resync == failStop {
		add(propNeverDiverges, always, func(s *fleetState) bool { return !(s.imp.kind == resumed && s.imp.stale) })
	} else {
		add(propDivergence, sometimes, func(s *fleetState) bool { return s.imp.kind == resumed && s.imp.stale })
	}
	add(propBootstrapSynced, sometimes, bootstrapSynced)
	// A node is about to publish, in a later round, over its own earlier
	// publish (the pointer names it at a lower cursor).
	add(propSecondRound, sometimes, func(s *fleetState) bool {
		for i := range c.n {
			e := s.exp[i]
			if e.kind == payloadUp && s.manifest != 0 && int(s.manifest.node()) == i && s.manifest.cursor() < e.cursor {
				return true
			}
		}
		return false
	})
	if c.resync == failStop {
		add(propEveryRunCompletes, terminal, bootstrapSynced)
		if recoverability {
			add(propAlwaysRecoverable, recoverable, bootstrapSynced)
		}
	}
	return ps
}

func (c *fleetConfig) spec(recoverability bool) *modelSpec[fleetState] {
	if c.n < 1 || c.n > fleetMaxN || c.maxRev < 1 || c.maxRev > fleetMaxRev {
		panic(fmt.Sprintf("fleet model bounds: N=%d maxRev=%d", c.n, c.maxRev))
	}
	return &modelSpec[fleetState]{
		succ:    c.successors,
		actName: fleetActionName,
		pack:    packFleet,
		unpack:  unpackFleet,
		props:   c.props(recoverability),
	}
}
