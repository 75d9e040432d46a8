package audit

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/slipstream-kv/slipstream"
)

// Bucket is the server side of an audit: a headers-only listing of every
// key's latest record. *natskv.Bucket and *memkv.KV implement it.
//
// Latest calls fn with the latest record of every key under prefix (delete
// and purge markers included; Value may be nil), possibly more than once for
// a key written during the listing (newer last), and returns the bucket's
// last revision read before the listing started and the number of keys
// under prefix holding any record, by the bucket's own count.
type Bucket interface {
	Latest(ctx context.Context, prefix string, fn func(slipstream.Update) error) (last, keys uint64, err error)
}

// Fold is the local side of an audit; every slipstream.Store implements it.
// ForEachInRange must yield each key at most once per call, in ascending
// order, and may run beside a writer.
type Fold interface {
	ForEachInRange(prefix string, fn func(slipstream.Entry) error) error
	Cursor() slipstream.Cursor
}

// Class is the kind of a [Divergence].
type Class uint8

const (
	// Stale: the fold holds a key the server no longer holds, or holds
	// deleted, at a revision the fold's cursor covers.
	Stale Class = iota + 1
	// Missed: the server holds a value, at a revision the fold's cursor
	// covers, that the fold lacks or holds at an older revision.
	Missed
	// Backwards: the server's revision for a key is below the fold's (the
	// server lost a write the fold applied), or the fold's cursor is past
	// the server's last sequence.
	Backwards
)

// Classes lists every class, in order.
var Classes = [...]Class{Stale, Missed, Backwards}

// String returns "stale", "missed" or "backwards".
func (c Class) String() string {
	switch c {
	case Stale:
		return "stale"
	case Missed:
		return "missed"
	case Backwards:
		return "backwards"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Divergence is one difference between a fold and its bucket.
type Divergence struct {
	Class Class
	// Key is the divergent key; empty for the cursor finding (a Backwards
	// divergence whose FoldRevision is the fold's cursor and
	// ServerRevision the server's last sequence).
	Key string
	// FoldRevision is the fold's revision of the key; 0 when the fold does
	// not hold it (or holds it at an unknown version).
	FoldRevision uint64
	// ServerRevision is the revision of the server's latest record of the
	// key; 0 when the server holds none.
	ServerRevision uint64
	// ServerOp is the operation of that record (0 when there is none): a
	// Stale key whose ServerOp is OpDelete or OpPurge was deleted, one
	// without a record is gone.
	ServerOp slipstream.Op
}

// Report is the outcome of one audit.
type Report struct {
	Scope slipstream.Scope
	// Cursor is the fold's cursor the comparison ran against.
	Cursor slipstream.Cursor
	// ServerLast is the bucket's last revision, read before the listing.
	ServerLast uint64
	// FoldKeys is the number of keys the fold holds in scope.
	FoldKeys int
	// Checked is the number of distinct keys compared: the fold's, and
	// those only the server holds.
	Checked int
	// InFlight is the number of server records above Cursor, ignored: the
	// watch delivers them.
	InFlight int
	// Divergences are sorted by key (the cursor finding, with an empty key,
	// first).
	Divergences []Divergence
	Started     time.Time
	Duration    time.Duration
}

// Equal reports whether the audit found no divergence.
func (r Report) Equal() bool { return len(r.Divergences) == 0 }

// Count returns the number of divergences of class c.
func (r Report) Count(c Class) int {
	n := 0
	for _, d := range r.Divergences {
		if d.Class == c {
			n++
		}
	}
	return n
}

// Keys returns the divergent keys, sorted, without the cursor finding's
// empty key.
func (r Report) Keys() []string {
	keys := make([]string, 0, len(r.Divergences))
	for _, d := range r.Divergences {
		if d.Key != "" {
			keys = append(keys, d.Key)
		}
	}
	return keys
}

// CursorAhead reports whether the fold's cursor was past the server's last
// sequence: the bucket was recreated, or restored from an older copy.
func (r Report) CursorAhead() bool {
	return len(r.Divergences) > 0 && r.Divergences[0].Key == "" && r.Divergences[0].Class == Backwards
}

// maxLogged bounds the backwards findings logged one by one.
const maxLogged = 20

// Auditor compares a fold with its bucket. Configure it through its fields
// and call [Auditor.Run]; it may be run any number of times, one at a time.
type Auditor struct {
	// Bucket lists the server's latest records. Required.
	Bucket Bucket
	// Fold is the fold to check. Required.
	Fold Fold
	// Scope is the fold's scope; the zero Scope is all keys. Prefixes must
	// be token-aligned.
	Scope slipstream.Scope
	// Logger receives the backwards findings at Error level; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Run audits the fold once: it reads the fold's cursor, indexes the fold's
// keys and versions under the scope, lists the bucket's latest records under
// the scope (headers only) and classifies every difference. It logs each
// backwards finding at Error level with its evidence (the first few one by
// one, then a count).
//
// Run returns an error wrapping [ErrIncomplete] when the bucket listed fewer
// distinct keys than it counts, ErrInvalidConfig for a missing Bucket or
// Fold, slipstream.ErrInvalidScope for a misaligned prefix, and the fold's or
// the bucket's errors otherwise. An error means no report.
func (a *Auditor) Run(ctx context.Context) (Report, error) {
	if a.Bucket == nil || a.Fold == nil {
		return Report{}, fmt.Errorf("%w: Bucket and Fold are required", ErrInvalidConfig)
	}
	prefixes, err := listPrefixes(a.Scope)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Scope: a.Scope, Started: time.Now()}
	// The cursor first, then the fold, then the bucket: a key that changes
	// meanwhile is above the cursor on the server, never a divergence.
	rep.Cursor = a.Fold.Cursor()
	cur := rep.Cursor.Rank()
	idx := newIndex()
	for _, p := range prefixes {
		err := a.Fold.ForEachInRange(p, func(e slipstream.Entry) error {
			rev, _ := e.Version.Uint64() // 0 for an unknown version: older than any
			return idx.insert(e.Key, rev)
		})
		if err != nil {
			return Report{}, fmt.Errorf("audit: read fold under %q: %w", p, err)
		}
	}
	rep.FoldKeys = idx.len()

	c := &comparison{idx: idx, cursor: cur, other: map[string]head{}}
	var want uint64
	for i, p := range prefixes {
		last, keys, err := a.Bucket.Latest(ctx, p, c.record)
		if err != nil {
			return Report{}, fmt.Errorf("audit: list bucket under %q: %w", p, err)
		}
		if i == 0 {
			rep.ServerLast = last
		}
		want += keys
	}
	if got := c.distinct(); got < want {
		return Report{}, fmt.Errorf("%w: the bucket listed %d distinct keys and counts %d", ErrIncomplete, got, want)
	}
	rep.Divergences, rep.InFlight = c.classify()
	rep.Checked = idx.len() + len(c.other) + c.newInFlight
	if cur > rep.ServerLast {
		rep.Divergences = append(rep.Divergences, Divergence{Class: Backwards, FoldRevision: cur, ServerRevision: rep.ServerLast})
	}
	slices.SortFunc(rep.Divergences, func(x, y Divergence) int { return strings.Compare(x.Key, y.Key) })
	rep.Duration = time.Since(rep.Started)
	a.logBackwards(ctx, rep)
	return rep, nil
}

func (a *Auditor) logBackwards(ctx context.Context, rep Report) {
	n := rep.Count(Backwards)
	if n == 0 {
		return
	}
	log := a.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With(slipstream.LogKeyComponent, "audit")
	logged := 0
	for _, d := range rep.Divergences {
		if d.Class != Backwards || logged == maxLogged {
			continue
		}
		logged++
		if d.Key == "" {
			log.ErrorContext(ctx, "audit: the fold's cursor is past the server's last sequence (bucket recreated or restored from an older copy)",
				"fold_cursor", d.FoldRevision, "server_last", d.ServerRevision)
			continue
		}
		log.ErrorContext(ctx, "audit: the server's revision of a key went backwards (the server lost a write the fold applied)",
			"key", d.Key, "fold_revision", d.FoldRevision, "server_revision", d.ServerRevision, "server_op", d.ServerOp.String())
	}
	if n > logged {
		log.ErrorContext(ctx, "audit: more backwards findings not logged one by one", "count", n-logged)
	}
}

// listPrefixes returns the scope's prefixes without overlaps: a
// token-aligned prefix covers every longer one starting with it, and a key
// listed under two prefixes would be counted twice.
func listPrefixes(scope slipstream.Scope) ([]string, error) {
	if err := scope.Validate(); err != nil {
		return nil, err
	}
	ps := scope.List()
	if slices.Contains(ps, "") {
		return []string{""}, nil
	}
	slices.Sort(ps)
	ps = slices.Compact(ps)
	out := ps[:0]
	for _, p := range ps {
		if len(out) == 0 || !strings.HasPrefix(p, out[len(out)-1]) {
			out = append(out, p)
		}
	}
	return out, nil
}

// head is the newest server record seen for a key the fold does not hold.
type head struct {
	rev uint64
	op  slipstream.Op
}

// comparison accumulates one bucket listing against the fold's index. Its
// record method is called from one goroutine at a time.
type comparison struct {
	idx    *index
	cursor uint64
	// other holds the keys the fold lacks whose first record was at or
	// below the cursor: missed candidates, a subset of the divergences.
	other map[string]head
	// newInFlight counts records above the cursor of keys the fold lacks,
	// not deduplicated (that would take a set of the bucket's new keys).
	newInFlight int
	seen        int // fold keys the listing reported
}

func (c *comparison) record(u slipstream.Update) error {
	rev, ok := u.Version.Uint64()
	if !ok || rev == 0 {
		// A record whose revision could not be read cannot be compared:
		// counted as in flight.
		rev = ^uint64(0)
	}
	if i := c.idx.lookup(u.Key); i >= 0 {
		if c.idx.op[i] == 0 {
			c.seen++
		}
		if c.idx.op[i] == 0 || rev >= c.idx.srv[i] {
			c.idx.srv[i], c.idx.op[i] = rev, u.Op
		}
		return nil
	}
	if h, ok := c.other[u.Key]; ok {
		if rev >= h.rev {
			c.other[u.Key] = head{rev, u.Op}
		}
		return nil
	}
	if rev > c.cursor {
		c.newInFlight++
		return nil
	}
	c.other[u.Key] = head{rev, u.Op}
	return nil
}

// distinct is the number of distinct keys listed (an overestimate only by
// new keys written twice during the listing).
func (c *comparison) distinct() uint64 {
	return uint64(c.seen + len(c.other) + c.newInFlight)
}

// classify turns the accumulated listing into divergences.
func (c *comparison) classify() (divs []Divergence, inFlight int) {
	x := c.idx
	for i := range x.len() {
		fv, sr, op := x.fold[i], x.srv[i], x.op[i]
		d := Divergence{Key: x.key(i), FoldRevision: fv, ServerRevision: sr, ServerOp: op}
		switch {
		case op == 0: // no record on the server
			d.Class = Stale
		case sr > c.cursor:
			inFlight++
			continue
		case fv == sr:
			if op == slipstream.OpPut {
				continue
			}
			d.Class = Stale // a marker at the fold's own revision: corrupt, but stale
		case fv > sr:
			d.Class = Backwards
		case op == slipstream.OpPut:
			d.Class = Missed
		default:
			d.Class = Stale
		}
		divs = append(divs, d)
	}
	for k, h := range c.other {
		switch {
		case h.rev > c.cursor:
			inFlight++
		case h.op == slipstream.OpPut:
			divs = append(divs, Divergence{Class: Missed, Key: k, ServerRevision: h.rev, ServerOp: h.op})
		}
	}
	return divs, inFlight + c.newInFlight
}
