package natskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
)

const (
	// listIdleProbe is how often a drain checks for progress; when none was
	// made it asks the server whether anything is still pending (a message
	// can be removed between the consumer's creation and its delivery).
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
// The listing runs on one ephemeral push consumer (last message per
// subject, headers only, no acks, flow control) drained to the count the
// server reported at its creation: no round trip per key, and no cap from a
// consumer's max-ack-pending. The number of distinct keys seen
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
		if attempt < listAttempts {
			b.log.Warn("key listing short; retrying", "prefix", prefix, "attempt", attempt, "err", err)
		}
	}
	return nil, err
}

func (b *Bucket) keys(ctx context.Context, prefix string) ([]string, error) {
	var order []string
	var live map[string]bool
	err := b.list(ctx, prefix, true, func(n uint64) {
		// Sized from the stream's subject count: no rehashing at 1 M keys.
		order = make([]string, 0, n)
		live = make(map[string]bool, n)
	}, func(key string, m *nats.Msg) (bool, error) {
		_, dup := live[key]
		if !dup {
			order = append(order, key)
		}
		live[key] = !isMarker(m.Header) && m.Header.Get(hdrMsgSize) != "0"
		return !dup, nil
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
// returned. The Entry's Value is owned by fn. fn is called one entry at a
// time from the connection's delivery goroutine: it must not block for
// long, since the server waits for the listing to keep up.
//
// Scan does not retry: when the cross-check finds the listing short, it has
// already called fn for what it saw and returns an error wrapping
// ErrShortListing. Any error means the scan was incomplete. Errors are
// otherwise as for Keys.
func (b *Bucket) Scan(ctx context.Context, prefix string, fn func(slipstream.Entry) error) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	var seen map[string]struct{}
	return b.list(ctx, prefix, false, func(n uint64) {
		seen = make(map[string]struct{}, n)
	}, func(key string, m *nats.Msg) (bool, error) {
		_, dup := seen[key]
		if !dup {
			seen[key] = struct{}{}
		}
		u, ok := decodeMsg(b.pre, m.Subject, m.Reply, m.Header, m.Data)
		if ok && u.Op == slipstream.OpPut && len(u.Value) > 0 {
			if err := fn(slipstream.Entry{Key: u.Key, Value: u.Value, Version: u.Version}); err != nil {
				return !dup, err
			}
		}
		return !dup, nil
	})
}

// list drains the last message of every subject under prefix through one
// ephemeral push consumer with flow control, calling fn for each on the
// subscription's goroutine; fn reports whether the key was new to this
// listing, or an error that stops the listing. It then cross-checks the
// distinct count against the stream's subject count, which it first passes
// to size, before any call of fn.
func (b *Bucket) list(ctx context.Context, prefix string, headersOnly bool, size func(n uint64), fn func(key string, m *nats.Msg) (bool, error)) error {
	filter := b.pre + prefix + ">"
	before, err := b.subjectCount(ctx, filter)
	if err != nil {
		return mapErr(ctx, "list: count subjects", err)
	}
	size(min(before, 1<<24))
	d := &drain{b: b, fn: fn, done: make(chan struct{})}
	// Subscribe first: the consumer starts pushing as soon as it exists.
	inbox := b.nc.NewInbox()
	sub, err := b.nc.Subscribe(inbox, d.handle)
	if err != nil {
		return mapErr(ctx, "list: subscribe", err)
	}
	defer sub.Unsubscribe()
	octx, cancel := b.opContext(ctx)
	cons, err := b.stream.CreatePushConsumer(octx, jetstream.ConsumerConfig{
		DeliverSubject: inbox,
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
		FilterSubject:  filter,
		HeadersOnly:    headersOnly,
		// The zero value is AckExplicit, which would stall the drain at
		// max-ack-pending (1,000 by default) and truncate large buckets.
		AckPolicy:         jetstream.AckNonePolicy,
		FlowControl:       true,
		IdleHeartbeat:     5 * time.Second,
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

	d.start(info.NumPending)
	distinct, err := d.wait(ctx, cons)
	if err != nil {
		return err
	}
	if n, _ := sub.Dropped(); n > 0 {
		return fmt.Errorf("%w: %w: the client dropped %d messages of the listing under %q", slipstream.ErrOperationFailed, ErrShortListing, n, prefix)
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

// drain is the state of one listing, shared between the subscription's
// goroutine (handle) and the caller (start, wait).
type drain struct {
	b    *Bucket
	fn   func(string, *nats.Msg) (bool, error)
	done chan struct{} // closed once finished

	mu       sync.Mutex
	finished bool
	known    bool   // pending has been set
	pending  uint64 // messages the consumer had at creation
	received uint64
	distinct uint64
	err      error
}

// handle receives one pushed message.
func (d *drain) handle(m *nats.Msg) {
	if len(m.Data) == 0 && m.Header.Get("Status") != "" {
		// Flow control request or idle heartbeat.
		if m.Reply != "" {
			m.Respond(nil)
		}
		if stalled := m.Header.Get("Nats-Consumer-Stalled"); stalled != "" {
			d.b.nc.Publish(stalled, nil)
		}
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.finished {
		return
	}
	d.received++
	if len(m.Subject) > len(d.b.pre) {
		key := m.Subject[len(d.b.pre):]
		if d.b.testDropListed == nil || !d.b.testDropListed(key) {
			isNew, err := d.fn(key, m)
			if err != nil {
				d.err = err
				d.finishLocked()
				return
			}
			if isNew {
				d.distinct++
			}
		}
	}
	if d.known && d.received >= d.pending {
		d.finishLocked()
	}
}

func (d *drain) finishLocked() {
	if !d.finished {
		d.finished = true
		close(d.done)
	}
}

// start records how many messages the consumer had pending at creation.
func (d *drain) start(pending uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending, d.known = pending, true
	if d.received >= pending {
		d.finishLocked()
	}
}

// wait returns when the listing is complete: pending messages received, or
// fewer when the server says nothing is left (a message can be removed
// between the consumer's creation and its delivery). It fails when no
// message arrives for the bucket's timeout, or when ctx ends.
func (d *drain) wait(ctx context.Context, cons jetstream.PushConsumer) (uint64, error) {
	ticker := time.NewTicker(listIdleProbe)
	defer ticker.Stop()
	var idle time.Duration
	var lastReceived uint64
	for {
		select {
		case <-d.done:
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.distinct, d.err
		case <-ctx.Done():
			d.stop()
			return 0, fmt.Errorf("list: %w", ctx.Err())
		case <-ticker.C:
		}
		d.mu.Lock()
		received, pending := d.received, d.pending
		d.mu.Unlock()
		if received != lastReceived {
			lastReceived, idle = received, 0
			continue
		}
		idle += listIdleProbe
		octx, cancel := d.b.opContext(ctx)
		ci, err := cons.Info(octx)
		cancel()
		if err != nil {
			d.stop()
			return 0, mapErr(ctx, "list: consumer info", err)
		}
		if ci.NumPending == 0 {
			d.mu.Lock()
			d.finishLocked()
			d.mu.Unlock()
			continue
		}
		if idle >= d.b.timeout {
			d.stop()
			return 0, fmt.Errorf("%w: list: no message for %v after %d of %d keys", slipstream.ErrTimeout, idle, received, pending)
		}
	}
}

// stop ends the listing early; the handler ignores later messages.
func (d *drain) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.finishLocked()
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
