package slipstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Requests: work another goroutine hands to the running loop, done on the
// loop goroutine between two flushes (docs/LOOP.md, "Requests").
//
// A request kind is a type implementing request. Requests from the watch
// goroutine (the expiry barrier) go on loop.watchRequests, which ranks
// above loop.requests, where callers' requests go through [ask]. Adding a
// caller request kind takes a method on the loop that does the work, and an
// exported Follower method that calls ask with it (see Export).

// request is one piece of work for the loop.
type request interface {
	// serve does the work on the loop goroutine. It normally flushes the
	// pending batch first, so it sees every update received so far folded.
	// An error it returns stops Run.
	serve(l *loop) error
	// abandon tells the requester, with err, that serve will not run.
	abandon(err error)
}

// call is a caller's request whose result goes back to it.
type call[T any] struct {
	// do runs on the loop. Its value and error go to the caller; with fatal
	// set the error also stops Run.
	do    func(l *loop) (v T, err error, fatal bool)
	reply chan callResult[T] // capacity 1: the loop never waits on it
}

type callResult[T any] struct {
	v   T
	err error
}

func (c *call[T]) serve(l *loop) error {
	v, err, fatal := c.do(l)
	c.reply <- callResult[T]{v, err}
	if fatal {
		return err
	}
	return nil
}

func (c *call[T]) abandon(err error) { c.reply <- callResult[T]{err: err} }

// ask hands do to the running loop and waits for its result. It returns
// [ErrNotRunning] when Run is not active or returns before serving it, and
// ctx.Err() when ctx ends first (the work may still run).
func ask[T any](ctx context.Context, f *Follower, do func(l *loop) (T, error, bool)) (T, error) {
	var zero T
	f.mu.Lock()
	requests, done := f.mu.requests, f.mu.done
	f.mu.Unlock()
	if requests == nil {
		return zero, ErrNotRunning
	}
	c := &call[T]{do: do, reply: make(chan callResult[T], 1)}
	select {
	case requests <- c:
	case <-done:
		return zero, ErrNotRunning
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case r := <-c.reply:
		return r.v, r.err
	case <-done:
		select {
		case r := <-c.reply:
			return r.v, r.err
		default:
			return zero, ErrNotRunning
		}
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Export asks the running loop to export its Store into dir between two
// flushes: pending updates are flushed first, so the export's cursor is the
// applied cursor (or, after a transient store failure, the store's own
// lagging but self-consistent cursor). An export failure is returned here
// and does not stop Run; a panic in Store.ExportTo stops both with a
// [*PanicError]. It returns [ErrNotRunning] when Run is not active and an
// error wrapping [ErrUnsupported] when the Follower has no Store.
func (f *Follower) Export(ctx context.Context, dir string) (Export, error) {
	return ask(ctx, f, func(l *loop) (Export, error, bool) { return l.export(dir) })
}

// export flushes, then exports the store into dir.
func (l *loop) export(dir string) (exp Export, err error, fatal bool) {
	if err := l.flush(l.ctx); err != nil {
		return Export{}, err, true
	}
	if l.f.Store == nil {
		return Export{}, fmt.Errorf("%w: the follower has no store to export", ErrUnsupported), false
	}
	err = catchPanic("store export", func() (err error) {
		exp, err = l.f.Store.ExportTo(dir)
		return err
	})
	if _, panicked := errors.AsType[*PanicError](err); panicked {
		return Export{}, err, true
	}
	if err == nil {
		l.log.Info("fold exported", LogKeyDir, dir, LogKeyCursor, exp.Cursor.String())
	}
	return exp, err, false
}

// resyncRequest is the expiry barrier the watch goroutine sends when a
// resume reported its cursor expired: with diff, the live keys to diff the
// fold against. The loop closes ack once the synthetic deletes are folded.
type resyncRequest struct {
	diff bool
	live []string
	ack  chan struct{}
}

func (r *resyncRequest) serve(l *loop) error {
	// The Watcher contract: a resume that reports its cursor expired has
	// sent nothing. What it sent may lie past a gap of lost history, so
	// nothing of it is folded and Run stops.
	if n := l.received + len(l.updates); n > 0 {
		return fmt.Errorf("%w: the resume sent %d updates, then reported its cursor expired", ErrWatcherContract, n)
	}
	if !r.diff {
		l.log.Warn("cursor expired without a Lister and a Store: keys deleted during the gap may persist")
		close(r.ack)
		return nil
	}
	if err := l.flush(l.ctx); err != nil {
		return err
	}
	live := make(map[string]struct{}, len(r.live))
	for _, k := range r.live {
		live[k] = struct{}{}
	}
	stale, err := l.staleKeys(live)
	if err != nil {
		return err
	}
	if len(stale) > 0 {
		l.log.Warn("resync deleting keys absent from the bucket", LogKeyKeys, len(stale))
	}
	deletes := make([]Update, len(stale))
	for i, k := range stale {
		deletes[i] = Update{Op: OpDelete, Key: k} // unknown version: the cursor stays
		if len(l.repairs) > 0 {
			l.touch(k) // newer than a running repair's read, or re-listed after
		}
	}
	if err := l.foldSynthetic(deletes); err != nil {
		return err
	}
	close(r.ack)
	if l.f.OnResync != nil {
		l.f.OnResync(ResyncInfo{LiveKeys: len(live), StaleKeys: len(stale)})
	}
	return nil
}

// abandon leaves the watch goroutine waiting on ack until its context ends.
func (r *resyncRequest) abandon(error) {}

// staleKeys returns the fold's keys in scope that live does not hold,
// sorted and without duplicates (overlapping prefixes list a key twice).
func (l *loop) staleKeys(live map[string]struct{}) ([]string, error) {
	var stale []string
	for _, p := range l.f.Scope.List() {
		err := l.f.Store.ForEachInRange(p, func(e Entry) error {
			if _, ok := live[e.Key]; !ok {
				stale = append(stale, e.Key)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%w: scan the fold under %q: %w", ErrResync, p, err)
		}
	}
	slices.Sort(stale)
	return slices.Compact(stale), nil
}

// serve runs a request.
func (l *loop) serve(req request) error { return req.serve(l) }
