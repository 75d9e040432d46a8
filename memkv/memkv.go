package memkv

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/protocol"
)

type record struct {
	seq     uint64
	op      slipstream.Op
	key     string
	value   []byte
	removed bool // purged out of the middle of the log
}

// KV is an in-memory bucket. The zero value is not usable; call [New].
type KV struct {
	mu struct {
		sync.Mutex
		log     []record          // retained records; log[i].seq == base+i
		base    uint64            // sequence of log[0]
		last    uint64            // last assigned sequence
		latest  map[string]uint64 // key → sequence of its latest retained record
		changed chan struct{}     // closed and replaced on every change
	}
}

var (
	_ slipstream.Watcher   = (*KV)(nil)
	_ slipstream.KeyLister = (*KV)(nil)
)

// New returns an empty bucket.
func New() *KV {
	kv := &KV{}
	kv.mu.base = 1
	kv.mu.latest = make(map[string]uint64)
	kv.mu.changed = make(chan struct{})
	return kv
}

func validKey(key string) error {
	if key == "" || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") ||
		strings.ContainsAny(key, " \t\r\n*>") {
		return fmt.Errorf("%w: %q", slipstream.ErrInvalidKey, key)
	}
	return nil
}

// append adds a record under the lock and returns its revision.
func (kv *KV) appendLocked(op slipstream.Op, key string, value []byte) uint64 {
	kv.mu.last++
	seq := kv.mu.last
	var v []byte
	if len(value) > 0 {
		v = append([]byte(nil), value...)
	}
	kv.mu.log = append(kv.mu.log, record{seq: seq, op: op, key: key, value: v})
	kv.mu.latest[key] = seq
	close(kv.mu.changed)
	kv.mu.changed = make(chan struct{})
	return seq
}

func (kv *KV) recordLocked(seq uint64) *record {
	if seq < kv.mu.base || seq >= kv.mu.base+uint64(len(kv.mu.log)) {
		return nil
	}
	r := &kv.mu.log[seq-kv.mu.base]
	if r.removed {
		return nil
	}
	return r
}

// lastLocked returns the key's latest retained record, or nil.
func (kv *KV) lastLocked(key string) *record {
	seq, ok := kv.mu.latest[key]
	if !ok {
		return nil
	}
	return kv.recordLocked(seq)
}

// Put writes value at key and returns its revision.
func (kv *KV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := validKey(key); err != nil {
		return 0, err
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.appendLocked(slipstream.OpPut, key, value), nil
}

// Create writes value at key only if the key is absent or its last record is
// a delete or purge marker; otherwise it returns
// [slipstream.ErrAlreadyExists].
func (kv *KV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := validKey(key); err != nil {
		return 0, err
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if r := kv.lastLocked(key); r != nil && r.op == slipstream.OpPut {
		return 0, fmt.Errorf("%w: %q", slipstream.ErrAlreadyExists, key)
	}
	return kv.appendLocked(slipstream.OpPut, key, value), nil
}

// Update writes value at key only if rev is the key's latest revision;
// otherwise it returns [slipstream.ErrRevisionMismatch] (also for a key
// that never existed).
func (kv *KV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if err := validKey(key); err != nil {
		return 0, err
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	r := kv.lastLocked(key)
	if r == nil || r.seq != rev {
		return 0, fmt.Errorf("%w: %q at %d", slipstream.ErrRevisionMismatch, key, rev)
	}
	return kv.appendLocked(slipstream.OpPut, key, value), nil
}

// Delete writes a delete marker for key.
func (kv *KV) Delete(ctx context.Context, key string) (uint64, error) {
	if err := validKey(key); err != nil {
		return 0, err
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.appendLocked(slipstream.OpDelete, key, nil), nil
}

// DeleteWithVersion is a CAS-gated logical delete: it writes an empty-value
// put (a tombstone) if rev is the key's latest revision, so that concurrent
// CAS writers still conflict.
func (kv *KV) DeleteWithVersion(ctx context.Context, key string, rev uint64) (uint64, error) {
	return kv.Update(ctx, key, nil, rev)
}

// Purge removes every earlier record of key and writes a purge marker.
func (kv *KV) Purge(ctx context.Context, key string) (uint64, error) {
	if err := validKey(key); err != nil {
		return 0, err
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	for i := range kv.mu.log {
		if kv.mu.log[i].key == key {
			kv.mu.log[i].removed = true
			kv.mu.log[i].value = nil
		}
	}
	return kv.appendLocked(slipstream.OpPurge, key, nil), nil
}

// Entry returns the key's latest put, including an empty-value tombstone;
// false when the key is absent or its last record is a marker.
func (kv *KV) Entry(ctx context.Context, key string) (slipstream.Entry, bool, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	r := kv.lastLocked(key)
	if r == nil || r.op != slipstream.OpPut {
		return slipstream.Entry{}, false, nil
	}
	return slipstream.Entry{Key: key, Value: r.value, Version: slipstream.VersionFromUint64(r.seq)}, true, nil
}

// Get returns the key's latest value; false when absent, deleted, or empty.
func (kv *KV) Get(ctx context.Context, key string) (slipstream.Entry, bool, error) {
	e, ok, err := kv.Entry(ctx, key)
	if !ok || err != nil || len(e.Value) == 0 {
		return slipstream.Entry{}, false, err
	}
	return e, true, nil
}

// Scan calls fn with the latest live entry of every key under prefix
// (markers and empty values excluded), in key order, from a snapshot taken
// when it starts. An error from fn stops the scan and is returned. The
// Entry's Value is owned by fn.
func (kv *KV) Scan(ctx context.Context, prefix string, fn func(slipstream.Entry) error) error {
	for _, e := range kv.live(prefix) {
		e.Value = append([]byte(nil), e.Value...)
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Keys returns the live keys under prefix, in key order.
func (kv *KV) Keys(ctx context.Context, prefix string) ([]string, error) {
	entries := kv.live(prefix)
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	return keys, nil
}

// live returns the live entries under prefix, in key order; their values
// are the log's own.
func (kv *KV) live(prefix string) []slipstream.Entry {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	var out []slipstream.Entry
	for key := range kv.mu.latest {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		r := kv.lastLocked(key)
		if r == nil || r.op != slipstream.OpPut || len(r.value) == 0 {
			continue
		}
		out = append(out, slipstream.Entry{Key: key, Value: r.value, Version: slipstream.VersionFromUint64(r.seq)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Compact evicts every record with revision ≤ upTo from the head of the log,
// as a server's age or size limits do. Keys whose latest record is evicted
// disappear, and their delete markers with them.
func (kv *KV) Compact(upTo uint64) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if upTo > kv.mu.last {
		upTo = kv.mu.last
	}
	if upTo < kv.mu.base {
		return
	}
	n := upTo - kv.mu.base + 1
	for _, r := range kv.mu.log[:n] {
		if seq, ok := kv.mu.latest[r.key]; ok && seq == r.seq {
			delete(kv.mu.latest, r.key)
		}
	}
	kv.mu.log = append([]record(nil), kv.mu.log[n:]...)
	kv.mu.base = upTo + 1
	close(kv.mu.changed)
	kv.mu.changed = make(chan struct{})
}

// FirstRevision returns the first retained revision (LastRevision+1 when the
// log is empty).
func (kv *KV) FirstRevision() uint64 {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.mu.base
}

// LastRevision returns the last assigned revision (0 when nothing was
// written).
func (kv *KV) LastRevision() uint64 {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.mu.last
}

func toUpdate(r *record) slipstream.Update {
	return slipstream.Update{Op: r.op, Key: r.key, Value: r.value, Version: slipstream.VersionFromUint64(r.seq)}
}

// Watch implements [slipstream.Watcher]. A cursor that is none, revision 0,
// or not an 8-byte token starts a state-sync watch. A resume fails with an
// error wrapping [slipstream.ErrCursorExpired] when the first retained
// revision is past the cursor + 1, [slipstream.ErrCursorAhead] when the
// cursor is ahead of the last revision, and [slipstream.ErrCursorOverflow]
// for a cursor of MaxUint64. A live watch that compaction overruns fails
// with [slipstream.ErrOverrun].
func (kv *KV) Watch(ctx context.Context, scope slipstream.Scope, after slipstream.Cursor, out chan<- slipstream.Update) error {
	if err := scope.Validate(); err != nil {
		return err
	}
	if !scope.IsAll() && len(scope.List()) == 0 {
		return nil
	}
	var pos uint64 // last sequence examined
	var relist []slipstream.Update
	kv.mu.Lock()
	rev, ok := after.Uint64()
	if !ok || rev == 0 {
		for key, seq := range kv.mu.latest {
			if scope.Contains(key) {
				if r := kv.recordLocked(seq); r != nil {
					relist = append(relist, toUpdate(r))
				}
			}
		}
		pos = kv.mu.last
	} else {
		first, last := kv.mu.base, kv.mu.last
		if !protocol.ResumeWindowOK(rev, first) {
			kv.mu.Unlock()
			return fmt.Errorf("%w: first retained revision %d is past cursor %d + 1", slipstream.ErrCursorExpired, first, rev)
		}
		// The window check passes at MaxUint64 by saturation; refuse it
		// before the ahead-of-last check, as a NATS resume does.
		start, ok := protocol.ResumeStart(rev)
		if !ok {
			kv.mu.Unlock()
			return slipstream.ErrCursorOverflow
		}
		if rev > last {
			kv.mu.Unlock()
			return fmt.Errorf("%w: cursor %d, last revision %d", slipstream.ErrCursorAhead, rev, last)
		}
		pos = start - 1
	}
	kv.mu.Unlock()
	sort.Slice(relist, func(i, j int) bool {
		a, _ := relist[i].Version.Uint64()
		b, _ := relist[j].Version.Uint64()
		return a < b
	})
	for _, u := range relist {
		select {
		case out <- u:
		case <-ctx.Done():
			return nil
		}
	}
	var pending []slipstream.Update
	for {
		pending = pending[:0]
		kv.mu.Lock()
		if pos+1 < kv.mu.base {
			first := kv.mu.base
			kv.mu.Unlock()
			return fmt.Errorf("%w: first revision %d is past the delivered frontier %d", slipstream.ErrOverrun, first, pos)
		}
		for seq := pos + 1; seq <= kv.mu.last && len(pending) < 256; seq++ {
			pos = seq
			if r := kv.recordLocked(seq); r != nil && scope.Contains(r.key) {
				pending = append(pending, toUpdate(r))
			}
		}
		changed := kv.mu.changed
		caughtUp := pos == kv.mu.last
		kv.mu.Unlock()
		for _, u := range pending {
			select {
			case out <- u:
			case <-ctx.Done():
				return nil
			}
		}
		if caughtUp {
			select {
			case <-changed:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// Latest calls fn with the latest retained record of every key starting
// with prefix, delete and purge markers included, headers only (a nil
// Value), in key order. It returns the last assigned revision and the number
// of keys listed, read at the same instant as the records. An error from fn
// stops the listing and is returned.
func (kv *KV) Latest(ctx context.Context, prefix string, fn func(slipstream.Update) error) (last, keys uint64, err error) {
	kv.mu.Lock()
	var heads []slipstream.Update
	for key := range kv.mu.latest {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		if r := kv.lastLocked(key); r != nil {
			heads = append(heads, slipstream.Update{Op: r.op, Key: key, Version: slipstream.VersionFromUint64(r.seq)})
		}
	}
	last = kv.mu.last
	kv.mu.Unlock()
	sort.Slice(heads, func(i, j int) bool { return heads[i].Key < heads[j].Key })
	for _, u := range heads {
		if err := fn(u); err != nil {
			return 0, 0, err
		}
	}
	return last, uint64(len(heads)), nil
}

// PurgeDeletes removes every key whose latest record is a delete or purge
// marker, markers included, from the middle of the log without moving the
// first revision, as a server's PurgeDeletes does: a watch resuming from
// before a removed marker never sees that delete.
func (kv *KV) PurgeDeletes() {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	for key := range kv.mu.latest {
		r := kv.lastLocked(key)
		if r == nil || r.op == slipstream.OpPut {
			continue
		}
		for i := range kv.mu.log {
			if kv.mu.log[i].key == key {
				kv.mu.log[i].removed = true
				kv.mu.log[i].value = nil
			}
		}
		delete(kv.mu.latest, key)
	}
	close(kv.mu.changed)
	kv.mu.changed = make(chan struct{})
}

// LastRecord returns key's latest retained record, markers included, as an
// Update with its revision; false when the key has none. It implements
// slipstream.RecordReader.
func (kv *KV) LastRecord(ctx context.Context, key string) (slipstream.Update, bool, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	r := kv.lastLocked(key)
	if r == nil {
		return slipstream.Update{}, false, nil
	}
	return toUpdate(r), true, nil
}

// RecordAt returns the record retained at revision rev, markers included,
// as an Update with its revision; false when none is retained there. It
// mirrors natskv's Bucket.RecordAt.
func (kv *KV) RecordAt(ctx context.Context, rev uint64) (slipstream.Update, bool, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	r := kv.recordLocked(rev)
	if r == nil {
		return slipstream.Update{}, false, nil
	}
	return toUpdate(r), true, nil
}
