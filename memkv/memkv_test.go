package memkv_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/memkv"
)

func mustPut(t *testing.T, kv *memkv.KV, key, value string) uint64 {
	t.Helper()
	rev, err := kv.Put(t.Context(), key, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func TestRevisionsAreSequential(t *testing.T) {
	kv := memkv.New()
	ctx := t.Context()
	if kv.LastRevision() != 0 || kv.FirstRevision() != 1 {
		t.Fatalf("empty bucket: first %d last %d, want 1 and 0", kv.FirstRevision(), kv.LastRevision())
	}
	var revs []uint64
	for _, op := range []func() (uint64, error){
		func() (uint64, error) { return kv.Put(ctx, "a", []byte("1")) },
		func() (uint64, error) { return kv.Create(ctx, "b", []byte("2")) },
		func() (uint64, error) { return kv.Delete(ctx, "a") },
		func() (uint64, error) { return kv.Purge(ctx, "b") },
	} {
		rev, err := op()
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	if !slices.Equal(revs, []uint64{1, 2, 3, 4}) || kv.LastRevision() != 4 {
		t.Fatalf("revisions = %v (last %d), want 1..4", revs, kv.LastRevision())
	}
}

func TestCreate(t *testing.T) {
	ctx := t.Context()
	kv := memkv.New()
	rev, err := kv.Create(ctx, "k", []byte("1"))
	if err != nil {
		t.Fatalf("Create on an absent key: %v", err)
	}
	if _, err := kv.Create(ctx, "k", []byte("2")); !errors.Is(err, slipstream.ErrAlreadyExists) {
		t.Fatalf("Create on a live key = %v, want ErrAlreadyExists", err)
	}
	if _, err := kv.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "k", []byte("3")); err != nil {
		t.Fatalf("Create over a delete marker = %v, want success", err)
	}
	if _, err := kv.Purge(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	rev, err = kv.Create(ctx, "k", []byte("4"))
	if err != nil {
		t.Fatalf("Create over a purge marker = %v, want success", err)
	}
	if _, err := kv.DeleteWithVersion(ctx, "k", rev); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "k", []byte("5")); !errors.Is(err, slipstream.ErrAlreadyExists) {
		t.Fatalf("Create over a DeleteWithVersion tombstone = %v, want ErrAlreadyExists", err)
	}
	if _, ok, _ := kv.Get(ctx, "k"); ok {
		t.Fatal("Get shows the tombstone")
	}
}

func TestUpdateIsCompareAndSwap(t *testing.T) {
	ctx := t.Context()
	kv := memkv.New()
	r1 := mustPut(t, kv, "k", "1")
	r2, err := kv.Update(ctx, "k", []byte("2"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("Update at the current revision = %d, %v", r2, err)
	}
	if _, err := kv.Update(ctx, "k", []byte("3"), r1); !errors.Is(err, slipstream.ErrRevisionMismatch) {
		t.Fatalf("Update at a stale revision = %v, want ErrRevisionMismatch", err)
	}
	if _, err := kv.Update(ctx, "never", []byte("x"), 1); !errors.Is(err, slipstream.ErrRevisionMismatch) {
		t.Fatalf("Update of a key that never existed = %v, want ErrRevisionMismatch", err)
	}
	if _, err := kv.DeleteWithVersion(ctx, "never", 1); !errors.Is(err, slipstream.ErrRevisionMismatch) {
		t.Fatalf("DeleteWithVersion of a key that never existed = %v, want ErrRevisionMismatch", err)
	}
	if _, err := kv.DeleteWithVersion(ctx, "k", 999999); !errors.Is(err, slipstream.ErrRevisionMismatch) {
		t.Fatalf("DeleteWithVersion at a stale revision = %v, want ErrRevisionMismatch", err)
	}
	// A later write by someone else makes r2 stale too.
	mustPut(t, kv, "k", "other")
	if _, err := kv.Update(ctx, "k", []byte("4"), r2); !errors.Is(err, slipstream.ErrRevisionMismatch) {
		t.Fatalf("Update after a concurrent put = %v, want ErrRevisionMismatch", err)
	}
	e, ok, err := kv.Get(ctx, "k")
	if err != nil || !ok || string(e.Value) != "other" {
		t.Fatalf("Get = %+v, %v, %v", e, ok, err)
	}
}

func TestGetHidesEmptyValuesEntryShowsThem(t *testing.T) {
	ctx := t.Context()
	kv := memkv.New()
	mustPut(t, kv, "node.a", "1")
	r := mustPut(t, kv, "node.empty", "")
	rb := mustPut(t, kv, "node.b", "2")
	tomb, err := kv.DeleteWithVersion(ctx, "node.b", rb)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, kv, "node.c", "3")
	if _, err := kv.Delete(ctx, "node.c"); err != nil {
		t.Fatal(err)
	}

	for key, rev := range map[string]uint64{"node.empty": r, "node.b": tomb} {
		if _, ok, err := kv.Get(ctx, key); ok || err != nil {
			t.Fatalf("Get(%s) = present, %v; want absent", key, err)
		}
		e, ok, err := kv.Entry(ctx, key)
		if err != nil || !ok || len(e.Value) != 0 {
			t.Fatalf("Entry(%s) = %+v, %v, %v; want the empty value", key, e, ok, err)
		}
		if got, _ := e.Version.Uint64(); got != rev {
			t.Fatalf("Entry(%s) version = %d, want %d", key, got, rev)
		}
		// The tombstone's version is usable for CAS.
		if _, err := kv.Update(ctx, key, []byte("back"), rev); err != nil {
			t.Fatalf("Update(%s) at the tombstone's version: %v", key, err)
		}
	}
	if _, ok, _ := kv.Entry(ctx, "node.c"); ok {
		t.Fatal("Entry shows a key whose last record is a delete marker")
	}
	if _, ok, _ := kv.Entry(ctx, "missing"); ok {
		t.Fatal("Entry shows a missing key")
	}
}

func TestScanAndKeysExcludeMarkersAndEmptyValues(t *testing.T) {
	ctx := t.Context()
	kv := memkv.New()
	mustPut(t, kv, "node.a", "1")
	mustPut(t, kv, "node.a", "2")
	mustPut(t, kv, "node.b", "x")
	if _, err := kv.Delete(ctx, "node.b"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, kv, "node.e", "")
	mustPut(t, kv, "other.c", "3")
	var es []slipstream.Entry
	err := kv.Scan(ctx, "node.", func(e slipstream.Entry) error {
		es = append(es, e)
		return nil
	})
	if err != nil || len(es) != 1 || es[0].Key != "node.a" || string(es[0].Value) != "2" {
		t.Fatalf("Scan(node.) = %+v, %v; want [node.a=2]", es, err)
	}
	if rev, _ := es[0].Version.Uint64(); rev != 2 {
		t.Fatalf("Scan version = %d, want 2", rev)
	}
	keys, err := kv.Keys(ctx, "")
	if err != nil || !slices.Equal(keys, []string{"node.a", "other.c"}) {
		t.Fatalf("Keys() = %v, %v; want [node.a other.c]", keys, err)
	}
	if keys, _ := kv.Keys(ctx, "nothing."); len(keys) != 0 {
		t.Fatalf("Keys(nothing.) = %v", keys)
	}
}

func TestInvalidKeysAreRefused(t *testing.T) {
	ctx := t.Context()
	kv := memkv.New()
	for _, key := range []string{"", ".a", "a.", "a b", "a.*", "a.>"} {
		if _, err := kv.Put(ctx, key, []byte("v")); !errors.Is(err, slipstream.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if kv.LastRevision() != 0 {
		t.Fatal("a refused write consumed a revision")
	}
}

// watch runs kv.Watch on its own goroutine, collecting into a buffer.
type watch struct {
	cancel context.CancelFunc
	out    chan slipstream.Update
	done   chan error
}

func startWatch(t *testing.T, kv *memkv.KV, scope slipstream.Scope, after slipstream.Cursor) *watch {
	ctx, cancel := context.WithCancel(t.Context())
	w := &watch{cancel: cancel, out: make(chan slipstream.Update, 1024), done: make(chan error, 1)}
	go func() { w.done <- kv.Watch(ctx, scope, after, w.out) }()
	return w
}

// drain returns what the watch delivered so far (call after synctest.Wait).
func (w *watch) drain() []string {
	var got []string
	for {
		select {
		case u := <-w.out:
			rev, ok := u.Version.Uint64()
			if !ok {
				rev = 0
			}
			got = append(got, fmt.Sprintf("%s %s=%s@%d", u.Op, u.Key, u.Value, rev))
		default:
			return got
		}
	}
}

func (w *watch) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	if err := <-w.done; err != nil {
		t.Fatalf("Watch returned %v after cancel, want nil", err)
	}
}

func wantDelivered(t *testing.T, w *watch, want ...string) {
	t.Helper()
	synctest.Wait()
	if got := w.drain(); !slices.Equal(got, want) {
		t.Fatalf("delivered %q\nwant      %q", got, want)
	}
}

func TestWatchStateSyncReListThenLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		mustPut(t, kv, "a", "1")
		mustPut(t, kv, "b", "2")
		mustPut(t, kv, "a", "3")
		if _, err := kv.Delete(t.Context(), "b"); err != nil {
			t.Fatal(err)
		}
		mustPut(t, kv, "c", "5")
		w := startWatch(t, kv, slipstream.AllKeys(), slipstream.Cursor{})
		// Latest record per key (surviving markers included), in revision order.
		wantDelivered(t, w, "put a=3@3", "delete b=@4", "put c=5@5")
		mustPut(t, kv, "d", "6")
		if _, err := kv.Purge(t.Context(), "a"); err != nil {
			t.Fatal(err)
		}
		wantDelivered(t, w, "put d=6@6", "purge a=@7")
		w.stop(t)
	})
}

func TestWatchRevisionZeroCursorIsStateSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		mustPut(t, kv, "a", "1")
		mustPut(t, kv, "a", "2")
		for _, after := range []slipstream.Cursor{slipstream.CursorFromUint64(0), slipstream.CursorAt(mustVersion(t, []byte{1, 2, 3}))} {
			w := startWatch(t, kv, slipstream.AllKeys(), after)
			wantDelivered(t, w, "put a=2@2")
			w.stop(t)
		}
	})
}

func mustVersion(t *testing.T, b []byte) slipstream.Version {
	v, ok := slipstream.VersionFromBytes(b)
	if !ok {
		t.Fatal("bad version")
	}
	return v
}

func TestWatchResumeIsExclusiveOfTheCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		for i := range 5 {
			mustPut(t, kv, "k", fmt.Sprint(i+1))
		}
		w := startWatch(t, kv, slipstream.AllKeys(), slipstream.CursorFromUint64(2))
		wantDelivered(t, w, "put k=3@3", "put k=4@4", "put k=5@5")
		mustPut(t, kv, "k", "6")
		wantDelivered(t, w, "put k=6@6")
		w.stop(t)

		// Resuming at the last revision delivers nothing until a change.
		w = startWatch(t, kv, slipstream.AllKeys(), slipstream.CursorFromUint64(6))
		wantDelivered(t, w)
		mustPut(t, kv, "k", "7")
		wantDelivered(t, w, "put k=7@7")
		w.stop(t)
	})
}

func TestWatchScopes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		mustPut(t, kv, "vpcA.a", "1")
		mustPut(t, kv, "vpcB.b", "2")
		mustPut(t, kv, "vpcC.x", "3")
		pw := startWatch(t, kv, slipstream.Prefix("vpcA."), slipstream.Cursor{})
		mw := startWatch(t, kv, slipstream.Prefixes("vpcA.", "vpcB."), slipstream.Cursor{})
		rw := startWatch(t, kv, slipstream.Prefixes("vpcA.", "vpcB."), slipstream.CursorFromUint64(1))
		wantDelivered(t, pw, "put vpcA.a=1@1")
		wantDelivered(t, mw, "put vpcA.a=1@1", "put vpcB.b=2@2")
		wantDelivered(t, rw, "put vpcB.b=2@2")
		mustPut(t, kv, "vpcC.y", "4")
		mustPut(t, kv, "vpcA.a2", "5")
		wantDelivered(t, pw, "put vpcA.a2=5@5")
		wantDelivered(t, mw, "put vpcA.a2=5@5")
		wantDelivered(t, rw, "put vpcA.a2=5@5")
		pw.stop(t)
		mw.stop(t)
		rw.stop(t)
	})
}

func TestWatchRefusesUnalignedPrefix(t *testing.T) {
	kv := memkv.New()
	err := kv.Watch(t.Context(), slipstream.Prefix("node"), slipstream.Cursor{}, make(chan slipstream.Update))
	if !errors.Is(err, slipstream.ErrInvalidScope) {
		t.Fatalf("Watch(prefix node) = %v, want ErrInvalidScope", err)
	}
}

func TestWatchEmptyPrefixesReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		mustPut(t, kv, "a.b", "1")
		for _, after := range []slipstream.Cursor{{}, slipstream.CursorFromUint64(1)} {
			if err := kv.Watch(t.Context(), slipstream.Prefixes(), after, make(chan slipstream.Update)); err != nil {
				t.Fatalf("Watch(no prefixes) = %v, want nil at once", err)
			}
		}
	})
}

func TestWatchCompactExpiresCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		for i := range 5 {
			mustPut(t, kv, fmt.Sprintf("k%d", i), "v")
		}
		kv.Compact(3)
		if kv.FirstRevision() != 4 {
			t.Fatalf("first revision after Compact(3) = %d, want 4", kv.FirstRevision())
		}
		for _, rev := range []uint64{1, 2} {
			err := kv.Watch(t.Context(), slipstream.AllKeys(), slipstream.CursorFromUint64(rev), make(chan slipstream.Update, 8))
			if !errors.Is(err, slipstream.ErrCursorExpired) {
				t.Fatalf("resume after %d with first revision 4 = %v, want ErrCursorExpired", rev, err)
			}
		}
		// Cursor 3 reads 4 onward: the window is intact.
		w := startWatch(t, kv, slipstream.AllKeys(), slipstream.CursorFromUint64(3))
		wantDelivered(t, w, "put k3=v@4", "put k4=v@5")
		w.stop(t)
		// A state-sync watch only re-lists what is retained.
		w = startWatch(t, kv, slipstream.AllKeys(), slipstream.Cursor{})
		wantDelivered(t, w, "put k3=v@4", "put k4=v@5")
		w.stop(t)
		if keys, _ := kv.Keys(t.Context(), ""); !slices.Equal(keys, []string{"k3", "k4"}) {
			t.Fatalf("Keys after compaction = %v", keys)
		}
	})
}

func TestWatchCursorAheadOfLastExpires(t *testing.T) {
	kv := memkv.New()
	mustPut(t, kv, "a", "1")
	err := kv.Watch(t.Context(), slipstream.AllKeys(), slipstream.CursorFromUint64(7), make(chan slipstream.Update, 8))
	if !errors.Is(err, slipstream.ErrCursorExpired) {
		t.Fatalf("resume ahead of the last revision = %v, want ErrCursorExpired (bucket recreated)", err)
	}
}

func TestWatchMaxUint64CursorIsRefused(t *testing.T) {
	kv := memkv.New()
	mustPut(t, kv, "a", "1")
	err := kv.Watch(t.Context(), slipstream.AllKeys(), slipstream.CursorFromUint64(math.MaxUint64), make(chan slipstream.Update, 8))
	if !errors.Is(err, slipstream.ErrCursorOverflow) || errors.Is(err, slipstream.ErrCursorExpired) {
		t.Fatalf("resume after MaxUint64 = %v, want ErrCursorOverflow (never a wrap to a full replay)", err)
	}
}

func TestWatchLiveOverrunFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		mustPut(t, kv, "a", "1")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		out := make(chan slipstream.Update) // unbuffered: the watch blocks on every send
		done := make(chan error, 1)
		go func() { done <- kv.Watch(ctx, slipstream.AllKeys(), slipstream.Cursor{}, out) }()
		<-out // the re-list
		synctest.Wait()
		for range 600 {
			mustPut(t, kv, "b", "x")
		}
		synctest.Wait()
		<-out // the watch has now paged in part of the backlog
		kv.Compact(kv.LastRevision() - 1)
		var err error
	recv:
		for {
			select {
			case <-out:
			case err = <-done:
				break recv
			}
		}
		if !errors.Is(err, slipstream.ErrOverrun) {
			t.Fatalf("Watch = %v, want the live retention overrun", err)
		}
	})
}

func TestWatchReturnsNilOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		mustPut(t, kv, "a", "1")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- kv.Watch(ctx, slipstream.AllKeys(), slipstream.Cursor{}, make(chan slipstream.Update)) }()
		synctest.Wait() // blocked sending the re-list
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Watch = %v after cancel, want nil", err)
		}
	})
}

func TestPurgeRemovesHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		kv := memkv.New()
		mustPut(t, kv, "k", "1")
		mustPut(t, kv, "other", "x")
		mustPut(t, kv, "k", "2")
		rev, err := kv.Purge(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Purge(ctx, "absent"); err != nil {
			t.Fatalf("Purge of an absent key = %v, want nil (idempotent)", err)
		}
		if _, ok, _ := kv.Get(ctx, "k"); ok {
			t.Fatal("Get shows a purged key")
		}
		// A resume from before the purge no longer sees k's earlier values.
		w := startWatch(t, kv, slipstream.AllKeys(), slipstream.CursorFromUint64(0+1))
		wantDelivered(t, w, "put other=x@2", fmt.Sprintf("purge k=@%d", rev), "purge absent=@5")
		w.stop(t)
		if _, err := kv.Create(ctx, "k", []byte("3")); err != nil {
			t.Fatalf("Create after purge = %v", err)
		}
	})
}

func latestOf(t *testing.T, kv *memkv.KV, prefix string) ([]string, uint64, uint64) {
	t.Helper()
	var got []string
	last, keys, err := kv.Latest(t.Context(), prefix, func(u slipstream.Update) error {
		r, _ := u.Version.Uint64()
		got = append(got, fmt.Sprintf("%s %s=%s@%d", u.Op, u.Key, u.Value, r))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, last, keys
}

func TestLatestListsMarkersHeadersOnly(t *testing.T) {
	ctx := t.Context()
	kv := memkv.New()
	mustPut(t, kv, "a.x", "1")
	mustPut(t, kv, "a.x", "2")
	mustPut(t, kv, "a.gone", "1")
	if _, err := kv.Delete(ctx, "a.gone"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, kv, "b.y", "1")
	got, last, keys := latestOf(t, kv, "")
	want := []string{"delete a.gone=@4", "put a.x=@2", "put b.y=@5"}
	if !slices.Equal(got, want) || last != 5 || keys != 3 {
		t.Fatalf("Latest = %q (last %d, keys %d), want %q (5, 3)", got, last, keys, want)
	}
	if got, _, keys := latestOf(t, kv, "b."); !slices.Equal(got, want[2:]) || keys != 1 {
		t.Fatalf("Latest(b.) = %q (keys %d)", got, keys)
	}
	stop := errors.New("stop")
	if _, _, err := kv.Latest(ctx, "", func(slipstream.Update) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Latest with a failing fn = %v", err)
	}
}

// TestPurgeDeletesHidesDeleteFromResume: like a server's PurgeDeletes, the
// marker leaves the middle of the log and the first revision stays, so a
// resume from before it succeeds and never sees the delete.
func TestPurgeDeletesHidesDeleteFromResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		kv := memkv.New()
		mustPut(t, kv, "head", "1")
		mustPut(t, kv, "gone", "1")
		if _, err := kv.Delete(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		mustPut(t, kv, "y", "1")
		kv.PurgeDeletes()
		if kv.FirstRevision() != 1 {
			t.Fatalf("first revision %d after PurgeDeletes, want 1", kv.FirstRevision())
		}
		if got, _, keys := latestOf(t, kv, ""); !slices.Equal(got, []string{"put head=@1", "put y=@4"}) || keys != 2 {
			t.Fatalf("Latest after PurgeDeletes = %q", got)
		}
		w := startWatch(t, kv, slipstream.AllKeys(), slipstream.CursorFromUint64(2))
		wantDelivered(t, w, "put y=1@4")
		w.stop(t)
	})
}
