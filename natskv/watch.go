package natskv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/protocol"
)

// Watch sends the updates of scope into out until ctx is cancelled (then it
// returns nil) or the watch fails. It implements slipstream.Watcher and never
// closes out.
//
// With a none cursor (or revision 0) it is a state-sync watch: the latest
// record of every key in scope, delete markers included, then live changes.
// With a cursor it resumes strictly after it; before and after creating the
// consumer it compares the cursor with the stream's retention window and
// returns an error wrapping slipstream.ErrCursorExpired when history after
// the cursor is gone (the server would silently skip it) or when the cursor
// is ahead of the stream's last sequence (the bucket was recreated or
// restored from a backup; the server would silently wait). An all-keys
// resume is also floor-guarded while it runs: a delivery that jumps past the
// next revision is checked against the stream's first sequence before it is
// forwarded, and a backstop probe runs every 30 s; a trip returns an error
// wrapping slipstream.ErrOverrun (an ErrWatch).
//
// A Prefixes scope is served by one consumer with one filter per prefix; an
// empty Prefixes scope watches nothing and returns nil at once. Prefixes
// must be token-aligned (slipstream.ErrInvalidScope otherwise). The "initial
// values done" signal is consumed here and reported through
// Config.OnProgress, never forwarded. The watch setup is bounded by the
// bucket's timeout (slipstream.ErrTimeout); the watch itself is not. After
// the connection reconnects (a server restart, a failover) the watch is
// re-created from the last revision it forwarded, with the same resume
// checks, instead of waiting for nats.go to notice missed heartbeats. When
// the subscription closes without ctx being cancelled (connection closed, the
// consumer could not be recreated) Watch returns slipstream.ErrWatchClosed.
// A cursor at MaxUint64 is refused with slipstream.ErrCursorOverflow, one
// ahead of the stream's last sequence with slipstream.ErrCursorAhead. Other
// setup failures wrap slipstream.ErrWatch, or slipstream.ErrOperationFailed
// for the stream lookups of the resume checks.
//
// Every watch, of any scope, also checks that its stream is the one it
// started on, every 5 s and when its subscription closes: a bucket deleted
// and recreated (the stream's creation time changed), or restored from an
// older copy (its last sequence below what the watch delivered), ends the
// watch with an error wrapping slipstream.ErrWatch and ErrStreamRecreated
// instead of leaving it waiting for revisions that will never come; while
// the stream is gone, the watch waits for it. A resume on a stream created
// at another time than the one the Bucket was bound to (by Open) or last
// state-synced from fails with slipstream.ErrCursorExpired and
// ErrStreamRecreated, so the restart that follows resyncs.
func (b *Bucket) Watch(ctx context.Context, scope slipstream.Scope, after slipstream.Cursor, out chan<- slipstream.Update) error {
	filters, all, err := watchFilters(scope)
	if err != nil {
		return err
	}
	if len(filters) == 0 {
		return nil // an empty Prefixes scope; WatchFiltered(nil) would watch everything
	}
	rev, ok := after.Uint64()
	if !ok || rev == 0 {
		// The stream's identity before the consumer: a re-creation after
		// this point is caught by the running watch.
		info, err := b.streamInfo(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return mapErr(ctx, "get KV stream for watch", err)
		}
		w, err := b.startWatch(ctx, filters)
		if err != nil {
			return b.setupErr(ctx, err)
		}
		// A state sync re-bases whoever consumes it on this stream.
		b.synced.Store(info.Created.UnixNano())
		return b.forward(ctx, w, filters, 0, false, info.Created, info.State.LastSeq, out)
	}

	start, ok := protocol.ResumeStart(rev)
	if !ok {
		return slipstream.ErrCursorOverflow
	}
	created, head, err := b.checkResume(ctx, rev, "before", time.Unix(0, b.synced.Load()))
	if err != nil {
		return err
	}
	w, err := b.startWatch(ctx, filters, jetstream.ResumeFromRevision(start))
	if err != nil {
		if ctx.Err() == nil && looksCursorExpired(err.Error()) {
			return fmt.Errorf("%w: resume after %d: %w", slipstream.ErrCursorExpired, rev, err)
		}
		return b.setupErr(ctx, err)
	}
	// Head eviction can race the consumer's creation, and the server clamps
	// a start below its first sequence silently: check again.
	if _, _, err := b.checkResume(ctx, rev, "after", created); err != nil {
		w.Stop()
		return err
	}
	b.log.Debug("watch resumed", slipstream.LogKeyCursor, rev, slipstream.LogKeyScope, scope.String())
	return b.forward(ctx, w, filters, rev, all, created, head, out)
}

// watchFilters turns a scope into WatchFiltered's key filters, without
// overlaps (the server refuses overlapping consumer filters). all reports a
// scope that covers every key, whose deliveries are dense.
func watchFilters(scope slipstream.Scope) (filters []string, all bool, err error) {
	if err := scope.Validate(); err != nil {
		return nil, false, err
	}
	if scope.IsAll() {
		return []string{">"}, true, nil
	}
	prefixes := scope.List()
	for _, p := range prefixes {
		if err := validPrefix(p); err != nil {
			return nil, false, err
		}
		if p == "" {
			return []string{">"}, true, nil
		}
	}
	// A token-aligned prefix covers every longer prefix that starts with
	// it; keep the shortest ones only.
	slices.Sort(prefixes)
	prefixes = slices.Compact(prefixes)
	for i, p := range prefixes {
		covered := false
		for _, q := range prefixes[:i] {
			if strings.HasPrefix(p, q) {
				covered = true
				break
			}
		}
		if !covered {
			filters = append(filters, p+">")
		}
	}
	return filters, false, nil
}

// setupErr maps a watch-setup failure. The caller's cancellation is a clean
// end.
func (b *Bucket) setupErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, slipstream.ErrTimeout) {
		return err
	}
	return fmt.Errorf("%w: create watch: %w", slipstream.ErrWatch, err)
}

// startWatch creates the watcher. The subscription lives as long as ctx, so
// the Timeout bounds only the setup: WatchFiltered runs with ctx on its own
// goroutine and is abandoned (its context cancelled, any late watcher
// stopped) if it has not returned in time. filters are copied, since
// WatchFiltered rewrites its argument in place.
func (b *Bucket) startWatch(ctx context.Context, filters []string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	wctx, cancel := context.WithCancel(ctx)
	type result struct {
		w   jetstream.KeyWatcher
		err error
	}
	done := make(chan result, 1)
	go func() {
		w, err := b.kv.WatchFiltered(wctx, slices.Clone(filters), opts...)
		done <- result{w, err}
	}()
	timer := time.NewTimer(b.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			cancel()
			return nil, r.err
		}
		// The watcher ends with ctx (nats.go unsubscribes then); cancel is
		// kept alive by the watcher's own Stop on every exit path.
		return &stoppingWatcher{KeyWatcher: r.w, cancel: cancel}, nil
	case <-timer.C:
	case <-ctx.Done():
	}
	cancel()
	go func() {
		if r := <-done; r.w != nil {
			r.w.Stop()
		}
	}()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%w: create watch: no reply within %v", slipstream.ErrTimeout, b.timeout)
}

// stoppingWatcher releases the watch context with Stop.
type stoppingWatcher struct {
	jetstream.KeyWatcher
	cancel context.CancelFunc
}

func (w *stoppingWatcher) Stop() error {
	err := w.KeyWatcher.Stop()
	w.cancel()
	return err
}

// checkResume fails a resume after rev whose history is incomplete: the
// stream's first sequence is past rev+1 (head eviction, expiry, purge), its
// creation time is not created (the bucket was recreated; a zero created is
// not checked), or its last sequence is below rev (the bucket was recreated
// or restored). It returns the stream's creation time and last sequence
// (zero when ctx ended).
func (b *Bucket) checkResume(ctx context.Context, rev uint64, when string, created time.Time) (time.Time, uint64, error) {
	info, err := b.streamInfo(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return time.Time{}, 0, nil
		}
		return time.Time{}, 0, mapErr(ctx, "get KV stream for resume check", err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if !created.IsZero() && !info.Created.Equal(created) {
		return info.Created, last, fmt.Errorf("%w: %w: the bucket's stream was created at %s, not %s as when the cursor %d was taken (checked %s creating the consumer)",
			slipstream.ErrCursorExpired, ErrStreamRecreated, info.Created.Format(time.RFC3339Nano), created.Format(time.RFC3339Nano), rev, when)
	}
	if !protocol.ResumeWindowOK(rev, first) {
		return info.Created, last, fmt.Errorf("%w: cursor %d is older than the stream's first sequence %d (checked %s creating the consumer)",
			slipstream.ErrCursorExpired, rev, first, when)
	}
	if rev > last {
		return info.Created, last, fmt.Errorf("%w: cursor %d, the stream's last sequence %d (checked %s creating the consumer)",
			slipstream.ErrCursorAhead, rev, last, when)
	}
	return info.Created, last, nil
}

// streamReplaced reports, as an error wrapping slipstream.ErrWatch and
// ErrStreamRecreated, a stream that is not the one a watch started on:
// created at another time, or holding less than the watch already
// delivered (frontier). It is not a slipstream.ErrCursorExpired: the watch
// has sent updates, and the restart's resume is what finds the expiry (the
// Bucket refuses to resume on a stream other than the one it last synced
// from, and a cursor ahead of the stream is expired).
func streamReplaced(info *jetstream.StreamInfo, created time.Time, frontier uint64) error {
	if !info.Created.Equal(created) {
		return fmt.Errorf("%w: %w: under a running watch (created %s, the watch started on one created %s)",
			slipstream.ErrWatch, ErrStreamRecreated, info.Created.Format(time.RFC3339Nano), created.Format(time.RFC3339Nano))
	}
	if last := info.State.LastSeq; last < frontier {
		return fmt.Errorf("%w: %w: the stream's last sequence %d is below the %d the watch delivered (recreated, or restored from an older copy)",
			slipstream.ErrWatch, ErrStreamRecreated, last, frontier)
	}
	return nil
}

// checkStream is the running watch's identity check (see streamReplaced).
// While the stream is gone it waits for it, probing at the check interval:
// there is nothing to watch, and a resync needs the new stream. Other
// lookup failures are not the watch's concern (a lost connection re-creates
// the watch): it returns nil and the next check tries again. It returns nil
// when ctx ends.
func (b *Bucket) checkStream(ctx context.Context, created time.Time, frontier uint64) error {
	warned := false
	for {
		info, err := b.streamInfo(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			if err := streamReplaced(info, created, frontier); err != nil {
				return err // the caller's restart resyncs; it reports the error
			}
			return nil
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			b.log.Debug("stream check failed", "err", err)
			return nil
		}
		if !warned {
			b.log.Warn("the bucket's stream is gone; waiting for it to be recreated")
			warned = true
		}
		t := time.NewTimer(b.streamCheck)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// forward converts and sends the watcher's entries until ctx ends or the
// subscription closes; it always stops the watcher. last is the revision
// the watch resumed after (0 for a state sync); it then tracks the highest
// revision forwarded.
//
// With guard set (an all-keys resume, whose deliveries are dense) it runs
// the live floor guard from last: a delivery that skips revisions is
// checked against the stream's first sequence before it is forwarded, and
// a ticker probes on its own.
//
// After the connection reconnects, the watch is re-created from the last
// forwarded revision (see rewatch).
//
// Every watch checks, at the stream check interval and when its
// subscription closes, that its stream is still the one created at created
// and holds at least what it delivered (checkStream): a bucket deleted and
// recreated, or restored from an older copy, under a running watch ends it
// with an error wrapping slipstream.ErrCursorExpired, and the follower
// resyncs instead of waiting for revisions that will never come.
//
// head is the stream's last sequence read before the watcher's consumer
// was created; each watcher's "initial values done" marker is reported
// with it (Progress.Head), the first and each after a re-creation.
func (b *Bucket) forward(ctx context.Context, w jetstream.KeyWatcher, filters []string, last uint64, guard bool, created time.Time, head uint64, out chan<- slipstream.Update) error {
	defer func() { w.Stop() }()
	reconnected := b.nc.StatusChanged(nats.CONNECTED)
	defer b.nc.RemoveStatusListener(reconnected)
	check := time.NewTicker(b.streamCheck)
	defer check.Stop()
	var tick <-chan time.Time
	if guard {
		t := time.NewTicker(b.guardInterval)
		defer t.Stop()
		tick = t.C
	}
	updates := w.Updates()
	var delivered uint64
	initialDone := false // this watcher's marker was seen
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reconnected:
			w.Stop()
			nw, nhead, err := b.rewatch(ctx, filters, last, created)
			if err != nil || nw == nil {
				return err
			}
			w, updates = nw, nw.Updates()
			head, initialDone = nhead, false
		case <-check.C:
			if err := b.checkStream(ctx, created, last); err != nil {
				return err
			}
		case <-tick:
			if err := b.checkFloor(ctx, last); err != nil {
				return err
			}
		case e, ok := <-updates:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				// The subscription may have ended with its stream.
				if err := b.checkStream(ctx, created, last); err != nil || ctx.Err() != nil {
					return err
				}
				return slipstream.ErrWatchClosed
			}
			if e == nil {
				// End of the initial values: not an update, and it must
				// not touch the frontier or any cursor.
				if !initialDone && b.onProgress != nil {
					b.onProgress(Progress{Delivered: delivered, InitialDone: true, Head: head})
				}
				initialDone = true
				continue
			}
			rev := e.Revision()
			if guard && rev != 0 {
				if next, ok := protocol.ResumeStart(last); ok && rev > next {
					if err := b.checkFloor(ctx, last); err != nil {
						return err
					}
				}
			}
			u := slipstream.Update{Key: e.Key(), Version: revisionVersion(rev)}
			switch e.Operation() {
			case jetstream.KeyValueDelete:
				u.Op = slipstream.OpDelete
			case jetstream.KeyValuePurge:
				u.Op = slipstream.OpPurge
			default:
				u.Op, u.Value = slipstream.OpPut, e.Value()
			}
			select {
			case out <- u:
			case <-ctx.Done():
				return nil
			}
			last = max(last, rev)
			delivered++
			if b.onProgress != nil {
				b.onProgress(Progress{Delivered: delivered, Pending: e.Delta(), Revision: rev})
			}
		}
	}
}

// rewatch re-creates a watch after the connection reconnected. nats.go's
// ordered consumer notices a consumer lost with its server only through
// missed heartbeats (twice 5 s, and again if JetStream was not ready yet),
// so a watch would stall for 10–20 s after a server restart; re-creating it
// at once from the last forwarded revision resumes in about a second.
// Entries the old watcher had buffered but this loop had not forwarded are
// delivered again by the new one, from last+1 on; with last 0 (nothing
// forwarded yet) the state sync starts over.
//
// It retries while JetStream is not ready, with attempts bounded by 1 s
// growing to the bucket's timeout, for up to twice that timeout, and runs the resume-window checks: history lost while disconnected fails
// the watch with slipstream.ErrOverrun, and a stream recreated or restored
// from an older copy meanwhile with an error wrapping slipstream.ErrWatch
// and ErrStreamRecreated (see streamReplaced); either way the restart's
// resume finds the cursor expired and resyncs. A stream that is gone is
// waited for (checkStream). Neither error wraps slipstream.ErrCursorExpired:
// the watch has already sent updates. It returns nil, nil when ctx ends;
// with a watcher, the stream's last sequence read before its consumer was
// created.
func (b *Bucket) rewatch(ctx context.Context, filters []string, last uint64, created time.Time) (jetstream.KeyWatcher, uint64, error) {
	var opts []jetstream.WatchOpt
	if last > 0 {
		start, ok := protocol.ResumeStart(last)
		if !ok {
			return nil, 0, slipstream.ErrCursorOverflow
		}
		opts = append(opts, jetstream.ResumeFromRevision(start))
	}
	// Early attempts get short bounds: right after a failover a request
	// can go unanswered until the stream has a new leader, and waiting the
	// full timeout on it only delays the retry that would succeed.
	deadline := time.Now().Add(2 * b.timeout)
	backoff := 50 * time.Millisecond
	attempt := *b
	attempt.timeout = min(b.timeout, time.Second)
	for {
		w, head, err := attempt.rewatchOnce(ctx, filters, last, created, opts)
		if ctx.Err() != nil {
			if w != nil {
				w.Stop()
			}
			return nil, 0, nil
		}
		if err == nil {
			b.log.Info("watch re-created after reconnect", slipstream.LogKeyCursor, last)
			return w, head, nil
		}
		// The inner errors are ErrCursorExpired: kept as text only, since
		// this watch has sent updates (docs/LOOP.md, the Watcher contract).
		if errors.Is(err, ErrStreamRecreated) || errors.Is(err, slipstream.ErrCursorAhead) {
			return nil, 0, fmt.Errorf("%w: %w: while reconnecting: %v", slipstream.ErrWatch, ErrStreamRecreated, err)
		}
		if errors.Is(err, slipstream.ErrCursorExpired) {
			return nil, 0, fmt.Errorf("%w: while reconnecting: %v", slipstream.ErrOverrun, err)
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			if err := b.checkStream(ctx, created, last); err != nil || ctx.Err() != nil {
				return nil, 0, err
			}
			deadline = time.Now().Add(2 * b.timeout)
			continue
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("%w: re-create watch after reconnect: %w", slipstream.ErrWatch, err)
		}
		b.log.Debug("re-creating watch after reconnect", "err", err)
		select {
		case <-ctx.Done():
			return nil, 0, nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		attempt.timeout = min(2*attempt.timeout, b.timeout)
	}
}

func (b *Bucket) rewatchOnce(ctx context.Context, filters []string, last uint64, created time.Time, opts []jetstream.WatchOpt) (jetstream.KeyWatcher, uint64, error) {
	check := func(when string) (uint64, error) {
		if last > 0 {
			_, head, err := b.checkResume(ctx, last, when, created)
			return head, err
		}
		info, err := b.streamInfo(ctx)
		if err != nil {
			return 0, mapErr(ctx, "get KV stream for watch", err)
		}
		return info.State.LastSeq, streamReplaced(info, created, 0)
	}
	head, err := check("before re-creating")
	if err != nil {
		return nil, 0, err
	}
	w, err := b.startWatch(ctx, filters, opts...)
	if err != nil {
		return nil, 0, err
	}
	if _, err := check("after re-creating"); err != nil {
		w.Stop()
		return nil, 0, err
	}
	return w, head, nil
}

// checkFloor trips the floor guard when the stream's first sequence has
// moved past frontier+1: revisions the watch never delivered were evicted,
// and one of them may have been a delete.
func (b *Bucket) checkFloor(ctx context.Context, frontier uint64) error {
	info, err := b.streamInfo(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return mapErr(ctx, "floor guard stream lookup", err)
	}
	if first := info.State.FirstSeq; !protocol.ResumeWindowOK(frontier, first) {
		return fmt.Errorf("%w: first sequence %d is past the delivered frontier %d", slipstream.ErrOverrun, first, frontier)
	}
	return nil
}
