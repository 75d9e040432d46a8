package lease_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/lease"
	"github.com/slipstream-kv/slipstream/memkv"
)

var _ lease.KV = (*memkv.KV)(nil)

const key = "export.lease"

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func node(kv lease.KV, holder string) *lease.Lease {
	return &lease.Lease{KV: kv, Key: key, Holder: holder, Logger: quiet()}
}

func mustAcquire(t *testing.T, l *lease.Lease, ttl time.Duration) *lease.Guard {
	t.Helper()
	g, err := l.TryAcquire(t.Context(), ttl)
	if err != nil {
		t.Fatalf("%s TryAcquire: %v", l.Holder, err)
	}
	if g == nil {
		t.Fatalf("%s did not win the lease", l.Holder)
	}
	return g
}

func mustLose(t *testing.T, l *lease.Lease, ttl time.Duration) {
	t.Helper()
	g, err := l.TryAcquire(t.Context(), ttl)
	if err != nil {
		t.Fatalf("%s TryAcquire: %v", l.Holder, err)
	}
	if g != nil {
		t.Fatalf("%s won a lease that is held: %+v", l.Holder, g.Record())
	}
}

func current(t *testing.T, l *lease.Lease) *lease.Record {
	t.Helper()
	r, err := l.Current(t.Context())
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	return r
}

func unixNow() uint64 { return uint64(time.Now().Unix()) }

func TestAcquireIsCreateOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		a, b := node(kv, "node-a"), node(kv, "node-b")
		if r := current(t, a); r != nil {
			t.Fatalf("Current before any round = %+v, want nil", r)
		}
		g := mustAcquire(t, a, time.Minute)
		now := unixNow()
		want := lease.Record{Holder: "node-a", AcquiredAtUnix: now, ExpiresAtUnix: now + 60}
		if got := g.Record(); got != want {
			t.Fatalf("Record = %+v, want %+v", got, want)
		}
		if r := current(t, b); r == nil || *r != want {
			t.Fatalf("Current = %+v, want %+v", r, want)
		}
		mustLose(t, b, time.Minute)
		mustLose(t, a, time.Minute) // the holder itself does not win twice
	})
}

func TestConcurrentAcquirersOneWinner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		var wg sync.WaitGroup
		guards := make([]*lease.Guard, 8)
		for i := range guards {
			wg.Go(func() {
				g, err := node(kv, fmt.Sprintf("node-%d", i)).TryAcquire(t.Context(), time.Minute)
				if err != nil {
					t.Error(err)
				}
				guards[i] = g
			})
		}
		wg.Wait()
		winners := 0
		for _, g := range guards {
			if g != nil {
				winners++
			}
		}
		if winners != 1 {
			t.Fatalf("%d winners, want 1", winners)
		}
	})
}

// TestExpiryBoundary: the lease is held until its expiry second and free
// from that second on (expires == now is expired).
func TestExpiryBoundary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		a, b := node(kv, "node-a"), node(kv, "node-b")
		ga := mustAcquire(t, a, time.Minute)
		time.Sleep(time.Minute - time.Nanosecond)
		mustLose(t, b, time.Minute)
		time.Sleep(time.Nanosecond)
		if unixNow() != ga.Record().ExpiresAtUnix {
			t.Fatalf("now %d, expiry %d: the boundary is not being tested", unixNow(), ga.Record().ExpiresAtUnix)
		}
		gb := mustAcquire(t, b, 30*time.Second)
		if r := current(t, a); r == nil || r.Holder != "node-b" || r.AcquiredAtUnix != unixNow() || r.ExpiresAtUnix != unixNow()+30 {
			t.Fatalf("Current after takeover = %+v", r)
		}
		if gb.Record().Holder != "node-b" {
			t.Fatalf("guard record %+v", gb.Record())
		}
		// The old holder cannot come back while b holds it.
		mustLose(t, a, time.Minute)
	})
}

func TestTTLWholeSeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		g := mustAcquire(t, node(kv, "a"), 1999*time.Millisecond)
		if r := g.Record(); r.ExpiresAtUnix != r.AcquiredAtUnix+1 {
			t.Fatalf("ttl 1.999s wrote %+v; want expiry = acquired + 1", r)
		}
		for _, ttl := range []time.Duration{0, -time.Second, 999 * time.Millisecond} {
			if _, err := node(kv, "b").TryAcquire(t.Context(), ttl); !errors.Is(err, slipstream.ErrInvalidConfig) {
				t.Errorf("TryAcquire(ttl %v) = %v, want ErrInvalidConfig", ttl, err)
			}
		}
	})
}

func TestDroppedGuardDoesNotRelease(t *testing.T) {
	var logs logBuf
	kv := memkv.New()
	a := &lease.Lease{KV: kv, Key: key, Holder: "node-a", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	func() {
		mustAcquire(t, a, time.Hour) // dropped at once
	}()
	// Collect the guard; its cleanup warns, and releases nothing.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "dropped without Complete or Abandon") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning for the dropped guard; logs: %s", logs.String())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	mustLose(t, node(kv, "node-b"), time.Hour)
	if r := current(t, a); r == nil || r.Holder != "node-a" {
		t.Fatalf("Current = %+v, want node-a still holding", r)
	}
}

func TestFinishedGuardDoesNotWarnWhenDropped(t *testing.T) {
	var logs logBuf
	kv := memkv.New()
	a := &lease.Lease{KV: kv, Key: key, Holder: "node-a", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	func() {
		g := mustAcquire(t, a, time.Hour)
		if err := g.Complete(t.Context(), slipstream.CursorFromUint64(1)); err != nil {
			t.Fatal(err)
		}
	}()
	// Wait until a guard dropped later has been collected and warned; the
	// completed guard, unreachable since before it, would have warned too.
	other := &lease.Lease{KV: memkv.New(), Key: key, Holder: "marker", Logger: a.Logger}
	func() { mustAcquire(t, other, time.Hour) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "holder=marker") {
		if time.Now().After(deadline) {
			t.Fatalf("marker guard never collected; logs: %s", logs.String())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	runtime.GC()
	if strings.Contains(logs.String(), "holder=node-a") && strings.Contains(logs.String(), "dropped") {
		t.Fatalf("a completed guard warned when dropped: %s", logs.String())
	}
}

func TestCompleteRecordsCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		a := node(kv, "node-a")
		g := mustAcquire(t, a, time.Minute)
		acquired := g.Record()
		time.Sleep(12 * time.Second)
		if err := g.Complete(t.Context(), slipstream.CursorFromUint64(42)); err != nil {
			t.Fatal(err)
		}
		r := current(t, a)
		if r == nil || r.CompletedCursorHex != "000000000000002a" || r.CompletedAtUnix == nil ||
			*r.CompletedAtUnix != acquired.AcquiredAtUnix+12 {
			t.Fatalf("Current after Complete(42) = %+v", r)
		}
		if r.Holder != acquired.Holder || r.AcquiredAtUnix != acquired.AcquiredAtUnix || r.ExpiresAtUnix != acquired.ExpiresAtUnix {
			t.Fatalf("Complete changed holder or times: %+v, acquired %+v", r, acquired)
		}
		if c, err := r.CompletedCursor(); err != nil || c != slipstream.CursorFromUint64(42) {
			t.Fatalf("CompletedCursor = %v, %v", c, err)
		}
		if got := g.Record(); got.CompletedCursorHex != r.CompletedCursorHex {
			t.Fatalf("guard Record after Complete = %+v", got)
		}
		// The round still occupies its period.
		mustLose(t, node(kv, "node-b"), time.Minute)
		raw, ok, _ := kv.Entry(t.Context(), key)
		want := fmt.Sprintf(`{"holder_id":"node-a","acquired_at_unix":%d,"expires_at_unix":%d,"completed_cursor_hex":"000000000000002a","completed_at_unix":%d}`,
			acquired.AcquiredAtUnix, acquired.ExpiresAtUnix, acquired.AcquiredAtUnix+12)
		if !ok || string(raw.Value) != want {
			t.Fatalf("stored value %s\nwant         %s", raw.Value, want)
		}
	})
}

// TestCompleteAfterTakeover: an overrun holder's Complete logs and
// succeeds, and leaves the new holder's record alone.
func TestCompleteAfterTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		var logs logBuf
		a := &lease.Lease{KV: kv, Key: key, Holder: "node-a", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		ga := mustAcquire(t, a, time.Minute)
		time.Sleep(time.Minute)
		gb := mustAcquire(t, node(kv, "node-b"), time.Minute)
		if err := ga.Complete(t.Context(), slipstream.CursorFromUint64(7)); err != nil {
			t.Fatalf("Complete after takeover = %v, want nil", err)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "taken over") {
			t.Fatalf("no warning logged: %s", logs.String())
		}
		if r := current(t, a); r == nil || *r != gb.Record() {
			t.Fatalf("Current = %+v, want b's record %+v", r, gb.Record())
		}
		// Nor does its Abandon release b's lease.
		ga.Abandon(t.Context())
		if r := current(t, a); r == nil || r.Holder != "node-b" {
			t.Fatalf("Current after a stale Abandon = %+v", r)
		}
	})
}

func TestAbandonedLeaseIsWonAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		a, b := node(kv, "node-a"), node(kv, "node-b")
		g := mustAcquire(t, a, time.Hour)
		g.Abandon(t.Context())
		// A tombstone (an empty put), not a delete marker.
		e, ok, err := kv.Entry(t.Context(), key)
		if err != nil || !ok || len(e.Value) != 0 {
			t.Fatalf("Entry after Abandon = %+v, %v, %v; want the empty tombstone", e, ok, err)
		}
		if r := current(t, a); r != nil {
			t.Fatalf("Current after Abandon = %+v, want nil", r)
		}
		gb := mustAcquire(t, b, time.Hour) // no time has passed
		if r := current(t, a); r == nil || *r != gb.Record() {
			t.Fatalf("Current = %+v, want %+v", r, gb.Record())
		}
	})
}

func TestDeletedLeaseIsCreatedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		mustAcquire(t, node(kv, "node-a"), time.Hour)
		if _, err := kv.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		if r := current(t, node(kv, "x")); r != nil {
			t.Fatalf("Current after a delete marker = %+v, want nil", r)
		}
		mustAcquire(t, node(kv, "node-b"), time.Hour)
	})
}

func TestCorruptLeaseIsStolen(t *testing.T) {
	for _, v := range []string{
		"not json",
		"{}",
		`{"holder_id":"node-a","acquired_at_unix":1}`,
		`{"holder_id":"node-a","acquired_at_unix":1,"expires_at_unix":"never"}`,
		"\x00\xff",
	} {
		t.Run("", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				kv := memkv.New()
				if _, err := kv.Put(t.Context(), key, []byte(v)); err != nil {
					t.Fatal(err)
				}
				b := node(kv, "node-b")
				if _, err := b.Current(t.Context()); !errors.Is(err, lease.ErrUnparseable) {
					t.Fatalf("Current on %q = %v, want ErrUnparseable", v, err)
				}
				g := mustAcquire(t, b, time.Hour)
				if r := current(t, b); r == nil || *r != g.Record() {
					t.Fatalf("Current after stealing = %+v", r)
				}
			})
		})
	}
}

// TestLiveLeaseWithUnknownFieldsBlocks: a parseable, live record from a
// newer writer is respected, not stolen.
func TestLiveLeaseWithUnknownFieldsBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		v := fmt.Sprintf(`{"holder_id":"future","acquired_at_unix":%d,"expires_at_unix":%d,"completed_at_unix":null,"shard":3}`, unixNow(), unixNow()+5)
		if _, err := kv.Put(t.Context(), key, []byte(v)); err != nil {
			t.Fatal(err)
		}
		b := node(kv, "node-b")
		mustLose(t, b, time.Hour)
		time.Sleep(5 * time.Second)
		mustAcquire(t, b, time.Hour)
	})
}

// faultKV wraps a KV with hooks that run before (or instead of) a call.
type faultKV struct {
	lease.KV
	create func() error
	entry  func() (slipstream.Entry, bool, error, bool) // last: handled
	update func(ctx context.Context, key string, value []byte, rev uint64) (uint64, error, bool)
	del    func() error
	get    func() error
}

func (f *faultKV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	if f.create != nil {
		if err := f.create(); err != nil {
			return 0, err
		}
	}
	return f.KV.Create(ctx, key, value)
}

func (f *faultKV) Entry(ctx context.Context, key string) (slipstream.Entry, bool, error) {
	if f.entry != nil {
		if e, ok, err, handled := f.entry(); handled {
			return e, ok, err
		}
	}
	return f.KV.Entry(ctx, key)
}

func (f *faultKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if f.update != nil {
		if n, err, handled := f.update(ctx, key, value, rev); handled {
			return n, err
		}
	}
	return f.KV.Update(ctx, key, value, rev)
}

func (f *faultKV) DeleteWithVersion(ctx context.Context, key string, rev uint64) (uint64, error) {
	if f.del != nil {
		if err := f.del(); err != nil {
			return 0, err
		}
	}
	return f.KV.DeleteWithVersion(ctx, key, rev)
}

func (f *faultKV) Get(ctx context.Context, key string) (slipstream.Entry, bool, error) {
	if f.get != nil {
		if err := f.get(); err != nil {
			return slipstream.Entry{}, false, err
		}
	}
	return f.KV.Get(ctx, key)
}

var errBackend = fmt.Errorf("%w: injected", slipstream.ErrOperationFailed)

// TestTakeoverRaceOutcomes: each way of losing the CAS takeover returns a
// nil guard, and any other failure is returned.
func TestTakeoverRaceOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		wantErr bool
	}{
		{"revision_mismatch", fmt.Errorf("%w: injected", slipstream.ErrRevisionMismatch), false},
		{"already_exists", fmt.Errorf("%w: injected", slipstream.ErrAlreadyExists), false},
		{"not_found", fmt.Errorf("%w: injected", slipstream.ErrNotFound), false},
		{"backend_failure", errBackend, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := memkv.New()
				mustAcquire(t, node(mem, "node-a"), time.Second)
				time.Sleep(time.Second)
				kv := &faultKV{KV: mem, update: func(context.Context, string, []byte, uint64) (uint64, error, bool) {
					return 0, tc.err, true
				}}
				g, err := node(kv, "node-b").TryAcquire(t.Context(), time.Minute)
				if g != nil {
					t.Fatal("won despite a failed takeover")
				}
				if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, slipstream.ErrOperationFailed)) {
					t.Fatalf("TryAcquire = %v (want error: %v)", err, tc.wantErr)
				}
			})
		})
	}
}

// TestTakeoverRaceReal: another node steals the expired lease between our
// Entry and our Update; our CAS fails on the revision we observed.
func TestTakeoverRaceReal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := memkv.New()
		mustAcquire(t, node(mem, "node-a"), time.Second)
		time.Sleep(time.Second)
		var cGuard *lease.Guard
		kv := &faultKV{KV: mem, entry: func() (slipstream.Entry, bool, error, bool) {
			e, ok, err := mem.Entry(t.Context(), key)
			if cGuard == nil {
				cGuard = mustAcquire(t, node(mem, "node-c"), time.Minute)
			}
			return e, ok, err, true // the stale read
		}}
		mustLose(t, node(kv, "node-b"), time.Minute)
		if r := current(t, node(mem, "x")); r == nil || r.Holder != "node-c" {
			t.Fatalf("Current = %+v, want node-c", r)
		}
	})
}

func TestAcquireErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := memkv.New()
		// Create failing otherwise than AlreadyExists: returned.
		kv := &faultKV{KV: mem, create: func() error { return errBackend }}
		if g, err := node(kv, "a").TryAcquire(t.Context(), time.Minute); g != nil || !errors.Is(err, slipstream.ErrOperationFailed) {
			t.Fatalf("TryAcquire with a failing Create = %v, %v", g, err)
		}
		// An invalid key is the bucket's error.
		bad := &lease.Lease{KV: mem, Key: "bad key", Holder: "a", Logger: quiet()}
		if _, err := bad.TryAcquire(t.Context(), time.Minute); !errors.Is(err, slipstream.ErrInvalidKey) {
			t.Fatalf("TryAcquire(bad key) = %v", err)
		}
		mustAcquire(t, node(mem, "a"), time.Minute)
		// Entry failing: returned.
		kv = &faultKV{KV: mem, entry: func() (slipstream.Entry, bool, error, bool) { return slipstream.Entry{}, false, errBackend, true }}
		if g, err := node(kv, "b").TryAcquire(t.Context(), time.Minute); g != nil || !errors.Is(err, slipstream.ErrOperationFailed) {
			t.Fatalf("TryAcquire with a failing Entry = %v, %v", g, err)
		}
		// Entry finding the key deleted since Create failed: lost, no loop.
		updates := 0
		kv = &faultKV{KV: mem,
			entry: func() (slipstream.Entry, bool, error, bool) { return slipstream.Entry{}, false, nil, true },
			update: func(context.Context, string, []byte, uint64) (uint64, error, bool) {
				updates++
				return 0, nil, false
			}}
		if g, err := node(kv, "b").TryAcquire(t.Context(), time.Minute); g != nil || err != nil || updates != 0 {
			t.Fatalf("TryAcquire with the key gone = %v, %v (%d updates)", g, err, updates)
		}
		// An entry without a revision cannot be taken over by CAS.
		kv = &faultKV{KV: mem, entry: func() (slipstream.Entry, bool, error, bool) {
			return slipstream.Entry{Key: key}, true, nil, true
		}}
		if g, err := node(kv, "b").TryAcquire(t.Context(), time.Minute); g != nil || !errors.Is(err, slipstream.ErrOperationFailed) {
			t.Fatalf("TryAcquire on a versionless entry = %v, %v", g, err)
		}
		// Current passes read errors through.
		kv = &faultKV{KV: mem, get: func() error { return errBackend }}
		if _, err := node(kv, "b").Current(t.Context()); !errors.Is(err, slipstream.ErrOperationFailed) {
			t.Fatalf("Current with a failing Get = %v", err)
		}
	})
}

func TestInvalidLease(t *testing.T) {
	kv := memkv.New()
	for _, l := range []*lease.Lease{
		{Key: key, Holder: "a"},
		{KV: kv, Holder: "a"},
		{KV: kv, Key: key},
		{KV: kv, Key: key, Holder: "\xff"},
	} {
		if _, err := l.TryAcquire(t.Context(), time.Minute); !errors.Is(err, slipstream.ErrInvalidConfig) {
			t.Errorf("TryAcquire(%+v) = %v, want ErrInvalidConfig", l, err)
		}
	}
	if _, err := (&lease.Lease{Key: key}).Current(t.Context()); !errors.Is(err, slipstream.ErrInvalidConfig) {
		t.Errorf("Current without KV = %v", err)
	}
}

func TestCompleteReturnsOtherErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := memkv.New()
		kv := &faultKV{KV: mem}
		g := mustAcquire(t, node(kv, "a"), time.Minute)
		kv.update = func(context.Context, string, []byte, uint64) (uint64, error, bool) { return 0, errBackend, true }
		if err := g.Complete(t.Context(), slipstream.CursorFromUint64(3)); !errors.Is(err, slipstream.ErrOperationFailed) {
			t.Fatalf("Complete with a failing Update = %v", err)
		}
		if g.Record().CompletedAtUnix != nil {
			t.Fatalf("guard records a completion that was not written: %+v", g.Record())
		}
		// The guard still holds the right revision: a retry succeeds.
		kv.update = nil
		if err := g.Complete(t.Context(), slipstream.CursorFromUint64(3)); err != nil {
			t.Fatal(err)
		}
		if r := current(t, node(mem, "x")); r == nil || r.CompletedCursorHex != "0000000000000003" {
			t.Fatalf("Current = %+v", r)
		}
	})
}

// TestAbandonLogsErrors: Abandon never returns an error, logs it, and runs
// under a cancelled context.
func TestAbandonLogsErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := memkv.New()
		var logs logBuf
		kv := &faultKV{KV: mem, del: func() error { return errBackend }}
		a := &lease.Lease{KV: kv, Key: key, Holder: "a", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		g := mustAcquire(t, a, time.Minute)
		g.Abandon(t.Context())
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "injected") {
			t.Fatalf("Abandon did not log its error: %s", logs.String())
		}
		mustLose(t, node(mem, "b"), time.Minute) // still held
	})
}

// cancelAwareKV fails every call whose context is done, as a network
// backend does.
type cancelAwareKV struct{ lease.KV }

func (c cancelAwareKV) DeleteWithVersion(ctx context.Context, key string, rev uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return c.KV.DeleteWithVersion(ctx, key, rev)
}

func TestAbandonWithCancelledContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := memkv.New()
		g := mustAcquire(t, node(cancelAwareKV{mem}, "a"), time.Hour)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		g.Abandon(ctx)
		mustAcquire(t, node(mem, "b"), time.Hour)
	})
}

// TestTakeoverLogLevels: taking over a completed or abandoned lease after
// its expiry is routine (Debug; nothing at Info, so a fleet's every round
// does not log it), while taking over from a holder that never completed
// its round is logged at Info, naming it.
func TestTakeoverLogLevels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		var logs logBuf
		b := &lease.Lease{KV: kv, Key: key, Holder: "node-b", Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
		a := node(kv, "node-a")

		g := mustAcquire(t, a, time.Minute)
		if err := g.Complete(t.Context(), slipstream.CursorFromUint64(1)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		gb := mustAcquire(t, b, time.Minute) // completed and expired: routine
		if s := logs.String(); s != "" {
			t.Fatalf("routine takeover logged at Info or above:\n%s", s)
		}
		gb.Abandon(t.Context())
		mustAcquire(t, a, time.Minute) // abandoned: routine (a's logger is quiet)
		time.Sleep(time.Minute)
		mustAcquire(t, b, time.Minute) // a never completed: news
		s := logs.String()
		if !strings.Contains(s, "level=INFO") || !strings.Contains(s, `msg="lease taken over"`) ||
			!strings.Contains(s, `reason="expired before its round completed"`) || !strings.Contains(s, "from=node-a") {
			t.Fatalf("takeover from a holder that never completed: log %q, want it at Info naming node-a", s)
		}
	})
}
