package natskv

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/slipstream-kv/slipstream"
)

// Latest calls fn with the latest record of every key starting with prefix
// (empty means all), delete and purge markers included. It is the bucket
// side of an audit: headers only, so no value crosses the wire, and nothing
// is buffered here (no set of keys either: the caller, which knows its own
// keys, deduplicates). Each Update carries the key, the revision and the
// operation (OpPut for a value, an empty CAS tombstone included; OpDelete or
// OpPurge for a marker, server limit markers mapped as a watch maps them) and
// a nil Value.
//
// It returns last, the stream's last sequence read before the listing
// started, and keys, the number of keys under prefix holding any record
// (markers included) according to the stream's own count, the smaller of
// the counts taken before and after the listing: a caller that counts the
// distinct keys it was given can tell a short listing.
//
// The listing streams on one consumer like [Bucket.Keys]. It is not a
// snapshot: every key's latest record as of the consumer's creation is
// reported, and a key written during the listing may be reported again,
// newer last. fn is called one record at a time from the connection's
// delivery goroutine and must not block for long. An error from fn stops
// the listing and is returned.
//
// A listing that received fewer records than keys, or whose messages the
// client dropped (a connection lost under load, say), is run again, up to
// three times in all, and fn sees the records of every attempt: a key may be
// reported again, as for a key written during the listing. A listing still
// short then returns an error wrapping ErrShortListing; one during which the
// stream was recreated (its creation time changed) returns an error wrapping
// ErrStreamRecreated. Both wrap slipstream.ErrOperationFailed, and either
// means fn saw an incomplete or mixed listing. Other errors are as for Keys.
func (b *Bucket) Latest(ctx context.Context, prefix string, fn func(slipstream.Update) error) (last, keys uint64, err error) {
	if err := validPrefix(prefix); err != nil {
		return 0, 0, err
	}
	for attempt := 1; ; attempt++ {
		last, keys, err = b.latest(ctx, prefix, fn)
		if !errors.Is(err, ErrShortListing) || attempt == listAttempts {
			return last, keys, err
		}
		b.log.Warn("latest listing short; retrying", "prefix", prefix, "attempt", attempt, "err", err)
	}
}

func (b *Bucket) latest(ctx context.Context, prefix string, fn func(slipstream.Update) error) (last, keys uint64, err error) {
	res, err := b.list(ctx, prefix, true, func(uint64) {}, func(key string, m *nats.Msg) (bool, error) {
		u, ok := decodeMsg(b.pre, m.Subject, m.Reply, m.Header, nil)
		if !ok {
			return false, nil
		}
		// Counted as new: list's own check becomes records ≥ keys; the
		// caller checks distinct keys.
		return true, fn(u)
	}, nil)
	if err != nil {
		return 0, 0, err
	}
	return res.last, res.subjects, nil
}
