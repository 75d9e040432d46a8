package natsobj

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/objstore"
)

var _ objstore.Store = (*Store)(nil)

// DefaultTimeout bounds each request that is not a payload transfer.
const DefaultTimeout = 30 * time.Second

// DefaultMinRate is the slowest average rate, in bytes per second, at which
// an object may be read before the read times out.
const DefaultMinRate = 1 << 20

// PointerBucket returns the name of the KV bucket holding the pointers of the
// object bucket objectBucket.
func PointerBucket(objectBucket string) string { return objectBucket + "-pointers" }

// Config says which buckets a [Store] uses.
type Config struct {
	// Bucket is the object store bucket. Required: [A-Za-z0-9_-].
	Bucket string
	// Replicas is the replication factor of buckets created by Open; 0
	// means 1.
	Replicas int
	// Timeout bounds each request that is not a payload transfer; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// MinRate bounds object reads: reading an object of n bytes may take
	// Timeout + n/MinRate seconds. 0 means DefaultMinRate. (The client
	// library would otherwise bound a whole object read by its default
	// request timeout, a few seconds.)
	MinRate int64
	// JetStreamTimeout is the client library's default request timeout;
	// 0 keeps the library's.
	JetStreamTimeout time.Duration
}

// Store is an object store on a JetStream object store bucket and its
// pointer KV bucket. It is safe for concurrent use.
type Store struct {
	obs     jetstream.ObjectStore
	kv      jetstream.KeyValue
	timeout time.Duration
	minRate int64
}

var bucketRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Open returns the store on cfg.Bucket, creating the object bucket and its
// pointer bucket (file storage) if they are missing. nc stays the caller's.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if !bucketRE.MatchString(cfg.Bucket) {
		return nil, fmt.Errorf("%w: NATS object bucket %q: use letters, digits, '-' and '_'", objstore.ErrInvalidName, cfg.Bucket)
	}
	s := &Store{timeout: cfg.Timeout, minRate: cfg.MinRate}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.minRate <= 0 {
		s.minRate = DefaultMinRate
	}
	replicas := max(cfg.Replicas, 1)
	var opts []jetstream.JetStreamOpt
	if cfg.JetStreamTimeout > 0 {
		opts = append(opts, jetstream.WithDefaultTimeout(cfg.JetStreamTimeout))
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: jetstream: %w", slipstream.ErrOperationFailed, err)
	}
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	s.obs, err = js.ObjectStore(octx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		s.obs, err = js.CreateObjectStore(octx, jetstream.ObjectStoreConfig{Bucket: cfg.Bucket, Storage: jetstream.FileStorage, Replicas: replicas})
		if errors.Is(err, jetstream.ErrBucketExists) {
			s.obs, err = js.ObjectStore(octx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, mapErr(ctx, "open object bucket "+cfg.Bucket, err)
	}
	kvName := PointerBucket(cfg.Bucket)
	s.kv, err = js.KeyValue(octx, kvName)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		s.kv, err = js.CreateKeyValue(octx, jetstream.KeyValueConfig{Bucket: kvName, History: 1, Storage: jetstream.FileStorage, Replicas: replicas})
		if errors.Is(err, jetstream.ErrBucketExists) {
			s.kv, err = js.KeyValue(octx, kvName)
		}
	}
	if err != nil {
		return nil, mapErr(ctx, "open pointer bucket "+kvName, err)
	}
	return s, nil
}

// mapErr wraps err for op: the caller's cancellation as ctx.Err(), a
// timeout with slipstream.ErrTimeout, anything else with
// slipstream.ErrOperationFailed.
func mapErr(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", op, cerr)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return fmt.Errorf("%w: %s: %w", slipstream.ErrTimeout, op, err)
	}
	return fmt.Errorf("%w: %s: %w", slipstream.ErrOperationFailed, op, err)
}

// isCASConflict reports a wrong-last-sequence error, under either code the
// server uses (10071 on R1 streams, 10164 on replicated ones).
func isCASConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == 10071 || apiErr.ErrorCode == 10164)
}

var keyRE = regexp.MustCompile(`^[-/_=.A-Za-z0-9]+$`)

// kvKey reports whether name can be a KV key.
func kvKey(name string) bool {
	return keyRE.MatchString(name) && !strings.HasPrefix(name, ".") && !strings.HasSuffix(name, ".") && !strings.Contains(name, "..")
}

func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// getPointer returns the KV entry of name, or nil if there is none.
func (s *Store) getPointer(ctx context.Context, name string) (jetstream.KeyValueEntry, error) {
	if !kvKey(name) {
		return nil, nil
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	e, err := s.kv.Get(octx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr(ctx, "get pointer "+name, err)
	}
	return e, nil
}

func pointerAttrs(e jetstream.KeyValueEntry) objstore.Attrs {
	return objstore.Attrs{
		Name:         e.Key(),
		Size:         int64(len(e.Value())),
		ETag:         strconv.FormatUint(e.Revision(), 10),
		LastModified: e.Created(),
	}
}

func objectAttrs(i *jetstream.ObjectInfo) objstore.Attrs {
	return objstore.Attrs{Name: i.Name, Size: int64(i.Size), ETag: i.Digest, LastModified: i.ModTime}
}

// Get reads a pointer from the KV, or else an object from the object store.
// An object's reader fails if its content does not match its SHA-256 digest.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, objstore.Attrs, error) {
	e, err := s.getPointer(ctx, name)
	if err != nil {
		return nil, objstore.Attrs{}, err
	}
	if e != nil {
		return io.NopCloser(bytes.NewReader(e.Value())), pointerAttrs(e), nil
	}
	octx, cancel := s.opContext(ctx)
	info, err := s.obs.GetInfo(octx, name)
	cancel()
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, objstore.Attrs{}, fmt.Errorf("get %s: %w", name, objstore.ErrNotExist)
	}
	if err != nil {
		return nil, objstore.Attrs{}, mapErr(ctx, "get "+name, err)
	}
	// The library bounds the whole read by the context's deadline, or by
	// its default request timeout when there is none: give it one that
	// grows with the object.
	d := s.timeout + time.Duration(float64(info.Size)/float64(s.minRate)*float64(time.Second))
	rctx, cancel := context.WithTimeout(ctx, d)
	res, err := s.obs.Get(rctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		cancel()
		return nil, objstore.Attrs{}, fmt.Errorf("get %s: %w", name, objstore.ErrNotExist)
	}
	if err != nil {
		cancel()
		return nil, objstore.Attrs{}, mapErr(ctx, "get "+name, err)
	}
	return &objectReader{res: res, ctx: ctx, name: name, cancel: cancel}, objectAttrs(info), nil
}

// objectReader reads an object, translating errors, and releases its
// context on Close.
type objectReader struct {
	res    jetstream.ObjectResult
	ctx    context.Context
	name   string
	cancel context.CancelFunc
}

func (r *objectReader) Read(p []byte) (int, error) {
	n, err := r.res.Read(p)
	if err != nil && err != io.EOF {
		err = mapErr(r.ctx, "read "+r.name, err)
	}
	return n, err
}

func (r *objectReader) Close() error {
	err := r.res.Close()
	r.cancel()
	return err
}

// Put writes an object to the object store, in chunks; over an existing
// pointer it overwrites the pointer in the KV instead (the transport's
// non-atomic fallback), so Get sees what was written.
func (s *Store) Put(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", objstore.ErrInvalidName)
	}
	e, err := s.getPointer(ctx, name)
	if err != nil {
		return err
	}
	if e != nil {
		data := make([]byte, size)
		if n, err := r.ReadAt(data, 0); int64(n) < size {
			return fmt.Errorf("put %s: read %d of %d bytes: %w", name, n, size, err)
		}
		octx, cancel := s.opContext(ctx)
		defer cancel()
		if _, err := s.kv.Put(octx, name, data); err != nil {
			return mapErr(ctx, "put pointer "+name, err)
		}
		return nil
	}
	if _, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, io.NewSectionReader(r, 0, size)); err != nil {
		return mapErr(ctx, "put "+name, err)
	}
	return nil
}

// Create writes a pointer with the KV's create, if no object of that name
// exists either.
func (s *Store) Create(ctx context.Context, name string, data []byte) error {
	if !kvKey(name) {
		return fmt.Errorf("%w: %q is not a valid NATS KV key", objstore.ErrInvalidName, name)
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	if _, err := s.obs.GetInfo(octx, name); err == nil {
		return fmt.Errorf("create %s: an object of that name exists: %w", name, objstore.ErrPreconditionFailed)
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return mapErr(ctx, "create "+name, err)
	}
	if _, err := s.kv.Create(octx, name, data); err != nil {
		if isCASConflict(err) {
			return fmt.Errorf("create %s: already exists: %w: %w", name, objstore.ErrPreconditionFailed, err)
		}
		return mapErr(ctx, "create "+name, err)
	}
	return nil
}

// Replace writes a pointer with the KV's update at the revision etag.
func (s *Store) Replace(ctx context.Context, name string, data []byte, etag string) error {
	if !kvKey(name) {
		return fmt.Errorf("%w: %q is not a valid NATS KV key", objstore.ErrInvalidName, name)
	}
	rev, err := strconv.ParseUint(etag, 10, 64)
	if err != nil || rev == 0 {
		return fmt.Errorf("replace %s: ETag %q is not a pointer revision: %w", name, etag, objstore.ErrPreconditionFailed)
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	if _, err := s.kv.Update(octx, name, data, rev); err != nil {
		if isCASConflict(err) {
			return fmt.Errorf("replace %s at revision %d: %w: %w", name, rev, objstore.ErrPreconditionFailed, err)
		}
		return mapErr(ctx, "replace "+name, err)
	}
	return nil
}

// List lists the pointers and the objects whose names start with prefix.
func (s *Store) List(ctx context.Context, prefix string) ([]objstore.Attrs, error) {
	octx, cancel := s.opContext(ctx)
	defer cancel()
	var out []objstore.Attrs
	infos, err := s.obs.List(octx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, mapErr(ctx, "list objects", err)
	}
	for _, i := range infos {
		if strings.HasPrefix(i.Name, prefix) {
			out = append(out, objectAttrs(i))
		}
	}
	lister, err := s.kv.ListKeys(octx)
	if err != nil {
		return nil, mapErr(ctx, "list pointers", err)
	}
	var keys []string
	for k := range lister.Keys() {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	// The lister has closed its channel; its subscription may be gone
	// already, which Stop reports as a bad subscription.
	if err := lister.Stop(); err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) && !errors.Is(err, nats.ErrBadSubscription) {
		return nil, mapErr(ctx, "list pointers", err)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for _, k := range keys {
		e, err := s.getPointer(ctx, k)
		if err != nil {
			return nil, err
		}
		if e != nil {
			out = append(out, pointerAttrs(e))
		}
	}
	slices.SortFunc(out, func(a, b objstore.Attrs) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete removes the pointer or object of that name.
func (s *Store) Delete(ctx context.Context, name string) error {
	e, err := s.getPointer(ctx, name)
	if err != nil {
		return err
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	if e != nil {
		if err := s.kv.Delete(octx, name); err != nil {
			return mapErr(ctx, "delete pointer "+name, err)
		}
	}
	if err := s.obs.Delete(octx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return mapErr(ctx, "delete "+name, err)
	}
	return nil
}
