package slipstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// Resume is the cursor to resume after. Without a Store, none starts
	// with a state-sync watch. With a Store, none resumes after the Store's
	// own Cursor (a state sync for a fresh fold); a Resume ahead of the
	// Store's cursor is refused with [ErrResumeAhead], since the store's
	// cursor may lag a value remembered from OnApplied (after a failed
	// store write) and resuming past it would skip the gap. A Resume behind
	// it is allowed: the updates in between are delivered again.
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
		requests chan request  // caller requests to the running loop; nil when idle
		done     chan struct{} // closed when the running loop returns
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

// Run follows the bucket until ctx is cancelled (shutdown) or the watch
// ends, and returns the applied cursor.
//
// On shutdown the pending batch is flushed with a context that is no longer
// cancelled, and Run returns (cursor, nil). Updates received but not yet
// batched are abandoned; the cursor does not claim them and the next resume
// re-delivers them. An Apply that fails with the cancellation of ctx is part
// of the shutdown: its batch is flushed again, with the live context. When
// the watch ends on its own, the remainder is flushed and the watch's error
// (if any) is returned.
//
// Run returns an error before anything starts if the Follower is
// misconfigured (an [ErrInvalidConfig]: see [Follower.Validate],
// [ErrResumeAhead], [ErrRunning]), an Apply error as soon as it happens, and
// an [ErrWatch] for a watch failure, a failed resync ([ErrResync]), a Store
// that failed MaxStoreFailures consecutive times ([ErrStoreFailed]), a
// Watcher that broke its contract ([ErrWatcherContract]), or a Watcher or
// Store that panicked ([PanicError]). A Watcher panic during shutdown is
// logged at Error level instead, since Run then returns nil. The returned
// cursor is always one whose updates were all applied.
//
// The loop's protocol is described in docs/LOOP.md.
func (f *Follower) Run(ctx context.Context) (Cursor, error) {
	resume, err := f.resume()
	if err != nil {
		return resume, err
	}
	requests, done, err := f.register()
	if err != nil {
		return resume, err
	}
	defer f.unregister(done)
	return newLoop(ctx, f, resume, requests).run()
}

// resume returns the cursor Run resumes after: Resume, or with a Store and
// no Resume the Store's cursor. It refuses a Resume ahead of the Store's.
func (f *Follower) resume() (Cursor, error) {
	if err := f.Validate(); err != nil {
		return f.Resume, err
	}
	if f.Store == nil {
		return f.Resume, nil
	}
	stored := f.Store.Cursor()
	if f.Resume.IsNone() || f.Resume == stored {
		return stored, nil
	}
	r, rok := f.Resume.Uint64()
	s, sok := stored.Uint64()
	if stored.IsNone() || !rok || !sok || r > s {
		return stored, fmt.Errorf("%w (Resume %s, store cursor %s)", ErrResumeAhead, f.Resume, stored)
	}
	return f.Resume, nil
}

// register marks the Follower running and returns the channel its caller
// requests arrive on and the channel closed when it stops.
func (f *Follower) register() (chan request, chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.requests != nil {
		return nil, nil, ErrRunning
	}
	f.mu.requests, f.mu.done = make(chan request), make(chan struct{})
	return f.mu.requests, f.mu.done, nil
}

func (f *Follower) unregister(done chan struct{}) {
	f.mu.Lock()
	f.mu.requests, f.mu.done = nil, nil
	f.mu.Unlock()
	close(done)
}

func (f *Follower) logger() *slog.Logger {
	l := f.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With(LogKeyComponent, "follower")
}
