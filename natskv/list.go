package natskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
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
// consumer's max-ack-pending. It is then cross-checked against the stream's
// own state (see [Bucket.Scan]); a listing found short is retried and
// finally fails with an error wrapping ErrShortListing rather than being
// returned short, because a short listing makes a resync delete live keys.
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
	_, err := b.list(ctx, prefix, true, func(n uint64) {
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
	}, func(key string) bool {
		_, ok := live[key]
		return ok
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
// The listing is cross-checked against the stream's own state, read before
// and after it. When nothing changed in between, it must have seen as many
// keys as the stream holds subjects. Otherwise it is compared by name with
// the subjects the stream holds after it: every subject that the listing did
// not see and whose last message predates the listing was dropped, and the
// listing is short; one whose last message was written during the listing
// (a key created or updated meanwhile) is read and added. Counting alone
// would let a key created during the listing mask a dropped one. (The
// subject names come in sorted pages of 100,000; a subject created during
// the paging can shift a page and escape the comparison.)
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
	_, err := b.list(ctx, prefix, false, func(n uint64) {
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
	}, func(key string) bool {
		_, ok := seen[key]
		return ok
	})
	return err
}

// list drains the last message of every subject under prefix through one
// ephemeral push consumer with flow control, calling fn for each on the
// subscription's goroutine; fn reports whether the key was new to this
// listing, or an error that stops the listing. It then cross-checks the
// listing against the stream's state (see Scan), asking seen whether a key
// was listed, and calling fn (on its own goroutine) for keys written during
// the listing that it missed. size gets the stream's subject count before
// any call of fn.
//
// A nil seen is for a caller that keeps no set of the keys it was given
// (Latest): the listing is then checked by count only, against the smaller
// of the subject counts taken before and after, and the caller checks the
// distinct keys it saw against the returned count. A listing during which
// the stream was recreated fails with ErrStreamRecreated.
func (b *Bucket) list(ctx context.Context, prefix string, headersOnly bool, size func(n uint64), fn func(key string, m *nats.Msg) (bool, error), seen func(key string) bool) (listed, error) {
	filter := b.pre + prefix + ">"
	before, err := b.streamMark(ctx, filter)
	if err != nil {
		return listed{}, mapErr(ctx, "list: read stream state", err)
	}
	size(min(before.subjects, 1<<24))
	if b.testListed != nil {
		b.testListed()
	}
	d := &drain{b: b, fn: fn, done: make(chan struct{})}
	// Subscribe first: the consumer starts pushing as soon as it exists.
	inbox := b.nc.NewInbox()
	sub, err := b.nc.Subscribe(inbox, d.handle)
	if err != nil {
		return listed{}, mapErr(ctx, "list: subscribe", err)
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
		return listed{}, mapErr(ctx, "list: create consumer", err)
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
		return listed{}, err
	}
	if n, _ := sub.Dropped(); n > 0 {
		return listed{}, fmt.Errorf("%w: %w: the client dropped %d messages of the listing under %q", slipstream.ErrOperationFailed, ErrShortListing, n, prefix)
	}
	after, err := b.streamMark(ctx, filter)
	if err != nil {
		return listed{}, mapErr(ctx, "list: read stream state", err)
	}
	res := listed{last: before.last, subjects: min(before.subjects, after.subjects)}
	if after.created != before.created {
		return res, fmt.Errorf("%w: %w: the bucket's stream was recreated during the listing under %q (created %s, now %s)",
			slipstream.ErrOperationFailed, ErrStreamRecreated, prefix,
			time.Unix(0, before.created).UTC().Format(time.RFC3339Nano), time.Unix(0, after.created).UTC().Format(time.RFC3339Nano))
	}
	if after == before || seen == nil {
		// Nothing was written or removed during the listing, and the count
		// is exact; or the caller keeps no set and checks distinct keys
		// itself.
		if distinct < res.subjects {
			return res, fmt.Errorf("%w: %w: listing under %q saw %d keys, the stream holds %d (before) and %d (after)",
				slipstream.ErrOperationFailed, ErrShortListing, prefix, distinct, before.subjects, after.subjects)
		}
		return res, nil
	}
	return res, b.checkByName(ctx, filter, headersOnly, before.last, fn, seen)
}

// listed is what list reports of its stream.
type listed struct {
	last     uint64 // the stream's last sequence before the listing
	subjects uint64 // subjects under the filter: the smaller of the counts before and after
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

// mark is the part of a stream's state a listing is checked against.
type mark struct {
	subjects    uint64 // subjects matching the listing's filter
	first, last uint64 // the stream's first and last sequences
	created     int64  // the stream's creation time (Unix ns): changes when the bucket is recreated
}

// streamMark reads the stream's first and last sequences and how many
// subjects (keys with any retained message, markers included) match
// filter: the independent state a listing is checked against.
func (b *Bucket) streamMark(ctx context.Context, filter string) (mark, error) {
	octx, cancel := b.opContext(ctx)
	defer cancel()
	if filter == b.pre+">" {
		info, err := b.stream.Info(octx)
		if err != nil {
			return mark{}, err
		}
		return mark{info.State.NumSubjects, info.State.FirstSeq, info.State.LastSeq, info.Created.UnixNano()}, nil
	}
	// An offset past the end keeps the subject map itself out of the reply.
	page, err := b.subjectsPage(octx, filter, math.MaxInt32)
	if err != nil {
		return mark{}, err
	}
	return mark{uint64(page.Total), page.State.FirstSeq, page.State.LastSeq, page.Created.UnixNano()}, nil
}

// subjectsPage is one reply of stream info with a subjects filter.
type subjectsPage struct {
	Total   int       `json:"total"`
	Created time.Time `json:"created"`
	State   struct {
		FirstSeq uint64            `json:"first_seq"`
		LastSeq  uint64            `json:"last_seq"`
		Subjects map[string]uint64 `json:"subjects"`
	} `json:"state"`
	Error *jetstream.APIError `json:"error"`
}

// subjectsPage asks for the subjects matching filter from offset on, in
// the server's sorted pages (JSMaxSubjectDetails, 100,000, per page).
func (b *Bucket) subjectsPage(ctx context.Context, filter string, offset int) (*subjectsPage, error) {
	req, err := json.Marshal(struct {
		SubjectsFilter string `json:"subjects_filter"`
		Offset         int    `json:"offset"`
	}{filter, offset})
	if err != nil {
		return nil, err
	}
	msg, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO.KV_"+b.name, req)
	if err != nil {
		return nil, err
	}
	var page subjectsPage
	if err := json.Unmarshal(msg.Data, &page); err != nil {
		return nil, fmt.Errorf("decode stream info: %w", err)
	}
	if page.Error != nil {
		return nil, page.Error
	}
	return &page, nil
}

// checkByName compares a listing taken while the stream changed with the
// subjects the stream now holds under filter: a subject the listing did not
// see whose last message is at or before last (the stream's last sequence
// when the listing began) was dropped, and the listing is short; one
// written since is read and passed to fn.
func (b *Bucket) checkByName(ctx context.Context, filter string, headersOnly bool, last uint64, fn func(key string, m *nats.Msg) (bool, error), seen func(key string) bool) error {
	var missed []string
	for offset := 0; ; {
		octx, cancel := b.opContext(ctx)
		page, err := b.subjectsPage(octx, filter, offset)
		cancel()
		if err != nil {
			return mapErr(ctx, "list: read subject names", err)
		}
		for subject := range page.State.Subjects {
			if key := subject[len(b.pre):]; !seen(key) {
				missed = append(missed, key)
			}
		}
		offset += len(page.State.Subjects)
		if len(page.State.Subjects) == 0 || offset >= page.Total {
			break
		}
	}
	for _, key := range missed {
		octx, cancel := b.opContext(ctx)
		m, err := b.stream.GetLastMsgForSubject(octx, b.pre+key)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // removed since the page was read
		}
		if err != nil {
			return mapErr(ctx, "list: read a missed key", err)
		}
		if m.Sequence <= last {
			return fmt.Errorf("%w: %w: the listing under %q missed %q, unchanged since before it began",
				slipstream.ErrOperationFailed, ErrShortListing, filter[len(b.pre):len(filter)-1], key)
		}
		hdr := nats.Header(m.Header)
		if hdr == nil {
			hdr = nats.Header{}
		}
		data := m.Data
		if headersOnly {
			hdr.Set(hdrMsgSize, strconv.Itoa(len(m.Data)))
			data = nil
		}
		msg := &nats.Msg{Subject: m.Subject, Header: hdr, Data: data,
			Reply: fmt.Sprintf("$JS.ACK.KV_%s.direct.1.%d.%d.0.0", b.name, m.Sequence, m.Sequence)}
		if _, err := fn(key, msg); err != nil {
			return err
		}
	}
	return nil
}
