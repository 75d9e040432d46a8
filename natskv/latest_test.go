package natskv_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// latest collects a Latest listing by key (the newest record wins).
func latest(t *testing.T, b *natskv.Bucket, prefix string) (map[string]slipstream.Update, uint64, uint64) {
	t.Helper()
	got := map[string]slipstream.Update{}
	last, keys, err := b.Latest(t.Context(), prefix, func(u slipstream.Update) error {
		if u.Value != nil {
			t.Errorf("Latest gave %s a value %q: it must list headers only", u.Key, u.Value)
		}
		if old, ok := got[u.Key]; !ok || rev(old) < rev(u) {
			got[u.Key] = u
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Latest(%q): %v", prefix, err)
	}
	return got, last, keys
}

func TestLatestListsEveryKeysLastRecordHeadersOnly(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	b := e.open(t, natskv.Config{Bucket: "latest", History: 5})
	put(t, b, "a.put", "1")
	putRev := put(t, b, "a.put", "2")
	put(t, b, "a.del", "1")
	if _, err := b.Delete(ctx, "a.del"); err != nil {
		t.Fatal(err)
	}
	delRev := put(t, b, "b.x", "1") - 1
	put(t, b, "a.purged", "1")
	if _, err := b.Purge(ctx, "a.purged"); err != nil {
		t.Fatal(err)
	}
	purgeRev := e.streamInfo(t, "latest").State.LastSeq
	tomb := put(t, b, "a.tomb", "1")
	if _, err := b.DeleteWithVersion(ctx, "a.tomb", tomb); err != nil {
		t.Fatal(err)
	}
	tombRev := e.streamInfo(t, "latest").State.LastSeq

	got, last, keys := latest(t, b, "")
	if last != tombRev || keys != 5 || len(got) != 5 {
		t.Fatalf("Latest = %d records, last %d, keys %d; want 5, %d, 5", len(got), last, keys, tombRev)
	}
	want := map[string]struct {
		op  slipstream.Op
		rev uint64
	}{
		"a.put":    {slipstream.OpPut, putRev},
		"a.del":    {slipstream.OpDelete, delRev},
		"a.purged": {slipstream.OpPurge, purgeRev},
		"a.tomb":   {slipstream.OpPut, tombRev}, // an empty CAS tombstone is a put
		"b.x":      {slipstream.OpPut, delRev + 1},
	}
	for k, w := range want {
		if u := got[k]; u.Op != w.op || rev(u) != w.rev {
			t.Errorf("%s: %s@%d, want %s@%d", k, u.Op, rev(u), w.op, w.rev)
		}
	}
	sub, _, keys := latest(t, b, "b.")
	if len(sub) != 1 || keys != 1 || sub["b.x"].Op != slipstream.OpPut {
		t.Fatalf("Latest(b.) = %v (keys %d), want b.x only", sub, keys)
	}
	if _, _, err := b.Latest(ctx, "b", func(slipstream.Update) error { return nil }); !errors.Is(err, slipstream.ErrInvalidScope) {
		t.Fatalf("Latest(unaligned prefix) = %v, want ErrInvalidScope", err)
	}
	stop := errors.New("stop")
	if _, _, err := b.Latest(ctx, "", func(slipstream.Update) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Latest with a failing fn = %v, want its error", err)
	}
}

func TestLatestTTLMarker(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "latestttl", AllowTTL: true, LimitMarkerTTL: time.Hour})
	r, err := b.PutTTL(t.Context(), "k", []byte("v"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "TTL marker written", func() bool {
		return e.streamInfo(t, "latestttl").State.LastSeq > r
	})
	got, _, _ := latest(t, b, "")
	if u := got["k"]; u.Op != slipstream.OpPurge || rev(u) != r+1 {
		t.Fatalf("Latest after a TTL expiry: %s@%d, want purge@%d", u.Op, rev(u), r+1)
	}
}

func TestLatestShortListing(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "latestshort"})
	for i := range 10 {
		put(t, b, keyN("k", i), "1")
	}
	natskv.SetDropListed(b, func(key string) bool { return key == "k3" })
	seen := 0
	_, _, err := b.Latest(t.Context(), "", func(slipstream.Update) error { seen++; return nil })
	if !errors.Is(err, natskv.ErrShortListing) || !errors.Is(err, slipstream.ErrOperationFailed) {
		t.Fatalf("Latest with a dropped record = %v, want ErrShortListing", err)
	}
	if seen != 3*9 {
		t.Fatalf("fn saw %d records, want 9 in each of 3 attempts", seen)
	}
	// A record lost once only: the retry completes the listing.
	var dropped sync.Once
	natskv.SetDropListed(b, func(key string) bool {
		drop := false
		if key == "k3" {
			dropped.Do(func() { drop = true })
		}
		return drop
	})
	got := map[string]bool{}
	_, keys, err := b.Latest(t.Context(), "", func(u slipstream.Update) error { got[u.Key] = true; return nil })
	if err != nil || keys != 10 || len(got) != 10 {
		t.Fatalf("Latest after a transient loss = %d keys seen, %d counted, %v", len(got), keys, err)
	}
}

// TestLatestStreamRecreatedDuringListing: a listing that straddles a
// delete and re-create of the bucket mixes two streams and must fail.
func TestLatestStreamRecreatedDuringListing(t *testing.T) {
	e := newEnv(t)
	cfg := natskv.Config{Bucket: "latestrecreated", Storage: natskv.MemoryStorage}
	b := e.open(t, cfg)
	for i := range 20 {
		put(t, b, keyN("k", i), "1")
	}
	var once sync.Once
	var recreateErr error
	_, _, err := b.Latest(t.Context(), "", func(slipstream.Update) error {
		once.Do(func() {
			if recreateErr = e.js.DeleteKeyValue(t.Context(), cfg.Bucket); recreateErr != nil {
				return
			}
			nb := e.open(t, cfg)
			for i := range 25 {
				put(t, nb, keyN("n", i), "1")
			}
		})
		return nil
	})
	if recreateErr != nil {
		t.Fatal(recreateErr)
	}
	if !errors.Is(err, natskv.ErrStreamRecreated) && !errors.Is(err, natskv.ErrShortListing) {
		t.Fatalf("Latest across a re-creation = %v, want ErrStreamRecreated (or a short listing)", err)
	}
	t.Logf("Latest across a re-creation: %v", err)
}

func TestLastRecordReadsMarkersWithTheirRevision(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	b := e.open(t, natskv.Config{Bucket: "lastrecord"})
	vr := put(t, b, "v", "value")
	tomb := put(t, b, "tomb", "1")
	if _, err := b.DeleteWithVersion(ctx, "tomb", tomb); err != nil {
		t.Fatal(err)
	}
	put(t, b, "del", "1")
	if _, err := b.Delete(ctx, "del"); err != nil {
		t.Fatal(err)
	}
	put(t, b, "purged", "1")
	if _, err := b.Purge(ctx, "purged"); err != nil {
		t.Fatal(err)
	}
	last := e.streamInfo(t, "lastrecord").State.LastSeq
	cases := []struct {
		key   string
		op    slipstream.Op
		value string
		rev   uint64
	}{
		{"v", slipstream.OpPut, "value", vr},
		{"tomb", slipstream.OpPut, "", tomb + 1},
		{"del", slipstream.OpDelete, "", last - 2},
		{"purged", slipstream.OpPurge, "", last},
	}
	for _, c := range cases {
		u, ok, err := b.LastRecord(ctx, c.key)
		if err != nil || !ok || u.Key != c.key || u.Op != c.op || string(u.Value) != c.value || rev(u) != c.rev {
			t.Errorf("LastRecord(%s) = %s %s=%q@%d %v %v; want %s %q@%d", c.key, u.Op, u.Key, u.Value, rev(u), ok, err, c.op, c.value, c.rev)
		}
	}
	if _, ok, err := b.LastRecord(ctx, "absent"); ok || err != nil {
		t.Fatalf("LastRecord(absent) = %v, %v; want false, nil", ok, err)
	}
	if _, _, err := b.LastRecord(ctx, "bad key"); !errors.Is(err, slipstream.ErrInvalidKey) {
		t.Fatalf("LastRecord(bad key) = %v, want ErrInvalidKey", err)
	}
}
