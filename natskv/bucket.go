package natskv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
)

// Defaults applied by [Open].
const (
	// DefaultTimeout bounds every unary operation and every watch setup.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxBytes is the byte limit of a bucket created without one
	// (some hosted services require a limit). With discard-new, writes fail
	// with ErrBucketFull once it is reached.
	DefaultMaxBytes = 10 << 20
	// DefaultLimitMarkerTTL is how long the server keeps the delete markers
	// it writes when a per-key TTL or MaxAge removes a key, for a bucket
	// created with AllowTTL and no LimitMarkerTTL. A follower offline for
	// longer than this misses those deletes (see the package doc).
	DefaultLimitMarkerTTL = 24 * time.Hour
	// MaxHistory is the largest History the server accepts.
	MaxHistory = jetstream.KeyValueMaxHistory

	// listInactiveThreshold reaps a Keys/Scan consumer whose deletion
	// failed. Longer than any drain, so a slow drain is never reaped.
	listInactiveThreshold = 5 * time.Minute
	// floorGuardInterval is the backstop probe of the live floor guard.
	floorGuardInterval = 30 * time.Second
	// streamCheckInterval is how often a running watch checks that its
	// stream is still the one it started on.
	streamCheckInterval = 5 * time.Second
)

// Storage selects where a bucket created by [Open] keeps its messages.
type Storage uint8

const (
	// FileStorage keeps messages on disk (the default).
	FileStorage Storage = iota
	// MemoryStorage keeps messages in server memory: lost on restart.
	MemoryStorage
)

// String returns "file" or "memory".
func (s Storage) String() string {
	if s == MemoryStorage {
		return "memory"
	}
	return "file"
}

func (s Storage) jetstream() jetstream.StorageType {
	if s == MemoryStorage {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// Config configures [Open]. The bucket fields (History through AllowTTL)
// apply only when Open creates the bucket: an existing bucket is used as it
// is and those fields are ignored. Change a live bucket out of band.
type Config struct {
	// Bucket is the bucket name: letters, digits, '-' and '_'. Required.
	Bucket string
	// History is the number of revisions kept per key; 0 means 1. At most
	// MaxHistory.
	History uint8
	// MaxBytes bounds the bucket's size; 0 means DefaultMaxBytes and -1
	// unlimited.
	MaxBytes int64
	// MaxAge expires revisions older than it; 0 means never.
	MaxAge time.Duration
	// Replicas is the number of server replicas; 0 means 1.
	Replicas int
	// Storage is FileStorage (the default) or MemoryStorage.
	Storage Storage
	// DiscardOld makes a full bucket evict its oldest revisions instead of
	// rejecting writes. Followers recover the evicted range through the
	// cursor-expired resync. The bucket's stream is built by hand, since
	// nats.go's KeyValueConfig always uses discard-new.
	DiscardOld bool
	// AllowTTL enables per-key TTLs ([Bucket.PutTTL]): the server then
	// writes a delete marker when a TTL or MaxAge removes a key, kept for
	// LimitMarkerTTL. Needs nats-server 2.11 or later.
	AllowTTL bool
	// LimitMarkerTTL is how long those markers live; 0 means
	// DefaultLimitMarkerTTL. Only used with AllowTTL.
	LimitMarkerTTL time.Duration
	// Timeout bounds every unary operation and each watch setup, never a
	// running watch; 0 means DefaultTimeout. When it expires the operation
	// returns an error wrapping slipstream.ErrTimeout.
	Timeout time.Duration
	// Logger receives debug and warning records; nil means slog.Default().
	Logger *slog.Logger
	// OnProgress, if set, is called from the watch goroutine for each
	// delivered entry and once when the initial values are done. It must
	// not block.
	OnProgress func(Progress)
	// NoCreate makes Open fail with an error wrapping ErrBucketNotFound
	// when the bucket does not exist, instead of creating it.
	NoCreate bool
	// StreamCreated is the creation time of the stream the caller's
	// cursor belongs to, as [Bucket.SyncedStream] reported it when that
	// cursor was taken (persisted beside the cursor); zero means unknown.
	// When set, the Bucket starts as if it had last state-synced from that
	// stream: a resume on a bucket recreated since (its stream created at
	// another time) fails with slipstream.ErrCursorExpired and
	// ErrStreamRecreated, so the follower resyncs, even after a process
	// restart. Zero: the stream found at Open is taken as the cursor's.
	StreamCreated time.Time
}

// Progress reports a watch's progress to Config.OnProgress.
type Progress struct {
	// Delivered counts the updates handed to the output channel so far.
	Delivered uint64
	// Pending is the server's count of messages still to deliver after
	// this one (nats.go's Delta): it drives a progress bar or an ETA.
	Pending uint64
	// InitialDone is set when the initial values (the state sync, or the
	// replay up to the head for a resume) have all been delivered: once
	// per Watch, and again each time the watch is re-created after a
	// reconnect (its replay from the last revision forwarded is done).
	InitialDone bool
	// Revision is the revision of the entry just delivered (0 on the
	// InitialDone report).
	Revision uint64
	// Head, on an InitialDone report, is the stream's last sequence read
	// before the consumer was created: every record at or below it that
	// the stream still held then (and the scope selects) has been
	// delivered. Records between the last delivered revision and Head were
	// removed before they could be (expired markers, say). 0 when unknown.
	Head uint64
}

var validBucket = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// Validate reports a configuration error.
func (c Config) Validate() error {
	var errs []error
	if !validBucket.MatchString(c.Bucket) {
		errs = append(errs, fmt.Errorf("%w: %q (use letters, digits, '-' and '_')", ErrInvalidBucketName, c.Bucket))
	}
	if c.History > MaxHistory {
		errs = append(errs, fmt.Errorf("History %d exceeds %d", c.History, MaxHistory))
	}
	if c.MaxBytes < -1 {
		errs = append(errs, fmt.Errorf("MaxBytes %d: use -1 for unlimited", c.MaxBytes))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("MaxAge %v is negative", c.MaxAge))
	}
	if c.Replicas < 0 {
		errs = append(errs, fmt.Errorf("Replicas %d is negative", c.Replicas))
	}
	if c.Storage > MemoryStorage {
		errs = append(errs, fmt.Errorf("unknown Storage %d", c.Storage))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("Timeout %v is negative", c.Timeout))
	}
	if c.LimitMarkerTTL < 0 || (c.AllowTTL && c.LimitMarkerTTL > 0 && c.LimitMarkerTTL < time.Second) {
		errs = append(errs, fmt.Errorf("LimitMarkerTTL %v must be at least 1s", c.LimitMarkerTTL))
	}
	return errors.Join(errs...)
}

// Bucket is a NATS JetStream key-value bucket. It implements
// slipstream.Watcher and slipstream.KeyLister. Its methods are safe for
// concurrent use; it holds no resources of its own beyond the caller's
// connection, which it never closes.
type Bucket struct {
	name          string
	pre           string // "$KV.<name>."
	nc            *nats.Conn
	js            jetstream.JetStream
	kv            jetstream.KeyValue
	stream        jetstream.Stream
	timeout       time.Duration
	log           *slog.Logger
	onProgress    func(Progress)
	guardInterval time.Duration
	streamCheck   time.Duration
	// synced is the creation time (Unix nanoseconds) of the stream the
	// bucket was bound to or last state-synced from; a resume on a stream
	// created at another time is refused. Shared by copies of the Bucket.
	synced *atomic.Int64

	// testDropListed, set only by tests, drops listed messages to fake a
	// short listing.
	testDropListed func(key string) bool
	// testListed, set only by tests, runs in a listing after the stream's
	// state was first read and before the listing's consumer is created.
	testListed func()
}

var (
	_ slipstream.Watcher   = (*Bucket)(nil)
	_ slipstream.KeyLister = (*Bucket)(nil)
)

// Open returns the bucket cfg.Bucket on nc, creating it with cfg if it does
// not exist (get-or-create) unless cfg.NoCreate is set. The configuration
// applies only at creation: an existing bucket is returned as it is. Each
// step is bounded by cfg.Timeout.
//
// Open returns an error wrapping ErrBucketNotFound (with
// slipstream.ErrOperationFailed) for a missing bucket with cfg.NoCreate,
// ErrInvalidBucketName for a name the client
// or server refuses, slipstream.ErrTimeout when a step exceeds the timeout,
// ctx.Err() when ctx ends, and slipstream.ErrOperationFailed otherwise (no
// JetStream, permissions, an invalid configuration). nc stays the caller's.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Bucket, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: open bucket: nil connection", slipstream.ErrOperationFailed)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open bucket: %w", err)
	}
	b := &Bucket{
		name:          cfg.Bucket,
		pre:           "$KV." + cfg.Bucket + ".",
		nc:            nc,
		timeout:       cfg.Timeout,
		log:           cfg.Logger,
		onProgress:    cfg.OnProgress,
		guardInterval: floorGuardInterval,
		streamCheck:   streamCheckInterval,
		synced:        new(atomic.Int64),
	}
	if b.timeout == 0 {
		b.timeout = DefaultTimeout
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With(slipstream.LogKeyComponent, "natskv", "bucket", cfg.Bucket)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("%w: open bucket %q: %w", slipstream.ErrOperationFailed, cfg.Bucket, err)
	}
	b.js = js

	err = b.bind(ctx)
	if err == nil {
		b.rememberStream(cfg.StreamCreated)
		return b, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("open bucket %q: %w", cfg.Bucket, ctx.Err())
	}
	if cfg.NoCreate {
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("%w: %w: %q: %w", slipstream.ErrOperationFailed, ErrBucketNotFound, cfg.Bucket, err)
		}
		return nil, fmt.Errorf("open bucket %q: %w", cfg.Bucket, err)
	}
	b.log.Debug("bucket lookup failed; creating it", "err", err)
	if err := b.create(ctx, cfg); err != nil {
		return nil, err
	}
	// Re-verify: whatever the create said, only a successful lookup counts.
	if err := b.bind(ctx); err != nil {
		return nil, fmt.Errorf("open bucket %q after create: %w", cfg.Bucket, err)
	}
	b.rememberStream(cfg.StreamCreated)
	return b, nil
}

// rememberStream makes created (when known) the stream the bucket last
// state-synced from (Config.StreamCreated).
func (b *Bucket) rememberStream(created time.Time) {
	if created.IsZero() {
		return
	}
	if bound := time.Unix(0, b.synced.Load()); !bound.Equal(created) {
		b.log.Info("the bucket's stream is not the one the cursor was taken on (recreated); a resume will resync",
			"stream_created", bound.Format(time.RFC3339Nano), "cursor_stream_created", created.Format(time.RFC3339Nano))
	}
	b.synced.Store(created.UnixNano())
}

// SyncedStream returns the creation time of the stream the Bucket was
// bound to (by Open: Config.StreamCreated when set) or last state-synced
// from: the stream a cursor taken from this Bucket's updates belongs to.
// A caller that persists its cursor persists this beside it and passes it
// back as Config.StreamCreated, so that a resume after a restart on a
// recreated bucket resyncs. Read it once the state sync's updates are
// applied: a state sync started later changes it.
func (b *Bucket) SyncedStream() time.Time {
	return time.Unix(0, b.synced.Load()).UTC()
}

// bind looks the bucket and its stream up.
func (b *Bucket) bind(ctx context.Context) error {
	octx, cancel := b.opContext(ctx)
	defer cancel()
	kv, err := b.js.KeyValue(octx, b.name)
	if err != nil {
		return mapErr(ctx, "look up bucket", err)
	}
	stream, err := b.js.Stream(octx, "KV_"+b.name)
	if err != nil {
		return mapErr(ctx, "look up bucket stream", err)
	}
	b.kv, b.stream = kv, stream
	b.synced.Store(stream.CachedInfo().Created.UnixNano())
	return nil
}

// create creates the bucket from cfg. A name already in use (a concurrent
// Open won) and the hosted stream-limit reply are not errors: the caller
// looks the bucket up again.
func (b *Bucket) create(ctx context.Context, cfg Config) error {
	history := int64(max(cfg.History, 1))
	replicas := max(cfg.Replicas, 1)
	maxBytes := cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	var markerTTL time.Duration
	if cfg.AllowTTL {
		markerTTL = cfg.LimitMarkerTTL
		if markerTTL == 0 {
			markerTTL = DefaultLimitMarkerTTL
		}
	}
	octx, cancel := b.opContext(ctx)
	defer cancel()
	var err error
	if !cfg.DiscardOld {
		_, err = b.js.CreateKeyValue(octx, jetstream.KeyValueConfig{
			Bucket:         cfg.Bucket,
			History:        uint8(history),
			TTL:            cfg.MaxAge,
			MaxBytes:       maxBytes,
			Storage:        cfg.Storage.jetstream(),
			Replicas:       replicas,
			LimitMarkerTTL: markerTTL,
		})
	} else {
		// The same stream nats.go builds for a bucket, with discard-old.
		dup := 2 * time.Minute
		if cfg.MaxAge > 0 && cfg.MaxAge < dup {
			dup = cfg.MaxAge
		}
		_, err = b.js.CreateStream(octx, jetstream.StreamConfig{
			Name:                   "KV_" + cfg.Bucket,
			Subjects:               []string{b.pre + ">"},
			MaxMsgsPerSubject:      history,
			MaxBytes:               maxBytes,
			MaxAge:                 cfg.MaxAge,
			MaxMsgSize:             -1,
			MaxMsgs:                -1,
			MaxConsumers:           -1,
			Storage:                cfg.Storage.jetstream(),
			Replicas:               replicas,
			AllowRollup:            true,
			DenyDelete:             true,
			AllowDirect:            true,
			Duplicates:             dup,
			Discard:                jetstream.DiscardOld,
			Retention:              jetstream.LimitsPolicy,
			AllowMsgTTL:            cfg.AllowTTL,
			SubjectDeleteMarkerTTL: markerTTL,
		})
	}
	if err == nil {
		b.log.Info("bucket created", "history", history, "max_bytes", maxBytes, "max_age", cfg.MaxAge,
			"replicas", replicas, "storage", cfg.Storage.String(), "discard_old", cfg.DiscardOld, "allow_ttl", cfg.AllowTTL)
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("create bucket %q: %w", cfg.Bucket, ctx.Err())
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		outcome, cerr := classifyCreate(apiErr.Code, int(apiErr.ErrorCode), apiErr.Description)
		switch outcome {
		case createAlreadyExists, createStreamLimit:
			b.log.Debug("bucket create tolerated; re-verifying", "err", err)
			return nil
		}
		if apiErr.ErrorCode == codeStreamInvalidConfig && strings.Contains(apiErr.Description, "stream name") {
			return fmt.Errorf("%w: %w: create bucket %q: %w", slipstream.ErrOperationFailed, ErrInvalidBucketName, cfg.Bucket, cerr)
		}
		return fmt.Errorf("%w: create bucket %q: %w", slipstream.ErrOperationFailed, cfg.Bucket, cerr)
	}
	if errors.Is(err, jetstream.ErrInvalidBucketName) {
		return fmt.Errorf("%w: %w: create bucket %q: %w", slipstream.ErrOperationFailed, ErrInvalidBucketName, cfg.Bucket, err)
	}
	// A timeout or transport error may still have created the bucket: look
	// it up before giving up (the slow, distant deployment).
	if berr := b.bind(ctx); berr == nil {
		return nil
	}
	return mapErr(ctx, fmt.Sprintf("create bucket %q", cfg.Bucket), err)
}

// opContext bounds one operation by the bucket's timeout.
func (b *Bucket) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.timeout)
}

// Name returns the bucket name.
func (b *Bucket) Name() string { return b.name }

// Timeout returns the bound applied to each operation.
func (b *Bucket) Timeout() time.Duration { return b.timeout }

// Entry returns the key's latest put, including an empty-value put (the
// CAS tombstone written by [Bucket.DeleteWithVersion]), with its revision.
// A delete or purge marker, or a missing key, reports false. An invalid key
// returns an error wrapping slipstream.ErrInvalidKey.
func (b *Bucket) Entry(ctx context.Context, key string) (slipstream.Entry, bool, error) {
	octx, cancel := b.opContext(ctx)
	defer cancel()
	e, err := b.kv.Get(octx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return slipstream.Entry{}, false, nil
	}
	if err != nil {
		return slipstream.Entry{}, false, mapErr(ctx, fmt.Sprintf("get %q", key), err)
	}
	if e.Operation() != jetstream.KeyValuePut {
		return slipstream.Entry{}, false, nil
	}
	return slipstream.Entry{Key: key, Value: e.Value(), Version: revisionVersion(e.Revision())}, true, nil
}

// Get returns the key's latest value. Delete and purge markers, empty
// values (CAS tombstones) and missing keys all report false.
func (b *Bucket) Get(ctx context.Context, key string) (slipstream.Entry, bool, error) {
	e, ok, err := b.Entry(ctx, key)
	if !ok || err != nil || len(e.Value) == 0 {
		return slipstream.Entry{}, false, err
	}
	return e, true, nil
}

// Put writes value at key and returns its revision.
//
// Errors wrap slipstream.ErrInvalidKey for a key NATS refuses,
// ErrValueTooLarge (with slipstream.ErrOperationFailed) for a value above
// the server's max payload, ErrBucketFull at a discard-new bucket's
// MaxBytes, slipstream.ErrTimeout after the bucket's timeout, ctx.Err()
// when ctx ends, and slipstream.ErrOperationFailed otherwise.
func (b *Bucket) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	octx, cancel := b.opContext(ctx)
	defer cancel()
	rev, err := b.kv.Put(octx, key, value)
	if err != nil {
		return 0, b.mapWriteErr(ctx, "put", key, value, err)
	}
	return rev, nil
}

// PutTTL writes value at key with a per-key TTL of at least one second,
// after which the server removes it and writes a delete marker. It needs a
// bucket created with AllowTTL on nats-server 2.11 or later; otherwise it
// returns an error wrapping ErrTTLDisabled and slipstream.ErrUnsupported and
// writes nothing.
// Other errors are as for [Bucket.Put].
func (b *Bucket) PutTTL(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	if ttl < time.Second {
		return 0, fmt.Errorf("%w: put %q: TTL %v is below the server's minimum of 1s", slipstream.ErrOperationFailed, key, ttl)
	}
	if !keyValid(key) {
		return 0, fmt.Errorf("%w: put %q: %w", slipstream.ErrInvalidKey, key, jetstream.ErrInvalidKey)
	}
	octx, cancel := b.opContext(ctx)
	defer cancel()
	if !b.stream.CachedInfo().Config.AllowMsgTTL {
		// The cached config may predate an out-of-band change; ask again
		// before refusing. A pre-2.11 server never reports the field, and
		// would silently ignore the TTL header.
		info, err := b.stream.Info(octx)
		if err != nil {
			return 0, mapErr(ctx, fmt.Sprintf("put %q: look up bucket config", key), err)
		}
		if !info.Config.AllowMsgTTL {
			return 0, fmt.Errorf("%w: %w: put %q in bucket %q", slipstream.ErrUnsupported, ErrTTLDisabled, key, b.name)
		}
	}
	ack, err := b.js.PublishMsg(octx, &nats.Msg{Subject: b.pre + key, Data: value}, jetstream.WithMsgTTL(ttl))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == codeMessageTTLDisabled {
			return 0, fmt.Errorf("%w: %w: put %q: %w", slipstream.ErrUnsupported, ErrTTLDisabled, key, err)
		}
		if errors.As(err, &apiErr) && apiErr.ErrorCode == codeMessageTTLInvalid {
			return 0, fmt.Errorf("%w: put %q with TTL %v: %w", slipstream.ErrUnsupported, key, ttl, err)
		}
		return 0, b.mapWriteErr(ctx, "put", key, value, err)
	}
	return ack.Sequence, nil
}

// Create writes value at key only if the key is absent or its latest record
// is a delete or purge marker. It returns an error wrapping
// slipstream.ErrAlreadyExists when the key holds a put, including an
// empty-value CAS tombstone. Other errors are as for [Bucket.Put].
func (b *Bucket) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	octx, cancel := b.opContext(ctx)
	defer cancel()
	rev, err := b.kv.Create(octx, key, value)
	if err != nil {
		if ctx.Err() == nil && (errors.Is(err, jetstream.ErrKeyExists) || isCASConflict(err)) {
			return 0, fmt.Errorf("%w: create %q: %w", slipstream.ErrAlreadyExists, key, err)
		}
		return 0, b.mapWriteErr(ctx, "create", key, value, err)
	}
	return rev, nil
}

// Update writes value at key only if rev is the key's latest revision
// (compare-and-swap). It returns an error wrapping
// slipstream.ErrRevisionMismatch otherwise, including when the key never
// existed (the server's codes 10071 and, on replicated streams, 10164). A
// rev of 0 is not a revision: slipstream.ErrOperationFailed. Other errors
// are as for [Bucket.Put].
func (b *Bucket) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if rev == 0 {
		return 0, fmt.Errorf("%w: update %q: revision 0 is not a valid revision", slipstream.ErrOperationFailed, key)
	}
	octx, cancel := b.opContext(ctx)
	defer cancel()
	n, err := b.kv.Update(octx, key, value, rev)
	if err != nil {
		if ctx.Err() == nil && isCASConflict(err) {
			return 0, fmt.Errorf("%w: update %q at revision %d: %w", slipstream.ErrRevisionMismatch, key, rev, err)
		}
		return 0, b.mapWriteErr(ctx, "update", key, value, err)
	}
	return n, nil
}

// Delete writes a delete marker for key and returns its revision. NATS
// cannot tell whether the key existed; deleting an absent key succeeds.
// After Delete, Create succeeds. Errors are as for [Bucket.Put].
func (b *Bucket) Delete(ctx context.Context, key string) (uint64, error) {
	return b.marker(ctx, "delete", key, "DEL")
}

// DeleteWithVersion deletes key under compare-and-swap: it writes an EMPTY
// value at rev (a CAS tombstone), not a delete marker, so concurrent CAS
// writers still conflict and Create keeps failing with ErrAlreadyExists;
// Get reports the key absent and Entry returns the tombstone. It returns the
// tombstone's revision. Errors are as for [Bucket.Update].
func (b *Bucket) DeleteWithVersion(ctx context.Context, key string, rev uint64) (uint64, error) {
	if rev == 0 {
		return 0, fmt.Errorf("%w: delete %q: revision 0 is not a valid revision", slipstream.ErrOperationFailed, key)
	}
	octx, cancel := b.opContext(ctx)
	defer cancel()
	n, err := b.kv.Update(octx, key, []byte{}, rev)
	if err != nil {
		if ctx.Err() == nil && isCASConflict(err) {
			return 0, fmt.Errorf("%w: delete %q at revision %d: %w", slipstream.ErrRevisionMismatch, key, rev, err)
		}
		return 0, b.mapWriteErr(ctx, "delete", key, nil, err)
	}
	return n, nil
}

// Purge removes key and all its revisions, reclaiming their bytes, and
// writes a purge marker that watchers see; it returns the marker's
// revision. Purging an absent key succeeds. Errors are as for [Bucket.Put].
func (b *Bucket) Purge(ctx context.Context, key string) (uint64, error) {
	return b.marker(ctx, "purge", key, "PURGE")
}

// marker publishes the delete or purge marker of key (as nats.go's own
// Delete and Purge do) and returns its revision.
func (b *Bucket) marker(ctx context.Context, op, key, kvOp string) (uint64, error) {
	if !keyValid(key) {
		return 0, fmt.Errorf("%w: %s %q: %w", slipstream.ErrInvalidKey, op, key, jetstream.ErrInvalidKey)
	}
	m := nats.NewMsg(b.pre + key)
	m.Header.Set(hdrOperation, kvOp)
	if kvOp == "PURGE" {
		m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	}
	octx, cancel := b.opContext(ctx)
	defer cancel()
	ack, err := b.js.PublishMsg(octx, m)
	if err != nil {
		return 0, b.mapWriteErr(ctx, op, key, nil, err)
	}
	return ack.Sequence, nil
}

func (b *Bucket) mapWriteErr(ctx context.Context, op, key string, value []byte, err error) error {
	if errors.Is(err, nats.ErrMaxPayload) && ctx.Err() == nil {
		return fmt.Errorf("%w: %w: %s %q: value of %d bytes exceeds the server's max payload of %d bytes",
			slipstream.ErrOperationFailed, ErrValueTooLarge, op, key, len(value), b.nc.MaxPayload())
	}
	return mapErr(ctx, fmt.Sprintf("%s %q", op, key), err)
}

// Status describes the bucket's stream.
type Status struct {
	Bucket    string
	FirstSeq  uint64 // first retained revision (LastSeq+1 when empty)
	LastSeq   uint64 // last revision written
	Values    uint64 // retained messages, markers included
	Bytes     uint64
	Subjects  uint64 // keys with at least one retained message, markers included
	Consumers int
	Created   time.Time // stream creation time: changes when the bucket is recreated

	History    int64
	MaxBytes   int64
	MaxAge     time.Duration
	Replicas   int
	Storage    Storage
	DiscardOld bool
	AllowTTL   bool
}

// Status returns the bucket's current stream state and configuration.
func (b *Bucket) Status(ctx context.Context) (Status, error) {
	info, err := b.streamInfo(ctx)
	if err != nil {
		return Status{}, mapErr(ctx, "bucket status", err)
	}
	st := Status{
		Bucket:     b.name,
		FirstSeq:   info.State.FirstSeq,
		LastSeq:    info.State.LastSeq,
		Values:     info.State.Msgs,
		Bytes:      info.State.Bytes,
		Subjects:   info.State.NumSubjects,
		Consumers:  info.State.Consumers,
		Created:    info.Created,
		History:    info.Config.MaxMsgsPerSubject,
		MaxBytes:   info.Config.MaxBytes,
		MaxAge:     info.Config.MaxAge,
		Replicas:   info.Config.Replicas,
		DiscardOld: info.Config.Discard == jetstream.DiscardOld,
		AllowTTL:   info.Config.AllowMsgTTL,
	}
	if info.Config.Storage == jetstream.MemoryStorage {
		st.Storage = MemoryStorage
	}
	return st, nil
}

// streamInfo fetches fresh stream info, bounded by the timeout.
func (b *Bucket) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	octx, cancel := b.opContext(ctx)
	defer cancel()
	return b.stream.Info(octx)
}

// revisionVersion converts a nats.go revision: 0 is what its parser yields
// for garbage and never a real stream sequence, so it is the unknown
// version.
func revisionVersion(rev uint64) slipstream.Version {
	if rev == 0 {
		return slipstream.Version{}
	}
	return slipstream.VersionFromUint64(rev)
}

var validKey = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

// keyValid applies nats.go's key rules.
func keyValid(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' || strings.Contains(key, "..") {
		return false
	}
	return validKey.MatchString(key)
}
