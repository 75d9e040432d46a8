package slipstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Defaults filled in by [NewFollower].
const (
	// DefaultMaxBatchSize is the number of updates that flushes a batch.
	DefaultMaxBatchSize = 100
	// DefaultMaxBatchDelay is how long the first update of a batch waits
	// for company before the batch is flushed.
	DefaultMaxBatchDelay = 10 * time.Millisecond
	// DefaultBufferSize is the capacity of the channel between the watch
	// and the loop.
	DefaultBufferSize = 256
	// MaxStoreFailures is the number of consecutive failed Store.Apply calls
	// after which Run stops with an error wrapping [ErrWatch].
	MaxStoreFailures = 16
)

// Follower keeps a consumer, and optionally a durable fold, in step with a
// watched bucket, advancing its cursor only after updates are applied.
//
// The loop is: watch → batch (MaxBatchDelay / MaxBatchSize) → Apply → advance
// the cursor → fold the raw batch into Store at the new cursor → OnApplied.
// A cursor reported by OnApplied, returned by Run, or persisted by Store
// means every update at or before it has been applied: Apply returned for it.
//
// Configure a Follower through its exported fields (or start from
// [NewFollower], which fills the defaults) and call [Follower.Run]. A
// Follower runs once at a time; it may be run again after Run returns.
type Follower struct {
	// Watcher supplies the updates. Required.
	Watcher Watcher
	// Scope selects the keys to follow; the zero Scope is all keys.
	Scope Scope
	// Resume is the cursor to resume after. None starts with a state-sync
	// watch. With a Store, pass the Store's own Cursor, never a value
	// remembered from OnApplied: the store's cursor may lag it after a
	// failed store write, and resuming past it would skip the gap.
	Resume Cursor
	// Lister, together with Store, arms the cursor-expired resync: keys in
	// the fold but no longer live are deleted before the fallback watch
	// re-lists the bucket. Without it a cursor expiry falls back to a
	// re-list only, and keys deleted during the gap stay in the fold.
	Lister KeyLister
	// Store, if set, is the durable fold. Every received update (including
	// those Filter rejects) is folded into it after Apply returns.
	Store Store
	// Filter, if set, decides which updates reach Apply. Rejected updates
	// still advance the cursor and are still folded into Store.
	Filter func(Update) bool
	// Apply consumes a batch of updates in revision order. Required. It must
	// not retain batch after it returns. An error stops Run with the cursor
	// not advanced over the batch. At shutdown the last batch is applied
	// with a context that is no longer cancelled.
	//
	// A panic in Apply, Filter or OnApplied propagates out of Run, after the
	// watch goroutine has stopped; the cursor is not advanced over the batch
	// and nothing of it reaches Store.
	Apply func(ctx context.Context, batch []Update) error
	// OnApplied, if set, is called after each flush that advanced the
	// cursor, once Apply and the Store fold returned.
	OnApplied func(Cursor)
	// OnFlush, if set, is called after every flush, for metrics.
	OnFlush func(FlushInfo)
	// OnResync, if set, is called after a cursor-expired resync folded its
	// synthetic deletes.
	OnResync func(ResyncInfo)
	// MaxBatchSize is the batch length that triggers a flush. Must be > 0.
	MaxBatchSize int
	// MaxBatchDelay is how long a batch stays open after its first update.
	// Must be ≥ 0.
	MaxBatchDelay time.Duration
	// BufferSize is the capacity of the channel from the watch goroutine; 0
	// means DefaultBufferSize. During a large state sync it is the effective
	// batch boundary.
	BufferSize int
	// Logger receives lifecycle and warning records; nil means
	// slog.Default().
	Logger *slog.Logger

	mu struct {
		sync.Mutex
		exports chan exportRequest
		done    chan struct{}
	}
}

// FlushInfo describes one flush, for metrics.
type FlushInfo struct {
	Updates       int           // raw updates folded (or attempted)
	Applied       int           // updates passed to Apply
	Cursor        Cursor        // applied cursor after the flush
	Advanced      bool          // whether the cursor moved
	Duration      time.Duration // time spent in Apply and Store.Apply
	StoreErr      error         // a transient Store.Apply failure, re-queued
	StoreFailures int           // consecutive Store.Apply failures so far
}

// ResyncInfo describes one cursor-expired resync.
type ResyncInfo struct {
	LiveKeys  int // keys the Lister reported live
	StaleKeys int // fold keys deleted because they were not live
}

// NewFollower returns a Follower with the default batching and buffer.
func NewFollower(w Watcher, apply func(ctx context.Context, batch []Update) error) *Follower {
	return &Follower{
		Watcher:       w,
		Apply:         apply,
		MaxBatchSize:  DefaultMaxBatchSize,
		MaxBatchDelay: DefaultMaxBatchDelay,
		BufferSize:    DefaultBufferSize,
	}
}

// Validate reports a configuration error wrapping [ErrInvalidConfig].
func (f *Follower) Validate() error {
	var errs []error
	if f.Watcher == nil {
		errs = append(errs, errors.New("Watcher is nil"))
	}
	if f.Apply == nil {
		errs = append(errs, errors.New("Apply is nil"))
	}
	if f.MaxBatchSize <= 0 {
		errs = append(errs, fmt.Errorf("MaxBatchSize is %d, must be > 0", f.MaxBatchSize))
	}
	if f.MaxBatchDelay < 0 {
		errs = append(errs, fmt.Errorf("MaxBatchDelay is %v, must be ≥ 0", f.MaxBatchDelay))
	}
	if f.BufferSize < 0 {
		errs = append(errs, fmt.Errorf("BufferSize is %d, must be ≥ 0", f.BufferSize))
	}
	if err := f.Scope.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

func (f *Follower) logger() *slog.Logger {
	l := f.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With(LogKeyComponent, "follower")
}

// Run follows the bucket until ctx is cancelled (shutdown) or the watch
// ends, and returns the applied cursor.
//
// On shutdown the pending batch is flushed and Run returns (cursor, nil).
// Updates received but not yet batched are abandoned; the cursor does not
// claim them and the next resume re-delivers them. When the watch ends on its
// own, the remainder is flushed and its error (if any) is returned.
//
// Run returns an error before anything starts if the Follower is
// misconfigured (see [Follower.Validate]), an Apply error as soon as it
// happens, and an error wrapping [ErrWatch] for a watch failure, a failed
// resync, a Store that failed MaxStoreFailures consecutive times, or a Store
// that panicked. A panic in the Watcher becomes an error wrapping
// [ErrWatch] when it ends the stream, and is logged at Error level when it
// happens during shutdown. The returned cursor is always one whose updates
// were all applied.
func (f *Follower) Run(ctx context.Context) (Cursor, error) {
	if err := f.Validate(); err != nil {
		return f.Resume, err
	}
	exports := make(chan exportRequest)
	done := make(chan struct{})
	f.mu.Lock()
	if f.mu.exports != nil {
		f.mu.Unlock()
		return f.Resume, fmt.Errorf("%w: Run is already active", ErrInvalidConfig)
	}
	f.mu.exports, f.mu.done = exports, done
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.mu.exports, f.mu.done = nil, nil
		f.mu.Unlock()
		close(done)
	}()

	log := f.logger()
	bufSize := f.BufferSize
	if bufSize == 0 {
		bufSize = DefaultBufferSize
	}
	updates := make(chan Update, bufSize)
	var resync chan resyncRequest
	if f.Lister != nil && f.Store != nil {
		resync = make(chan resyncRequest, 1)
	}
	watchCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var watchErr error
	wg.Go(func() {
		defer close(updates)
		watchErr = f.watch(watchCtx, log, updates, resync)
	})
	defer func() {
		cancel()
		wg.Wait()
	}()

	if f.Resume.IsNone() {
		log.Info("follower starting", LogKeyScope, f.Scope.String())
	} else {
		log.Info("follower resuming", LogKeyScope, f.Scope.String(), LogKeyCursor, f.Resume.String())
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	l := &loop{
		f:       f,
		log:     log,
		applied: f.Resume,
		timer:   timer,
		batch:   make([]Update, 0, min(f.MaxBatchSize, 4096)),
	}
	if f.Store != nil {
		l.raw = make([]Update, 0, min(f.MaxBatchSize, 4096))
	}

	shutdown := func() (Cursor, error) {
		err := l.flush(context.WithoutCancel(ctx))
		cancel()
		wg.Wait()
		if errors.Is(watchErr, errWatchPanicked) {
			// Nobody else will see it: shutdown returns a nil error.
			log.Error("watch goroutine panicked during shutdown", "err", watchErr)
		}
		return l.applied, err
	}
	streamClosed := func() (Cursor, error) {
		if err := l.flush(ctx); err != nil {
			return l.applied, err
		}
		return l.applied, watchErr
	}
	ctxDone := ctx.Done()

	// Go's select picks uniformly among ready cases, so the reference's
	// biased priority (shutdown > window > resync > export > update) is
	// emulated: non-blocking checks in priority order, then a burst of at
	// most maxDrain ready updates (shutdown is re-checked after each), and
	// only when nothing is ready a blocking select over everything.
	for {
		select {
		case <-ctxDone:
			return shutdown()
		default:
		}
		var timerC <-chan time.Time
		if l.armed {
			timerC = timer.C
			select {
			case <-timerC:
				l.armed = false
				if err := l.flush(ctx); err != nil {
					return l.applied, err
				}
				continue
			default:
			}
		}
		if resync != nil {
			select {
			case req := <-resync:
				if err := l.resync(ctx, req); err != nil {
					return l.applied, err
				}
				continue
			default:
			}
		}
		select {
		case req := <-exports:
			if err := l.export(ctx, req); err != nil {
				return l.applied, err
			}
			continue
		default:
		}
		// Take a burst of ready updates. Shutdown keeps its priority over
		// every single update; the window, resync and export checks above
		// (a timer channel check costs a lock) run again after at most
		// maxDrain updates, which bounds how far they can be delayed.
		drained := 0
	drain:
		for drained < maxDrain {
			select {
			case u, ok := <-updates:
				if !ok {
					return streamClosed()
				}
				drained++
				if err := l.receive(ctx, u); err != nil {
					return l.applied, err
				}
				select {
				case <-ctxDone:
					return shutdown()
				default:
				}
			default:
				break drain
			}
		}
		if drained > 0 {
			continue
		}

		select {
		case <-ctxDone:
			return shutdown()
		case <-timerC:
			l.armed = false
			if err := l.flush(ctx); err != nil {
				return l.applied, err
			}
		case req := <-resync:
			if err := l.resync(ctx, req); err != nil {
				return l.applied, err
			}
		case req := <-exports:
			if err := l.export(ctx, req); err != nil {
				return l.applied, err
			}
		case u, ok := <-updates:
			if ctx.Err() != nil {
				// Shutdown outranks a ready update: drop it (never
				// applied, never claimed by the cursor).
				return shutdown()
			}
			if !ok {
				return streamClosed()
			}
			if err := l.receive(ctx, u); err != nil {
				return l.applied, err
			}
		}
	}
}

// errWatchPanicked marks the result of a watch goroutine that panicked.
var errWatchPanicked = errors.New("watch task panicked")

// maxDrain is the number of ready updates the loop takes in a row before it
// checks the window timer, resync and export requests again.
const maxDrain = 64

// watch runs on its own goroutine: resume, expiry fallback and the resync
// hand-off. Its result is surfaced by Run when the stream closes.
func (f *Follower) watch(ctx context.Context, log *slog.Logger, out chan<- Update, resync chan<- resyncRequest) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %w: %v", ErrWatch, errWatchPanicked, r)
		}
	}()
	if f.Resume.IsNone() {
		return f.Watcher.Watch(ctx, f.Scope, Cursor{}, out)
	}
	err = f.Watcher.Watch(ctx, f.Scope, f.Resume, out)
	if !errors.Is(err, ErrCursorExpired) {
		return err
	}
	log.Warn("cursor expired; resyncing from a full watch", LogKeyCursor, f.Resume.String(), "reason", err.Error())
	if err := f.resyncStaleKeys(ctx, log, resync); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	return f.Watcher.Watch(ctx, f.Scope, Cursor{}, out)
}

// resyncStaleKeys lists the live keys and hands them to the loop, then waits
// for its ack: the synthetic deletes are folded before the fallback watch
// exists, so no re-list put can be overtaken by a late delete.
func (f *Follower) resyncStaleKeys(ctx context.Context, log *slog.Logger, resync chan<- resyncRequest) error {
	if resync == nil {
		log.Warn("cursor expired without a Lister and Store: keys deleted during the gap may persist")
		return nil
	}
	var live []string
	for _, p := range f.Scope.List() {
		keys, err := f.Lister.Keys(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: cursor-expired resync failed listing live keys under %q: %w; failing the watch rather than silently keeping stale keys", ErrWatch, p, err)
		}
		live = append(live, keys...)
	}
	ack := make(chan struct{})
	select {
	case resync <- resyncRequest{live: live, ack: ack}:
	case <-ctx.Done():
		return nil
	}
	select {
	case <-ack:
	case <-ctx.Done():
	}
	return nil
}

type resyncRequest struct {
	live []string
	ack  chan struct{}
}

type exportRequest struct {
	dir   string
	reply chan exportResult // capacity 1; written without blocking
}

type exportResult struct {
	exp Export
	err error
}

// Export asks the running loop to export its Store into dir between two
// flushes: pending updates are flushed first, so the export's cursor is the
// applied cursor (or, after a transient store failure, the store's own
// lagging but self-consistent cursor). An export failure is returned here
// and does not stop Run. It returns [ErrNotRunning] when Run is not active
// and an error when the Follower has no Store.
func (f *Follower) Export(ctx context.Context, dir string) (Export, error) {
	f.mu.Lock()
	exports, done := f.mu.exports, f.mu.done
	f.mu.Unlock()
	if exports == nil {
		return Export{}, ErrNotRunning
	}
	req := exportRequest{dir: dir, reply: make(chan exportResult, 1)}
	select {
	case exports <- req:
	case <-done:
		return Export{}, ErrNotRunning
	case <-ctx.Done():
		return Export{}, ctx.Err()
	}
	select {
	case r := <-req.reply:
		return r.exp, r.err
	case <-done:
		select {
		case r := <-req.reply:
			return r.exp, r.err
		default:
			return Export{}, ErrNotRunning
		}
	case <-ctx.Done():
		return Export{}, ctx.Err()
	}
}

// loop is the state of one Run.
type loop struct {
	f          *Follower
	log        *slog.Logger
	applied    Cursor
	high       Cursor   // last positioned version received since the last flush
	batch      []Update // for Apply
	raw        []Update // for Store (nil without one); re-queued on failure
	failStreak int
	timer      *time.Timer
	armed      bool
}

// movesCursor reports whether an update's version may become a cursor:
// unknown versions and revision 0 (never a real stream sequence) may not.
func movesCursor(v Version) bool {
	switch v.n {
	case 0:
		return false
	case 8:
		// Bytes past n are always zero, so an all-zero buffer is revision 0.
		return v.b != [MaxVersionLen]byte{}
	}
	return true
}

func (l *loop) receive(ctx context.Context, u Update) error {
	if movesCursor(u.Version) {
		l.high = CursorAt(u.Version)
	}
	l.add(u)
	if !l.armed {
		l.timer.Reset(l.f.MaxBatchDelay)
		l.armed = true
	}
	if len(l.batch) >= l.f.MaxBatchSize || len(l.raw) >= l.f.MaxBatchSize {
		return l.flush(ctx)
	}
	return nil
}

func (l *loop) add(u Update) {
	if l.f.Store != nil {
		l.raw = append(l.raw, u)
	}
	if l.f.Filter == nil || l.f.Filter(u) {
		l.batch = append(l.batch, u)
	}
}

// flush applies the batch, advances the cursor, folds the raw batch into the
// store at the advanced cursor, and reports — in exactly that order.
func (l *loop) flush(ctx context.Context) error {
	if l.armed {
		l.timer.Stop()
		l.armed = false
	}
	if len(l.batch) == 0 && len(l.raw) == 0 && l.high.IsNone() {
		return nil
	}
	start := time.Now()
	nApplied := len(l.batch)
	if nApplied > 0 {
		if err := l.f.Apply(ctx, l.batch); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		clear(l.batch)
		l.batch = l.batch[:0]
	}
	advanced := !l.high.IsNone()
	if advanced {
		l.applied = l.high
	}
	nRaw := len(l.raw)
	var storeErr error
	if nRaw > 0 && l.f.Store != nil {
		storeErr = catchPanic(func() error { return l.f.Store.Apply(l.raw, l.applied) })
		if errors.Is(storeErr, errPanicked) {
			return fmt.Errorf("%w: snapshot store task panicked: %w", ErrWatch, storeErr)
		}
		if storeErr == nil {
			l.failStreak = 0
			clear(l.raw)
			l.raw = l.raw[:0]
		} else {
			l.failStreak++
			if l.failStreak >= MaxStoreFailures {
				return fmt.Errorf("%w: snapshot store apply failed %d consecutive times: %w", ErrWatch, l.failStreak, storeErr)
			}
			// The failed batch stays at the front of raw, for a cumulative
			// commit at the next flush: the store's data and cursor always
			// advance together, never over a hole.
			l.log.Warn("store apply failed; batch re-queued", LogKeyStreak, l.failStreak, "err", storeErr)
		}
	}
	if advanced {
		l.high = Cursor{}
		if l.f.OnApplied != nil {
			l.f.OnApplied(l.applied)
		}
	}
	if l.f.OnFlush != nil {
		l.f.OnFlush(FlushInfo{
			Updates: nRaw, Applied: nApplied, Cursor: l.applied, Advanced: advanced,
			Duration: time.Since(start), StoreErr: storeErr, StoreFailures: l.failStreak,
		})
	}
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.Debug("flushed", LogKeyUpdates, nRaw, LogKeyApplied, nApplied, LogKeyCursor, l.applied.String())
	}
	return nil
}

// errPanicked marks an error converted from a panic by catchPanic.
var errPanicked = errors.New("panic")

// catchPanic calls fn, converting a panic into an error wrapping errPanicked.
func catchPanic(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errPanicked, r)
		}
	}()
	return fn()
}

// resync answers the watch goroutine's resync request: flush, diff the fold
// against the live keys, fold synthetic deletes for the stale ones, then ack.
func (l *loop) resync(ctx context.Context, req resyncRequest) error {
	if err := l.flush(ctx); err != nil {
		return err
	}
	live := make(map[string]struct{}, len(req.live))
	for _, k := range req.live {
		live[k] = struct{}{}
	}
	var stale []string
	for _, p := range l.f.Scope.List() {
		err := l.f.Store.ForEachInRange(p, func(e Entry) error {
			if _, ok := live[e.Key]; !ok {
				stale = append(stale, e.Key)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%w: cursor-expired resync failed listing fold prefix %q: %w", ErrWatch, p, err)
		}
	}
	slices.Sort(stale)
	stale = slices.Compact(stale)
	if len(stale) > 0 {
		l.log.Warn("resync deleting keys absent from the bucket", LogKeyKeys, len(stale))
	}
	for _, k := range stale {
		// Unknown version: synthetic deletes never move the cursor.
		l.add(Update{Op: OpDelete, Key: k})
	}
	if err := l.flush(ctx); err != nil {
		return err
	}
	close(req.ack)
	if l.f.OnResync != nil {
		l.f.OnResync(ResyncInfo{LiveKeys: len(live), StaleKeys: len(stale)})
	}
	return nil
}

// export answers an export request between flushes.
func (l *loop) export(ctx context.Context, req exportRequest) error {
	if err := l.flush(ctx); err != nil {
		req.reply <- exportResult{err: err}
		return err
	}
	if l.f.Store == nil {
		req.reply <- exportResult{err: fmt.Errorf("%w: follower runs without a store; nothing to export", ErrUnsupported)}
		return nil
	}
	var exp Export
	err := catchPanic(func() (err error) {
		exp, err = l.f.Store.ExportTo(req.dir)
		return err
	})
	if errors.Is(err, errPanicked) {
		err = fmt.Errorf("%w: snapshot export task panicked: %w", ErrWatch, err)
		req.reply <- exportResult{err: err}
		return err
	}
	req.reply <- exportResult{exp: exp, err: err}
	if err == nil {
		l.log.Info("fold exported", LogKeyDir, req.dir, LogKeyCursor, exp.Cursor.String())
	}
	return nil
}
