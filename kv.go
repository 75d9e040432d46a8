package slipstream

import "context"

// Watcher is the change stream a [Follower] consumes.
//
// Watch sends the updates of scope into out, in revision order, and returns
// only when the watch ends: nil when ctx is cancelled (or the stream ends
// cleanly), an error otherwise. Implementations must select on ctx.Done()
// for every send and must never close out.
//
// With a none cursor, Watch is a state-sync watch: first the latest record of
// every key in scope (which may be a delete marker), then live changes. With
// a cursor, it delivers only the updates strictly after it; when the history
// after the cursor is incomplete it returns an error wrapping
// [ErrCursorExpired] and the caller falls back to a state-sync watch.
//
// ErrCursorExpired may only be returned before the first update is sent: an
// update sent after the cursor may lie past the lost history, and a cursor
// advanced over it would hide the loss from every later resume. History
// found lost after updates were sent is reported with another error (such
// as [ErrOverrun]), so that the restart's resume finds the expiry. A
// [Follower] whose resume sends updates and then reports ErrCursorExpired
// stops with [ErrWatcherContract] without folding what was sent since its
// last flush.
//
// A Prefixes scope is served by one consumer; an empty Prefixes scope watches
// nothing and returns nil at once.
type Watcher interface {
	Watch(ctx context.Context, scope Scope, after Cursor, out chan<- Update) error
}

// KeyLister lists live keys. A [Follower] uses it, with a [Store], for the
// cursor-expired resync: fold keys absent from the listing are deleted.
//
// Keys returns the names of the live keys starting with prefix (empty prefix
// means all keys), excluding delete markers and empty-value entries. A short
// listing deletes live keys from the fold, so an implementation must return
// an error rather than a partial list.
type KeyLister interface {
	Keys(ctx context.Context, prefix string) ([]string, error)
}
