// Package natskv implements slipstream's bucket seam on a NATS JetStream
// key-value bucket: reads, writes with compare-and-swap, key listing, and
// resumable watches that detect when the history after a cursor is gone.
//
// [Open] binds a [Bucket] to a caller's *nats.Conn (build one with [Dial],
// which applies the command-line credential priority). A Bucket implements
// slipstream.Watcher and slipstream.KeyLister, so it plugs into a
// slipstream.Follower as both Watcher and Lister.
//
// # Configuration applies only at creation
//
// Open is get-or-create. The bucket fields of [Config] (History, MaxBytes,
// MaxAge, Replicas, Storage, DiscardOld, AllowTTL) are used only when Open
// creates the bucket; an existing bucket is returned as it is, whatever its
// configuration, and is never reconciled. Change a live bucket out of band.
// A bucket created here defaults to history 1 and a 10 MiB byte limit
// (DefaultMaxBytes) with discard-new: writes then fail with ErrBucketFull at
// capacity. DiscardOld evicts the oldest revisions instead; followers
// recover an eviction through the cursor-expired resync. Storage is honoured
// (file by default, memory on request).
//
// # Timeouts
//
// Every unary operation, every step of Open, Keys and Scan, and every watch
// setup is bounded by Config.Timeout (DefaultTimeout, 30 s). Exceeding it
// returns an error wrapping slipstream.ErrTimeout; the caller's own
// cancellation returns ctx.Err() instead. A running watch is never bounded:
// nats.go ends a watch's subscription when its context ends, so the watch
// runs on the caller's context and only its creation is timed.
//
// # Prefixes
//
// Key prefixes must be token-aligned: empty (all keys) or whole tokens
// ending in "." ("node.", "a.b."). A NATS filter "node>" is a literal
// subject that matches nothing, while a fold's string-prefix match on "node"
// would match "nodes.x" too; a resync under such a prefix would delete keys
// the watch never delivered. Watch, Keys and Scan therefore reject other
// prefixes with slipstream.ErrInvalidScope. A Prefixes scope is served by
// one consumer with one filter per prefix (a prefix covered by a shorter one
// is dropped, since the server refuses overlapping filters); an empty
// Prefixes scope watches nothing and returns at once.
//
// # Resume and expiry
//
// A resume after cursor c reads revision c+1 onward. nats-server silently
// moves a start below the stream's first sequence up to that sequence, so
// Watch compares the cursor with the stream's first sequence before and
// after creating the consumer and returns slipstream.ErrCursorExpired when
// history after the cursor is gone; the Follower then resyncs. A cursor at
// MaxUint64 is refused (c+1 would wrap to 0, which nats.go reads as "no
// resume"). While an all-keys resume runs, a floor guard checks any delivery
// that skips revisions against the first sequence before forwarding it,
// with a 30 s backstop probe, and fails the watch with slipstream.ErrOverrun
// so a restart resyncs.
//
// # Reconnects
//
// A watch survives reconnects. nats.go's ordered consumer would notice a
// consumer lost with its server only after two missed 5 s heartbeats (and
// again if JetStream was not ready yet), so after a reconnect the watch
// re-creates its consumer at once, from the last revision it forwarded, with
// the same resume-window checks; history lost while disconnected fails the
// watch with slipstream.ErrOverrun so a restart resyncs. Nothing is skipped
// or forwarded twice. [Dial] reconnects without limit; a connection that
// closes for good ends the watch with slipstream.ErrWatchClosed.
//
// # Beyond a plain nats.go client
//
//   - A cursor ahead of the stream's last sequence is reported as
//     slipstream.ErrCursorAhead (an ErrCursorExpired). The bucket was deleted and recreated, or
//     restored from an older backup; the server would deliver nothing until
//     its sequence passed the old cursor, and new keys would stay invisible.
//     A recreated bucket whose sequence has already passed the old cursor is
//     caught by its creation time instead: a Bucket remembers the creation
//     time of the stream it was bound to (by Open) or last state-synced from,
//     and refuses to resume on another one (ErrCursorExpired with
//     ErrStreamRecreated). Across a process restart, the caller carries
//     it: persist [Bucket.SyncedStream] beside the cursor (once the state
//     sync's updates are applied, never before) and pass it back as
//     Config.StreamCreated; the Bucket then starts as if it had last synced
//     from that stream, and the first resume on a bucket recreated since is
//     refused the same way. Without it (zero), the stream found at Open is
//     taken as the cursor's, and the audit (package audit) covers that case.
//   - Every running watch, of any scope, checks its stream every 5 s and
//     when its subscription closes: deleted (it waits for it), recreated
//     (creation time changed) or restored below what it delivered ends the
//     watch with slipstream.ErrWatch and ErrStreamRecreated, so the restart
//     resyncs instead of stalling silently.
//   - Keys and Scan cross-check their listing against the stream's own
//     state, read before and after the drain. When the stream did not change
//     meanwhile, the distinct keys delivered (markers included) must number
//     the subjects under the prefix. When it changed, the listing is
//     compared by name with the subjects the stream then holds: a missing
//     key whose last message predates the listing was dropped; one written
//     since is read and added (a count alone would let a key created during
//     the listing mask a dropped one). A short listing is retried by Keys
//     and finally fails with ErrShortListing instead of being returned: a
//     resync deletes every fold key missing from the listing, so a short
//     list would delete live keys.
//   - Keys and Scan return an error, not a partial result, when the drain
//     times out or its subscription ends early.
//   - Get hides markers and empty values; Entry shows empty-value CAS
//     tombstones. Scan reports the unknown version (never 0) for a message
//     whose ACK subject cannot be parsed.
//   - Per-key TTLs are supported ([Bucket.PutTTL], Config.AllowTTL).
//   - An update with revision 0 from nats.go (its parser's answer to a
//     garbled ACK subject) carries the unknown version and never moves a
//     cursor.
//   - Dial strips URL userinfo even when a creds file or inline creds win,
//     so exactly one authentication method is sent.
//   - A watch re-creates its consumer on reconnect (see Reconnects).
//   - A watch whose subscription closes without its context ending returns
//     slipstream.ErrWatchClosed rather than success, so a supervisor
//     restarts it.
//
// # Server behaviours this package depends on
//
// The tests pin them against an embedded nats-server: the inclusive start
// sequence of a resume, the nil "initial values done" entry, the silent
// clamp below the first sequence, what PurgeDeletes and per-key TTL expiry
// do to a resumed watch, and that a recreated bucket leaves an old cursor
// ahead of the stream.
//
// PurgeDeletes removes delete markers from the middle of the stream without
// moving its first sequence: a follower whose cursor predates a delete that
// was then purged resumes without error and never sees the delete. Per-key
// TTL and MaxAge removals write a marker that watchers see as a purge, but
// the marker itself expires after LimitMarkerTTL; a follower offline longer
// than that misses the delete, silently unless the expiry also moved the
// first sequence past its cursor. Both are outside what a cursor check can
// detect. [Bucket.Latest] (a headers-only listing of every key's latest
// record) and [Bucket.LastRecord] (one key's latest record, markers
// included) are what an audit (package audit) uses to find such keys and a
// repair (slipstream.Follower.Repair) to fix them; keeping LimitMarkerTTL and
// the delete-marker purge age longer than any follower's downtime still
// avoids the divergence in the first place.
//
// An embedded server may resurrect a file-backed bucket that was deleted and
// at once recreated (the old stream's files come back); tests that recreate
// a bucket use memory storage.
package natskv
