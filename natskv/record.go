package natskv

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
)

var _ slipstream.RecordReader = (*Bucket)(nil)

// LastRecord returns key's latest record, delete and purge markers (server
// limit markers too) included, as an Update carrying its revision: an
// OpPut with the value (an empty CAS tombstone included), or an OpDelete or
// OpPurge with a nil Value. It reports false when the key has no record at
// all. It implements slipstream.RecordReader, the read of a repair.
//
// An invalid key returns an error wrapping slipstream.ErrInvalidKey; other
// errors are as for [Bucket.Entry].
func (b *Bucket) LastRecord(ctx context.Context, key string) (slipstream.Update, bool, error) {
	if !keyValid(key) {
		return slipstream.Update{}, false, fmt.Errorf("%w: read %q: %w", slipstream.ErrInvalidKey, key, jetstream.ErrInvalidKey)
	}
	octx, cancel := b.opContext(ctx)
	defer cancel()
	msg, err := b.stream.GetLastMsgForSubject(octx, b.pre+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return slipstream.Update{}, false, nil
	}
	if err != nil {
		return slipstream.Update{}, false, mapErr(ctx, fmt.Sprintf("read %q", key), err)
	}
	u, ok := decodeMsg(b.pre, msg.Subject, "", msg.Header, msg.Data)
	if !ok {
		return slipstream.Update{}, false, fmt.Errorf("%w: read %q: the server answered with subject %q", slipstream.ErrOperationFailed, key, msg.Subject)
	}
	u.Version = revisionVersion(msg.Sequence)
	return u, true, nil
}

// RecordAt returns the record the bucket's stream holds at sequence rev, as
// [Bucket.LastRecord] does for a key: an Update carrying its key, op, value
// and revision. It reports false when the stream no longer holds (or never
// held) a message at rev: overwritten beyond the history, deleted, expired,
// or past the last sequence. A message of the stream that is not a key's
// record returns an error wrapping slipstream.ErrOperationFailed.
func (b *Bucket) RecordAt(ctx context.Context, rev uint64) (slipstream.Update, bool, error) {
	if rev == 0 {
		return slipstream.Update{}, false, nil
	}
	octx, cancel := b.opContext(ctx)
	defer cancel()
	msg, err := b.stream.GetMsg(octx, rev)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return slipstream.Update{}, false, nil
	}
	if err != nil {
		return slipstream.Update{}, false, mapErr(ctx, fmt.Sprintf("read revision %d", rev), err)
	}
	u, ok := decodeMsg(b.pre, msg.Subject, "", msg.Header, msg.Data)
	if !ok {
		return slipstream.Update{}, false, fmt.Errorf("%w: read revision %d: the stream holds subject %q there", slipstream.ErrOperationFailed, rev, msg.Subject)
	}
	u.Version = revisionVersion(msg.Sequence)
	return u, true, nil
}
