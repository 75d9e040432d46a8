package slipstream

import (
	"context"
	"errors"
	"fmt"
)

// The watch goroutine of one Run: resume, cursor-expired fallback and the
// resync hand-off (docs/LOOP.md, "The watch goroutine").

// startWatch starts the watch goroutine. It closes the update channel when
// it returns; its result is read after stopAll.
func (l *loop) startWatch() {
	ctx, cancel := context.WithCancel(l.ctx)
	l.stopWatch = cancel
	l.watchDone.Go(func() {
		l.watchErr = l.watch(ctx)
		if err := catchPanic("watch", func() error { close(l.updates); return nil }); err != nil && l.watchErr == nil {
			l.watchErr = fmt.Errorf("%w: the watcher closed the update channel", ErrWatcherContract)
		}
	})
}

// stopAll stops the watch goroutine and the window timer, and waits for the
// goroutine. It may be called more than once.
func (l *loop) stopAll() {
	l.stopWatch()
	l.watchDone.Wait()
	l.timer.Stop()
}

// watch runs the watch: a state sync without a resume cursor; with one, a
// resume, and when that reports the cursor expired, the expiry barrier
// (resync) and then a state sync.
func (l *loop) watch(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Op: "watch", Value: r}
		}
	}()
	f := l.f
	if l.resume.IsNone() {
		return f.Watcher.Watch(ctx, f.Scope, Cursor{}, l.updates)
	}
	err = f.Watcher.Watch(ctx, f.Scope, l.resume, l.updates)
	if !errors.Is(err, ErrCursorExpired) {
		return err
	}
	l.log.Warn("cursor expired; resyncing from a full watch", LogKeyCursor, l.resume.String(), "reason", err.Error())
	if err := l.expiryBarrier(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	return f.Watcher.Watch(ctx, f.Scope, Cursor{}, l.updates)
}

// expiryBarrier lists the live keys (with a Lister and a Store), hands them
// to the loop and waits for its ack: the loop checks that the resume sent
// nothing, folds the synthetic deletes, and only then acks, so the fallback
// watch does not exist before they are folded and no re-list put can be
// overtaken by a late delete. It returns nil when ctx ends first.
func (l *loop) expiryBarrier(ctx context.Context) error {
	f := l.f
	req := &resyncRequest{ack: make(chan struct{})}
	if f.Lister != nil && f.Store != nil {
		req.diff = true
		for _, p := range f.Scope.List() {
			keys, err := f.Lister.Keys(ctx, p)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				// Degrading to a re-list only would keep the keys deleted
				// in the gap; failing makes the restart resync again.
				return fmt.Errorf("%w: list live keys under %q: %w", ErrResync, p, err)
			}
			req.live = append(req.live, keys...)
		}
	}
	l.watchRequests <- req // capacity 1, and one barrier per Run
	select {
	case <-req.ack:
	case <-ctx.Done():
	}
	return nil
}
