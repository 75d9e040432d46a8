package natskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
)

const (
	// listBatch is how many messages a Keys/Scan drain keeps in flight.
	listBatch = 1024
	// listIdleProbe is how long a drain waits for its next message before
	// asking the server whether anything is still pending (a message can be
	// removed between the consumer's creation and its delivery).
	listIdleProbe = time.Second
	// listAttempts bounds the retries of a listing found short.
	listAttempts = 3
)

// validPrefix reports whether prefix is empty or a token-aligned key prefix
// ("node.", "a.b.").
func validPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if prefix[len(prefix)-1] != '.' || !keyValid(prefix[:len(prefix)-1]) {
		return fmt.Errorf("%w: prefix %q must be empty or whole key tokens ending in \".\"", slipstream.ErrInvalidScope, prefix)
	}
	return nil
}

// Keys returns the live keys starting with prefix (empty means all), in
// delivery order, each once. Delete and purge markers and empty values (CAS
// tombstones) are excluded, as [Bucket.Get] would report them absent. It
// implements slipstream.KeyLister.
//
// The listing runs on one ephemeral consumer (last message per subject,
// headers only, no acks) drained to the count the server reported at its
// creation, so it costs one round trip per batch, not per key, and it is not
// capped by a consumer's max-ack-pending. The number of distinct keys seen
// (markers included) is then cross-checked against the stream's own subject
// count taken before and after the drain; a listing that falls short is
// retried and finally fails with an error wrapping ErrShortListing rather
// than being returned short, because a short listing makes a resync delete
// live keys.
//
// prefix must be token-aligned (empty or ending in "."): otherwise an error
// wraps slipstream.ErrInvalidScope. Other errors wrap
// slipstream.ErrOperationFailed or slipstream.ErrTimeout (each step is
// bounded by the bucket's timeout), or are ctx.Err().
func (b *Bucket) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := validPrefix(prefix); err != nil {
		return nil, err
	}
	var err error
	for attempt := 1; attempt <= listAttempts; attempt++ {
		var keys []string
		keys, err = b.keys(ctx, prefix)
		if !errors.Is(err, ErrShortListing) {
			return keys, err
		}
		b.log.Warn("key listing short; retrying", "prefix", prefix, "attempt", attempt, "err", err)
	}
	return nil, err
}

func (b *Bucket) keys(ctx context.Context, prefix string) ([]string, error) {
	var order []string
	live := make(map[string]bool)
	err := b.list(ctx, prefix, true, func(key string, m jetstream.Msg) bool {
		_, dup := live[key]
		if !dup {
			order = append(order, key)
		}
		hdr := m.Headers()
		live[key] = !isMarker(hdr) && hdr.Get(hdrMsgSize) != "0"
		return !dup
	})
	if err != nil {
		return nil, err
	}
	keys := order[:0]
	for _, k := range order {
		if live[k] {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Scan calls fn with the latest live entry of every key starting with prefix
// (empty means all), streaming on one consumer like [Bucket.Keys]; markers
// and empty values are skipped. A key written during the scan may be
// reported twice, newest last. An error from fn stops the scan and is
// returned. The Entry's Value is owned by fn.
//
// Scan does not retry: when the cross-check finds the listing short, it has
// already called fn for what it saw and returns an error wrapping
// ErrShortListing. Any error means the scan was incomplete. Errors are
// otherwise as for Keys.
func (b *Bucket) Scan(ctx context.Context, prefix string, fn func(slipstream.Entry) error) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	seen := make(map[string]struct{})
	var fnErr error
	err := b.list(ctx, prefix, false, func(key string, m jetstream.Msg) bool {
		_, dup := seen[key]
		if !dup {
			seen[key] = struct{}{}
		}
		if fnErr != nil {
			return !dup
		}
		u, ok := decodeMsg(b.pre, m.Subject(), m.Reply(), m.Headers(), m.Data())
		if ok && u.Op == slipstream.OpPut && len(u.Value) > 0 {
			fnErr = fn(slipstream.Entry{Key: u.Key, Value: u.Value, Version: u.Version})
		}
		return !dup
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// list drains the last message of every subject under prefix through one
// ephemeral consumer, calling fn for each; fn reports whether the key was
// new to this listing. It then cross-checks the distinct count.
func (b *Bucket) list(ctx context.Context, prefix string, headersOnly bool, fn func(key string, m jetstream.Msg) bool) error {
	filter := b.pre + prefix + ">"
	before, err := b.subjectCount(ctx, filter)
	if err != nil {
		return mapErr(ctx, "list: count subjects", err)
	}
	octx, cancel := b.opContext(ctx)
	cons, err := b.stream.CreateConsumer(octx, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		FilterSubject: filter,
		HeadersOnly:   headersOnly,
		// The zero value is AckExplicit, which would stall the drain at
		// max-ack-pending (1,000 by default) and truncate large buckets.
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: listInactiveThreshold,
		MemoryStorage:     true,
		Replicas:          1,
	})
	cancel()
	if err != nil {
		return mapErr(ctx, "list: create consumer", err)
	}
	info := cons.CachedInfo()
	defer func() {
		dctx, cancel := b.opContext(context.WithoutCancel(ctx))
		defer cancel()
		if err := b.stream.DeleteConsumer(dctx, info.Name); err != nil {
			// It still counts against the stream's consumer limit until the
			// inactivity threshold reaps it.
			b.log.Warn("list: delete consumer", "consumer", info.Name, "err", err)
		}
	}()

	var distinct uint64
	if pending := info.NumPending; pending > 0 {
		distinct, err = b.drain(ctx, cons, pending, fn)
		if err != nil {
			return err
		}
	}
	after, err := b.subjectCount(ctx, filter)
	if err != nil {
		return mapErr(ctx, "list: count subjects", err)
	}
	if want := min(before, after); distinct < want {
		return fmt.Errorf("%w: %w: listing under %q saw %d keys, the stream holds %d (before) and %d (after)",
			slipstream.ErrOperationFailed, ErrShortListing, prefix, distinct, before, after)
	}
	return nil
}

// drain receives pending messages from cons, or fewer if the server says
// nothing is left, and returns the number of distinct keys seen.
func (b *Bucket) drain(ctx context.Context, cons jetstream.Consumer, pending uint64, fn func(string, jetstream.Msg) bool) (uint64, error) {
	it, err := cons.Messages(jetstream.PullMaxMessages(listBatch))
	if err != nil {
		return 0, mapErr(ctx, "list: pull messages", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()

	var received, distinct uint64
	var idle time.Duration
	for received < pending {
		m, err := it.Next(jetstream.NextMaxWait(listIdleProbe))
		if err != nil {
			if ctx.Err() != nil {
				return distinct, fmt.Errorf("list: %w", ctx.Err())
			}
			if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
				return distinct, fmt.Errorf("%w: list: receive after %d of %d keys: %w", slipstream.ErrOperationFailed, received, pending, err)
			}
			// Nothing arrived: a message may have been removed before it
			// was delivered. Ask the server whether anything is pending.
			idle += listIdleProbe
			octx, cancel := b.opContext(ctx)
			ci, ierr := cons.Info(octx)
			cancel()
			if ierr != nil {
				return distinct, mapErr(ctx, "list: consumer info", ierr)
			}
			if ci.NumPending == 0 {
				break
			}
			if idle >= b.timeout {
				return distinct, fmt.Errorf("%w: list: no message for %v after %d of %d keys", slipstream.ErrTimeout, idle, received, pending)
			}
			continue
		}
		idle = 0
		received++
		subject := m.Subject()
		if len(subject) <= len(b.pre) {
			continue
		}
		key := subject[len(b.pre):]
		if b.testDropListed != nil && b.testDropListed(key) {
			continue
		}
		if fn(key, m) {
			distinct++
		}
	}
	return distinct, nil
}

// subjectCount returns how many subjects (keys with any retained message,
// markers included) match filter, from the stream's own state: the
// independent count a listing is checked against.
func (b *Bucket) subjectCount(ctx context.Context, filter string) (uint64, error) {
	octx, cancel := b.opContext(ctx)
	defer cancel()
	if filter == b.pre+">" {
		info, err := b.stream.Info(octx)
		if err != nil {
			return 0, err
		}
		return info.State.NumSubjects, nil
	}
	// Stream info with a subjects filter reports the filtered total; an
	// offset past the end keeps the subject map itself out of the reply.
	req, err := json.Marshal(struct {
		SubjectsFilter string `json:"subjects_filter"`
		Offset         int    `json:"offset"`
	}{filter, math.MaxInt32})
	if err != nil {
		return 0, err
	}
	msg, err := b.nc.RequestWithContext(octx, "$JS.API.STREAM.INFO.KV_"+b.name, req)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Total int                 `json:"total"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("decode stream info: %w", err)
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	return uint64(resp.Total), nil
}
