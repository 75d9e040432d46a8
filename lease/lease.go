package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/slipstream-kv/slipstream"
)

// KV is what a [Lease] needs of a key-value bucket: compare-and-swap writes
// and a read that shows empty-value entries. *natskv.Bucket and *memkv.KV
// implement it.
//
// The lease relies on these semantics (those of a NATS JetStream KV bucket):
//   - Create fails with an error wrapping slipstream.ErrAlreadyExists while
//     the key's latest record is a put, including an empty-value tombstone;
//     after a delete or purge marker it succeeds.
//   - Update writes only if rev is the key's latest revision, else fails
//     with slipstream.ErrRevisionMismatch (also for a key that never
//     existed or was deleted).
//   - DeleteWithVersion is Update with an empty value: a CAS tombstone.
//   - Entry returns the latest put, empty values included, with its
//     revision; Get hides empty values. Both report false for a marker.
type KV interface {
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	DeleteWithVersion(ctx context.Context, key string, rev uint64) (uint64, error)
	Entry(ctx context.Context, key string) (slipstream.Entry, bool, error)
	Get(ctx context.Context, key string) (slipstream.Entry, bool, error)
}

// MinTTL is the shortest ttl [Lease.TryAcquire] accepts: expiry is kept in
// whole seconds, so a shorter ttl would write a lease that is already free.
const MinTTL = time.Second

// Lease is the export lease of one key in a bucket: at most one holder per
// round across a fleet. It deduplicates work only; nothing may depend on it
// for correctness (docs/LEASE.md).
//
// A Lease holds no state between calls; its methods are safe for concurrent
// use and every node of a fleet builds its own with its own Holder.
type Lease struct {
	// KV is the bucket holding the lease key. Required.
	KV KV
	// Key is the lease key. Required.
	Key string
	// Holder is this node's identity, written into the records it wins:
	// non-empty UTF-8. Required.
	Holder string
	// Logger receives the takeovers (info), lost races (debug) and the
	// errors Complete and Abandon do not return; nil means slog.Default().
	Logger *slog.Logger
}

func (l *Lease) logger() *slog.Logger {
	lg := l.Logger
	if lg == nil {
		lg = slog.Default()
	}
	return lg.With(slipstream.LogKeyComponent, "lease", "key", l.Key, "holder", l.Holder)
}

func (l *Lease) validate() error {
	switch {
	case l.KV == nil:
		return fmt.Errorf("%w: lease: KV is nil", slipstream.ErrInvalidConfig)
	case l.Key == "":
		return fmt.Errorf("%w: lease: Key is empty", slipstream.ErrInvalidConfig)
	case l.Holder == "" || !utf8.ValidString(l.Holder):
		return fmt.Errorf("%w: lease: Holder %q must be non-empty UTF-8", slipstream.ErrInvalidConfig, l.Holder)
	}
	return nil
}

// TryAcquire tries once to take the lease for ttl (whole seconds; at least
// MinTTL). It returns a guard when this node won, and nil, nil when another
// node holds a live lease or won a race for it; it never waits or retries.
//
// The lease is won by creating the key, or by a compare-and-swap over the
// revision read with Entry when the lease there has expired (expiry at or
// before now), is an empty-value tombstone (abandoned), or cannot be parsed.
// A ttl below MinTTL, or an unusable Lease, returns an error wrapping
// slipstream.ErrInvalidConfig; the bucket's errors are returned wrapped.
func (l *Lease) TryAcquire(ctx context.Context, ttl time.Duration) (*Guard, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	if ttl < MinTTL {
		return nil, fmt.Errorf("%w: lease ttl %v is below %v", slipstream.ErrInvalidConfig, ttl, MinTTL)
	}
	log := l.logger()
	now := unixNow(time.Now(), log)
	rec := Record{Holder: l.Holder, AcquiredAtUnix: now, ExpiresAtUnix: addSeconds(now, ttl)}
	val, err := rec.encode()
	if err != nil {
		return nil, err
	}
	rev, err := l.KV.Create(ctx, l.Key, val)
	if err == nil {
		log.Debug("lease acquired", "expires_at_unix", rec.ExpiresAtUnix)
		return newGuard(l, log, rec, rev), nil
	}
	if !errors.Is(err, slipstream.ErrAlreadyExists) {
		return nil, fmt.Errorf("acquire lease %q: %w", l.Key, err)
	}

	// Entry, not Get: an abandoned lease is an empty-value tombstone that
	// Get hides, and its revision is what the takeover needs.
	e, ok, err := l.KV.Entry(ctx, l.Key)
	if err != nil {
		return nil, fmt.Errorf("read lease %q: %w", l.Key, err)
	}
	if !ok {
		log.Debug("lease deleted after a failed create; not retrying")
		return nil, nil
	}
	observed, ok := e.Version.Uint64()
	if !ok || observed == 0 {
		return nil, fmt.Errorf("%w: read lease %q: entry has no revision (%v)", slipstream.ErrOperationFailed, l.Key, e.Version)
	}
	// A takeover is routine after a round that completed or was abandoned
	// (every round after the first begins with one): Debug. Taking over
	// from a holder whose round never completed (it crashed, stalled or
	// overran its ttl) is news an operator wants: Info.
	reason, level, from := "abandoned", slog.LevelDebug, ""
	if len(e.Value) > 0 {
		cur, perr := ParseRecord(e.Value)
		switch {
		case perr != nil:
			reason, level = "unparseable", slog.LevelInfo
			log.Warn("stealing an unparseable lease", "err", perr)
		case cur.Held(now):
			log.Debug("lease held", "by", cur.Holder, "expires_at_unix", cur.ExpiresAtUnix)
			return nil, nil
		case cur.CompletedAtUnix == nil:
			reason, level, from = "expired before its round completed", slog.LevelInfo, cur.Holder
		default:
			reason, from = "expired", cur.Holder
		}
	}
	rev, err = l.KV.Update(ctx, l.Key, val, observed)
	switch {
	case err == nil:
		log.Log(ctx, level, "lease taken over", "reason", reason, "from", from, "revision", observed, "expires_at_unix", rec.ExpiresAtUnix)
		return newGuard(l, log, rec, rev), nil
	case errors.Is(err, slipstream.ErrRevisionMismatch), errors.Is(err, slipstream.ErrAlreadyExists), errors.Is(err, slipstream.ErrNotFound):
		log.Debug("lost the takeover race", "err", err)
		return nil, nil
	}
	return nil, fmt.Errorf("take over lease %q: %w", l.Key, err)
}

// Current returns the lease record in the bucket: nil when the key is
// absent, deleted or an abandoned (empty) tombstone, that is when no round
// ever ran or the last one was abandoned. A present but unparseable value
// returns an error wrapping ErrUnparseable.
func (l *Lease) Current(ctx context.Context) (*Record, error) {
	if l.KV == nil || l.Key == "" {
		return nil, fmt.Errorf("%w: lease: KV and Key are required", slipstream.ErrInvalidConfig)
	}
	e, ok, err := l.KV.Get(ctx, l.Key)
	if err != nil {
		return nil, fmt.Errorf("read lease %q: %w", l.Key, err)
	}
	if !ok || len(e.Value) == 0 {
		return nil, nil
	}
	rec, err := ParseRecord(e.Value)
	if err != nil {
		return nil, fmt.Errorf("lease %q: %w", l.Key, err)
	}
	return &rec, nil
}

// Guard is a won lease. End the round with [Guard.Complete] or
// [Guard.Abandon]; a guard that is simply dropped leaves the lease held
// until it expires (a warning is logged when the guard is collected). Its
// methods are safe for concurrent use.
type Guard struct {
	l   *Lease
	log *slog.Logger

	mu struct {
		sync.Mutex
		rec Record
		rev uint64
	}
	cleanup runtime.Cleanup
}

// dropWarning is what the cleanup of a dropped guard needs, and nothing
// that refers to the guard.
type dropWarning struct {
	log *slog.Logger
	exp uint64
}

func newGuard(l *Lease, log *slog.Logger, rec Record, rev uint64) *Guard {
	g := &Guard{l: l, log: log}
	g.mu.rec, g.mu.rev = rec, rev
	g.cleanup = runtime.AddCleanup(g, func(w dropWarning) {
		w.log.Warn("lease guard dropped without Complete or Abandon; the lease stays held until it expires",
			"expires_at_unix", w.exp)
	}, dropWarning{log: log, exp: rec.ExpiresAtUnix})
	return g
}

// Record returns the record this node last wrote: the acquired lease, or
// the completed one after Complete.
func (g *Guard) Record() Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.rec
}

// Complete records that this node's round exported cursor: it sets the
// completed cursor and time (the expiry is unchanged: the round still
// occupies its whole period) by compare-and-swap over the guard's revision.
// If another node took the lease over meanwhile (an overrun round), the
// record is left to it, a warning is logged and Complete returns nil. Other
// errors are returned; the caller treats them as non-fatal.
func (g *Guard) Complete(ctx context.Context, cursor slipstream.Cursor) error {
	g.cleanup.Stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	rec := g.mu.rec
	rec.CompletedCursorHex = fmt.Sprintf("%x", cursor.Version().Bytes())
	at := unixNow(time.Now(), g.log)
	rec.CompletedAtUnix = &at
	val, err := rec.encode()
	if err != nil {
		return err
	}
	rev, err := g.l.KV.Update(ctx, g.l.Key, val, g.mu.rev)
	if errors.Is(err, slipstream.ErrRevisionMismatch) {
		g.log.Warn("lease taken over before completion; leaving the new holder's record", "cursor", cursor.String(), "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("complete lease %q: %w", g.l.Key, err)
	}
	g.mu.rec, g.mu.rev = rec, rev
	g.log.Debug("lease completed", "cursor", cursor.String())
	return nil
}

// Abandon releases the lease at once, so the next attempt anywhere wins: it
// writes an empty-value tombstone by compare-and-swap over the guard's
// revision (a lease already taken over is left alone). It runs even when
// ctx is cancelled (bounded by the bucket's own timeout). Errors are
// logged, never returned: an unreleased lease only expires later.
func (g *Guard) Abandon(ctx context.Context) {
	g.cleanup.Stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	rev, err := g.l.KV.DeleteWithVersion(context.WithoutCancel(ctx), g.l.Key, g.mu.rev)
	switch {
	case err == nil:
		g.mu.rev = rev
		g.log.Debug("lease abandoned")
	case errors.Is(err, slipstream.ErrRevisionMismatch):
		g.log.Info("lease already taken over; nothing to abandon", "err", err)
	default:
		g.log.Error("abandon lease; it stays held until it expires", "err", err)
	}
}

// unixNow returns t in whole Unix seconds; a pre-epoch clock yields 0 and a
// warning (every lease written is then already expired: duplicate exports,
// never a wedged fleet).
func unixNow(t time.Time, log *slog.Logger) uint64 {
	s := t.Unix()
	if s < 0 {
		log.Warn("wall clock is before the Unix epoch; using 0", "clock", t)
		return 0
	}
	return uint64(s)
}

// addSeconds adds the whole seconds of ttl to now, saturating.
func addSeconds(now uint64, ttl time.Duration) uint64 {
	secs := uint64(max(ttl, 0) / time.Second)
	if now > math.MaxUint64-secs {
		return math.MaxUint64
	}
	return now + secs
}
