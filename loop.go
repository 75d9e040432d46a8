package slipstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// This file is the loop of one [Follower.Run]: batching, flushing, and the
// priority ladder over its event sources. The protocol is in docs/LOOP.md;
// the watch goroutine it consumes is in watch.go, the requests it serves in
// request.go.

// maxBurst is the number of ready updates the loop takes in a row before it
// looks at the window timer and the requests again. Shutdown is checked
// before every update.
const maxBurst = 64

// loop is the state of one Run.
type loop struct {
	f   *Follower
	ctx context.Context
	log *slog.Logger

	// Event sources, in priority order after ctx.Done(): the window timer,
	// the watch goroutine's requests, the callers' requests, the updates.
	timer         *time.Timer
	armed         bool         // the window timer is running
	watchRequests chan request // the expiry barrier (resyncRequest)
	requests      chan request // Export and other caller requests
	updates       chan Update
	held          event  // taken by a blocking wait, not yet ranked (kind none: empty)
	u             Update // the update of the last (or held) evUpdate
	burst         int    // updates taken since the window and requests were last polled

	// The watch goroutine.
	resume    Cursor
	stopWatch context.CancelFunc
	watchDone sync.WaitGroup
	watchErr  error // valid once watchDone is done
	received  int   // updates taken off the channel

	// The batch.
	applied    Cursor   // every update at or before it was applied
	high       Cursor   // last positioned version received since the last flush
	batch      []Update // for Apply
	raw        []Update // for Store (nil without one); re-queued on failure
	failStreak int      // consecutive failed Store.Apply calls

	// Running repairs (Follower.Repair): the keys each watches for live
	// updates.
	repairs []*repairMarks
}

func newLoop(ctx context.Context, f *Follower, resume Cursor, requests chan request) *loop {
	bufSize := f.BufferSize
	if bufSize == 0 {
		bufSize = DefaultBufferSize
	}
	l := &loop{
		f:        f,
		ctx:      ctx,
		log:      f.logger(),
		timer:    time.NewTimer(time.Hour),
		requests: requests,
		updates:  make(chan Update, bufSize),
		// One expiry barrier per Run; capacity 1 so that the watch
		// goroutine never waits for a loop that has returned.
		watchRequests: make(chan request, 1),
		resume:        resume,
		applied:       resume,
		batch:         make([]Update, 0, min(f.MaxBatchSize, 4096)),
	}
	l.timer.Stop()
	if f.Store != nil {
		l.raw = make([]Update, 0, min(f.MaxBatchSize, 4096))
	}
	return l
}

// run is the body of Run: start the watch, then handle events in priority
// order until shutdown, the end of the stream, or a fatal error.
func (l *loop) run() (Cursor, error) {
	if l.resume.IsNone() {
		l.log.Info("follower starting", LogKeyScope, l.f.Scope.String())
	} else {
		l.log.Info("follower resuming", LogKeyScope, l.f.Scope.String(), LogKeyCursor, l.resume.String())
	}
	l.startWatch()
	defer l.stopAll()
	for {
		ev := l.next(true)
		var err error
		switch ev.kind {
		case evShutdown:
			return l.shutdown()
		case evClosed:
			return l.streamClosed()
		case evWindow:
			err = l.flush(l.ctx)
		case evRequest:
			err = l.serve(ev.req)
		case evUpdate:
			err = l.receive(l.u)
		}
		if err != nil {
			if l.interrupted(err) {
				return l.shutdown()
			}
			return l.applied, err
		}
	}
}

// eventKind names what the loop does next, in priority order.
type eventKind uint8

const (
	evNone     eventKind = iota // nothing ready (polling only)
	evShutdown                  // ctx is done
	evWindow                    // the batch window expired
	evRequest                   // a request (watch requests rank above callers')
	evUpdate                    // an update arrived
	evClosed                    // the watch goroutine returned
)

// event is what next returns. An evUpdate's update is in loop.u: events
// stay small, since the ladder passes one per update.
type event struct {
	kind eventKind
	rank int // for evRequest: 0 from the watch goroutine, 1 from a caller
	req  request
}

// next is the loop's priority ladder: it returns the most urgent ready
// event, in the order shutdown > window > watch request > caller request >
// update (or the stream's end). Go's select picks at random among ready
// cases, so the ladder polls each source in order; only when none is ready
// and wait is set does it block on all of them at once, and whatever that
// wait takes is held and ranked again, so shutdown and the window still come
// first. Without wait it returns evNone when nothing is ready.
//
// For throughput, up to maxBurst updates are taken in a row before the
// window and the requests are polled again; shutdown is checked before
// every event. An update or request held while ctx is done is dropped: the
// update was never applied (the cursor does not claim it), the request is
// abandoned with ErrNotRunning.
func (l *loop) next(wait bool) event {
	for {
		if l.ctx.Err() != nil {
			if l.held.kind == evRequest {
				l.held.req.abandon(ErrNotRunning)
			}
			l.held = event{}
			return event{kind: evShutdown}
		}
		if ev, ok := l.poll(); ok {
			return ev
		}
		if !wait {
			return event{}
		}
		l.held = l.wait()
	}
}

// poll takes the most urgent ready event below shutdown without blocking:
// the held event counts as ready at its own rank.
func (l *loop) poll() (event, bool) {
	if l.burst > 0 && l.burst < maxBurst && l.held.kind == evNone {
		// Mid-burst: the window and the requests wait for at most
		// maxBurst updates.
		if ev, ok := l.pollUpdate(); ok {
			l.burst++
			return ev, true
		}
	}
	l.burst = 0
	if l.held.kind == evWindow {
		return l.take(), true
	}
	if l.armed {
		select {
		case <-l.timer.C:
			l.armed = false
			return event{kind: evWindow}, true
		default:
		}
	}
	for rank, ch := range [...]chan request{l.watchRequests, l.requests} {
		if l.held.kind == evRequest && l.held.rank == rank {
			return l.take(), true
		}
		select {
		case req := <-ch:
			return event{kind: evRequest, req: req, rank: rank}, true
		default:
		}
	}
	if l.held.kind != evNone {
		l.burst = 1
		return l.take(), true
	}
	ev, ok := l.pollUpdate()
	if ok {
		l.burst = 1
	}
	return ev, ok
}

func (l *loop) pollUpdate() (event, bool) {
	select {
	case u, ok := <-l.updates:
		return l.updateEvent(u, ok), true
	default:
		return event{}, false
	}
}

// wait blocks until any source is ready and returns what it took, for next
// to rank; evNone when ctx ended.
func (l *loop) wait() event {
	var timerC <-chan time.Time
	if l.armed {
		timerC = l.timer.C
	}
	select {
	case <-l.ctx.Done():
		return event{}
	case <-timerC:
		l.armed = false
		return event{kind: evWindow}
	case req := <-l.watchRequests:
		return event{kind: evRequest, req: req, rank: 0}
	case req := <-l.requests:
		return event{kind: evRequest, req: req, rank: 1}
	case u, ok := <-l.updates:
		return l.updateEvent(u, ok)
	}
}

// take returns the held event and clears it.
func (l *loop) take() event {
	ev := l.held
	l.held = event{}
	return ev
}

// updateEvent is what a receive from the update channel yields.
func (l *loop) updateEvent(u Update, ok bool) event {
	if !ok {
		return event{kind: evClosed}
	}
	l.received++
	l.u = u
	return event{kind: evUpdate}
}

// interrupted reports whether err is ctx's own cancellation surfacing from
// a step (an Apply that honours its context): that is the shutdown, not a
// failure.
func (l *loop) interrupted(err error) bool {
	cerr := l.ctx.Err()
	return cerr != nil && errors.Is(err, cerr)
}

// shutdown flushes the pending batch with a live context, stops the watch
// and returns (applied, nil) — or a fatal store error from that flush.
func (l *loop) shutdown() (Cursor, error) {
	err := l.flush(context.WithoutCancel(l.ctx))
	l.stopAll()
	if pe, ok := errors.AsType[*PanicError](l.watchErr); ok {
		// Nobody else will see it: shutdown returns a nil error.
		l.log.Error("watch goroutine panicked during shutdown", "err", pe)
	}
	return l.applied, err
}

// streamClosed flushes the remainder and surfaces the watch's result. A
// shutdown that raced the stream's end takes the shutdown path; a watch
// that broke its contract gets nothing more folded.
func (l *loop) streamClosed() (Cursor, error) {
	if l.ctx.Err() != nil {
		return l.shutdown()
	}
	l.stopAll()
	if errors.Is(l.watchErr, ErrWatcherContract) {
		return l.applied, l.watchErr
	}
	if err := l.flush(l.ctx); err != nil {
		if l.interrupted(err) {
			return l.shutdown()
		}
		return l.applied, err
	}
	return l.applied, l.watchErr
}

// receive takes one update into the batch (cursor authority: only a
// positioned version moves the batch's high mark) and flushes on the size
// bound.
func (l *loop) receive(u Update) error {
	if movesCursor(u.Version) {
		l.high = CursorAt(u.Version)
	}
	if len(l.repairs) > 0 {
		l.touch(u.Key)
	}
	l.add(u)
	if !l.armed {
		l.timer.Reset(l.f.MaxBatchDelay)
		l.armed = true
	}
	if len(l.batch) >= l.f.MaxBatchSize || len(l.raw) >= l.f.MaxBatchSize {
		return l.flush(l.ctx)
	}
	return nil
}

// add appends u to the raw batch (with a Store) and, if Filter keeps it, to
// the batch for Apply.
func (l *loop) add(u Update) {
	if l.f.Store != nil {
		l.raw = append(l.raw, u)
	}
	if l.f.Filter == nil || l.f.Filter(u) {
		l.batch = append(l.batch, u)
	}
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
	if nRaw > 0 {
		storeErr = catchPanic("store apply", func() error { return l.f.Store.Apply(l.raw, l.applied) })
		if _, panicked := errors.AsType[*PanicError](storeErr); panicked {
			return storeErr
		}
		if storeErr == nil {
			l.failStreak = 0
			clear(l.raw)
			l.raw = l.raw[:0]
		} else {
			l.failStreak++
			if l.failStreak >= MaxStoreFailures {
				return fmt.Errorf("%w (%d in a row): %w", ErrStoreFailed, l.failStreak, storeErr)
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

// foldSynthetic adds updates that did not come from the watch (a resync's
// deletes, a repair's re-reads) and flushes them as one batch. They never
// move the cursor, whatever their versions (add does not touch high): a
// crash before they are folded just repeats the work that produced them. A
// repair's puts carry the revision they were read at, so the fold records
// it; deletes carry the unknown version.
func (l *loop) foldSynthetic(us []Update) error {
	for _, u := range us {
		l.add(u)
	}
	return l.flush(l.ctx)
}

// catchPanic calls fn, converting a panic into a *PanicError for op.
func catchPanic(op string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Op: op, Value: r}
		}
	}()
	return fn()
}
