package audit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/audit"
	"github.com/slipstream-kv/slipstream/memkv"
)

var _ audit.Bucket = (*memkv.KV)(nil)

// listing is a scripted bucket: the records it lists, in order, and the
// figures it returns.
type listing struct {
	records map[string][]slipstream.Update // by prefix
	last    uint64
	keys    map[string]uint64 // by prefix; absent: the distinct keys listed
	calls   []string
}

func (l *listing) Latest(_ context.Context, prefix string, fn func(slipstream.Update) error) (uint64, uint64, error) {
	l.calls = append(l.calls, prefix)
	distinct := map[string]bool{}
	for _, u := range l.records[prefix] {
		distinct[u.Key] = true
		if err := fn(u); err != nil {
			return 0, 0, err
		}
	}
	n, ok := l.keys[prefix]
	if !ok {
		n = uint64(len(distinct))
	}
	return l.last, n, nil
}

func head(op slipstream.Op, key string, rev uint64) slipstream.Update {
	return slipstream.Update{Op: op, Key: key, Version: slipstream.VersionFromUint64(rev)}
}

// newFold returns an applog fold holding the given puts (key → revision)
// at cursor.
func newFold(t *testing.T, cursor uint64, revs map[string]uint64) *applog.Store {
	t.Helper()
	st, err := applog.Open(t.TempDir(), &applog.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var batch []slipstream.Update
	for k, r := range revs {
		batch = append(batch, slipstream.Put(k, []byte(fmt.Sprintf("v%d", r)), slipstream.VersionFromUint64(r)))
	}
	if err := st.Apply(batch, slipstream.CursorFromUint64(cursor)); err != nil {
		t.Fatal(err)
	}
	return st
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// render lists divergences as "class key fold→server".
func render(ds []audit.Divergence) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s %s %d→%d", d.Class, d.Key, d.FoldRevision, d.ServerRevision))
	}
	return out
}

func TestClassification(t *testing.T) {
	put, del, purge := slipstream.OpPut, slipstream.OpDelete, slipstream.OpPurge
	const cursor = 10
	cases := []struct {
		name     string
		fold     map[string]uint64
		records  []slipstream.Update
		last     uint64
		want     []string
		inFlight int
		checked  int
	}{
		{name: "equal", fold: map[string]uint64{"a": 3, "b": 10}, records: []slipstream.Update{head(put, "a", 3), head(put, "b", 10)}, last: 10, checked: 2},
		{name: "deleted on the server", fold: map[string]uint64{"a": 3}, records: []slipstream.Update{head(del, "a", 7)}, last: 10,
			want: []string{"stale a 3→7"}, checked: 1},
		{name: "purged on the server", fold: map[string]uint64{"a": 3}, records: []slipstream.Update{head(purge, "a", 7)}, last: 10,
			want: []string{"stale a 3→7"}, checked: 1},
		{name: "gone from the server", fold: map[string]uint64{"a": 3, "b": 4}, records: []slipstream.Update{head(put, "b", 4)}, last: 10,
			want: []string{"stale a 3→0"}, checked: 2},
		{name: "absent from the fold", fold: map[string]uint64{}, records: []slipstream.Update{head(put, "a", 5)}, last: 10,
			want: []string{"missed a 0→5"}, checked: 1},
		{name: "older in the fold", fold: map[string]uint64{"a": 2}, records: []slipstream.Update{head(put, "a", 5)}, last: 10,
			want: []string{"missed a 2→5"}, checked: 1},
		{name: "server revision below the fold's", fold: map[string]uint64{"a": 8}, records: []slipstream.Update{head(put, "a", 5)}, last: 10,
			want: []string{"backwards a 8→5"}, checked: 1},
		{name: "server marker below the fold's put", fold: map[string]uint64{"a": 8}, records: []slipstream.Update{head(del, "a", 5)}, last: 10,
			want: []string{"backwards a 8→5"}, checked: 1},
		{name: "marker for a key the fold lacks", fold: map[string]uint64{}, records: []slipstream.Update{head(del, "a", 5)}, last: 10, checked: 1},
		{name: "in flight above the cursor", fold: map[string]uint64{"a": 3, "b": 4},
			records:  []slipstream.Update{head(put, "a", 11), head(del, "b", 12), head(put, "c", 13)},
			last:     13,
			inFlight: 3, checked: 3},
		{name: "fold cursor past the server's last sequence", fold: map[string]uint64{"a": 3}, records: []slipstream.Update{head(put, "a", 3)}, last: 4,
			want: []string{"backwards  10→4"}, checked: 1},
		{name: "listed twice: the newer record wins", fold: map[string]uint64{"a": 3},
			records: []slipstream.Update{head(put, "a", 3), head(put, "b", 5), head(put, "a", 11), head(put, "b", 12)},
			last:    10, inFlight: 2, checked: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fold := newFold(t, cursor, tc.fold)
			a := &audit.Auditor{Bucket: &listing{records: map[string][]slipstream.Update{"": tc.records}, last: tc.last}, Fold: fold, Logger: quiet()}
			rep, err := a.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := render(rep.Divergences); !slices.Equal(got, tc.want) {
				t.Fatalf("divergences %q, want %q", got, tc.want)
			}
			if rep.Equal() != (len(tc.want) == 0) || rep.InFlight != tc.inFlight || rep.Checked != tc.checked ||
				rep.FoldKeys != len(tc.fold) || rep.Cursor.Rank() != cursor || rep.ServerLast != tc.last {
				t.Fatalf("report %+v: want in flight %d, checked %d, fold keys %d", rep, tc.inFlight, tc.checked, len(tc.fold))
			}
			n := 0
			for _, c := range audit.Classes {
				n += rep.Count(c)
			}
			if n != len(tc.want) {
				t.Fatalf("counts by class sum to %d, want %d", n, len(tc.want))
			}
		})
	}
}

func TestScopeAndOverlappingPrefixes(t *testing.T) {
	fold := newFold(t, 10, map[string]uint64{"a.x": 1, "a.b.y": 2, "c.z": 3, "out.k": 4})
	l := &listing{records: map[string][]slipstream.Update{
		"a.": {head(slipstream.OpPut, "a.x", 1), head(slipstream.OpPut, "a.b.y", 5)},
		"c.": {head(slipstream.OpDelete, "c.z", 6)},
	}, last: 10}
	a := &audit.Auditor{Bucket: l, Fold: fold, Scope: slipstream.Prefixes("c.", "a.b.", "a."), Logger: quiet()}
	rep, err := a.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// a.b. is covered by a.: listed once. out.k is out of scope.
	if !slices.Equal(l.calls, []string{"a.", "c."}) {
		t.Fatalf("listed prefixes %q, want a. and c. once each", l.calls)
	}
	if got, want := render(rep.Divergences), []string{"missed a.b.y 2→5", "stale c.z 3→6"}; !slices.Equal(got, want) {
		t.Fatalf("divergences %q, want %q", got, want)
	}
	if !slices.Equal(rep.Keys(), []string{"a.b.y", "c.z"}) || rep.FoldKeys != 3 {
		t.Fatalf("keys %q, fold keys %d", rep.Keys(), rep.FoldKeys)
	}
	if _, err := (&audit.Auditor{Bucket: l, Fold: fold, Scope: slipstream.Prefix("a")}).Run(t.Context()); !errors.Is(err, slipstream.ErrInvalidScope) {
		t.Fatalf("unaligned prefix: %v, want ErrInvalidScope", err)
	}
	if _, err := (&audit.Auditor{Fold: fold}).Run(t.Context()); !errors.Is(err, audit.ErrInvalidConfig) {
		t.Fatalf("no bucket: %v, want ErrInvalidConfig", err)
	}
}

func TestShortListingIsAnError(t *testing.T) {
	fold := newFold(t, 10, map[string]uint64{"a": 1})
	l := &listing{records: map[string][]slipstream.Update{"": {head(slipstream.OpPut, "a", 1)}}, last: 10, keys: map[string]uint64{"": 2}}
	_, err := (&audit.Auditor{Bucket: l, Fold: fold}).Run(t.Context())
	if !errors.Is(err, audit.ErrIncomplete) {
		t.Fatalf("listing one key of two: %v, want ErrIncomplete", err)
	}
	failing := errors.New("listing failed")
	_, err = (&audit.Auditor{Bucket: bucketFunc(func(context.Context, string, func(slipstream.Update) error) (uint64, uint64, error) {
		return 0, 0, failing
	}), Fold: fold}).Run(t.Context())
	if !errors.Is(err, failing) {
		t.Fatalf("failing listing: %v", err)
	}
}

type bucketFunc func(context.Context, string, func(slipstream.Update) error) (uint64, uint64, error)

func (f bucketFunc) Latest(ctx context.Context, p string, fn func(slipstream.Update) error) (uint64, uint64, error) {
	return f(ctx, p, fn)
}

// TestBackwardsIsLoggedAtErrorWithEvidence: the finding is logged at Error
// level with the key and both revisions, and the cursor finding too.
func TestBackwardsIsLoggedAtErrorWithEvidence(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	fold := newFold(t, 10, map[string]uint64{"k": 9})
	l := &listing{records: map[string][]slipstream.Update{"": {head(slipstream.OpPut, "k", 4)}}, last: 6}
	rep, err := (&audit.Auditor{Bucket: l, Fold: fold, Logger: log}).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(audit.Backwards) != 2 || !rep.CursorAhead() {
		t.Fatalf("report %+v: want the key and the cursor finding", rep.Divergences)
	}
	out := buf.String()
	for _, want := range []string{"level=ERROR", "key=k", "fold_revision=9", "server_revision=4", "fold_cursor=10", "server_last=6"} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestIndexManyKeys exercises the index's growth and lookups past its
// initial size, with keys that share long prefixes.
func TestIndexManyKeys(t *testing.T) {
	const n = 20000
	revs := make(map[string]uint64, n)
	var records []slipstream.Update
	for i := range n {
		k := fmt.Sprintf("node.%06d", i)
		revs[k] = uint64(i + 1)
		switch i % 4 {
		case 0: // equal
			records = append(records, head(slipstream.OpPut, k, uint64(i+1)))
		case 1: // missed (newer on the server)
			records = append(records, head(slipstream.OpPut, k, uint64(i+2)))
		case 2: // stale (deleted)
			records = append(records, head(slipstream.OpDelete, k, uint64(i+2)))
		case 3: // gone: not listed
		}
	}
	fold := newFold(t, n+10, revs)
	rep, err := (&audit.Auditor{Bucket: &listing{records: map[string][]slipstream.Update{"": records}, last: n + 10}, Fold: fold}).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(audit.Missed) != n/4 || rep.Count(audit.Stale) != n/2 || rep.Checked != n {
		t.Fatalf("missed %d stale %d checked %d, want %d, %d, %d", rep.Count(audit.Missed), rep.Count(audit.Stale), rep.Checked, n/4, n/2, n)
	}
	keys := rep.Keys()
	if !slices.IsSorted(keys) || len(keys) != 3*n/4 {
		t.Fatalf("%d keys, sorted %v", len(keys), slices.IsSorted(keys))
	}
}
