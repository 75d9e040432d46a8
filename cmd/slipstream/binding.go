package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/fsync"
)

// A fold's binding: which bucket (and scope) it mirrors, recorded in a
// sidecar file in the fold directory so that a mirror started with another
// -bucket or -prefix refuses the fold instead of "resyncing" it into
// another bucket's copy. docs/OPERATIONS.md ("Which bucket a fold
// mirrors") describes it. The sidecar is not part of the fold's artifacts:
// an imported or bootstrapped fold has none, and is bound only once the
// mirror has verified it against the bucket.

// bindingFile is the sidecar's name in the fold directory. Neither backend
// uses or removes a file of that name (applog owns fold.snap, its temps and
// LOCK; Pebble ignores names it does not generate), and exports copy only
// the backend's own files.
const bindingFile = "slipstream-binding.json"

// bindingVersion is the sidecar's format version.
const bindingVersion = 1

var (
	// errFoldOfOtherBucket is returned when a fold's binding, or its
	// content, shows that it mirrors another bucket or scope.
	errFoldOfOtherBucket = errors.New("wrong fold")
	// errBindingInvalid is returned for a sidecar that cannot be read.
	errBindingInvalid = errors.New("invalid fold binding")
	// errBucketMissing is returned by a mirror of a bucket that does not
	// exist on a server it may not create it on.
	errBucketMissing = errors.New("bucket does not exist")
)

// foldBinding is the sidecar's content.
type foldBinding struct {
	// Version is bindingVersion.
	Version int `json:"version"`
	// Bucket is the bucket the fold mirrors.
	Bucket string `json:"bucket"`
	// Prefixes is the mirrored scope, sorted; empty means all keys.
	Prefixes []string `json:"prefixes"`
	// StreamCreated is the creation time of the bucket's stream the
	// fold's cursor belongs to (natskv's Bucket.SyncedStream); absent
	// (zero) when unknown: a fold bound before any state sync, or by a
	// sidecar written before the field existed. A mirror passes it to
	// natskv.Config.StreamCreated, so that a resume on a bucket recreated
	// since resyncs instead of skipping the new stream's revisions up to
	// the cursor.
	StreamCreated time.Time `json:"stream_created,omitzero"`
}

// newBinding is the binding of a mirror of bucket with scope.
func newBinding(bucket string, scope slipstream.Scope) foldBinding {
	b := foldBinding{Version: bindingVersion, Bucket: bucket, Prefixes: []string{}}
	if !scope.IsAll() {
		b.Prefixes = slices.Compact(slices.Sorted(slices.Values(scope.List())))
	}
	return b
}

// scopeText describes the binding's scope for messages.
func (b foldBinding) scopeText() string {
	if len(b.Prefixes) == 0 {
		return "all keys"
	}
	return "prefixes " + strings.Join(b.Prefixes, ",")
}

// matches reports whether b binds the fold to want.
func (b foldBinding) matches(want foldBinding) bool {
	return b.Bucket == want.Bucket && slices.Equal(b.Prefixes, want.Prefixes)
}

// readBinding reads dir's sidecar; nil when there is none.
func readBinding(dir string) (*foldBinding, error) {
	path := filepath.Join(dir, bindingFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read fold binding: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b foldBinding
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errBindingInvalid, path, err)
	}
	switch {
	case dec.More():
		return nil, fmt.Errorf("%w: %s: data after the object", errBindingInvalid, path)
	case b.Version != bindingVersion:
		return nil, fmt.Errorf("%w: %s: version %d (this build reads %d)", errBindingInvalid, path, b.Version, bindingVersion)
	case !bucketNameRE.MatchString(b.Bucket):
		return nil, fmt.Errorf("%w: %s: bucket %q", errBindingInvalid, path, b.Bucket)
	case !b.StreamCreated.IsZero() && (b.StreamCreated.Before(time.Unix(0, 1)) || b.StreamCreated.After(time.Unix(0, math.MaxInt64))):
		// Outside what a stream's creation time (Unix nanoseconds) can be.
		return nil, fmt.Errorf("%w: %s: stream_created %s", errBindingInvalid, path, b.StreamCreated.Format(time.RFC3339Nano))
	}
	if b.Prefixes == nil {
		b.Prefixes = []string{}
	}
	return &b, nil
}

// boundStream is the creation time of the stream b's fold's cursor belongs
// to; zero when unknown (no binding, or none recorded).
func boundStream(b *foldBinding) time.Time {
	if b == nil {
		return time.Time{}
	}
	return b.StreamCreated
}

// checkBinding refuses a fold bound to another bucket or scope than want;
// it reads only the sidecar, so a refused fold is left byte for byte as it
// was. It returns the fold's binding (nil: none).
func checkBinding(dir string, want foldBinding) (*foldBinding, error) {
	b, err := readBinding(dir)
	if err != nil || b == nil {
		return nil, err
	}
	if !b.matches(want) {
		return nil, fmt.Errorf("%w: fold %s mirrors bucket %q (scope: %s), not bucket %q (scope: %s); use another -fold",
			errFoldOfOtherBucket, dir, b.Bucket, b.scopeText(), want.Bucket, want.scopeText())
	}
	return b, nil
}

// writeBinding writes dir's sidecar atomically: a temp file, fsynced,
// renamed over the sidecar, and the directory fsynced.
func writeBinding(dir string, b foldBinding) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+bindingFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("write fold binding: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("write fold binding: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write fold binding: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write fold binding: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, bindingFile)); err != nil {
		return fmt.Errorf("write fold binding: %w", err)
	}
	ok = true
	return fsync.Dir(dir)
}

// binder tracks whether the mirror's fold is bound to its bucket. A fold
// without a binding (imported, bootstrapped, or made by an older version)
// is not reported ready until an audit has found it equal to the bucket or
// repaired it; the binding is written then.
type binder struct {
	dir  string
	want foldBinding

	unbound atomic.Bool // the fold has no binding yet: verifying

	mu    sync.Mutex
	epoch uint64 // bumped when the fold is replaced (a bootstrap)
	why   string // why the fold is unbound
	// stream is the creation time of the stream the fold's cursor
	// belongs to (zero: unknown), written into the binding with it.
	stream time.Time
}

// bindingLocked returns the binding to write. Called with mu held.
func (b *binder) bindingLocked() foldBinding {
	fb := b.want
	fb.StreamCreated = b.stream
	return fb
}

// reason returns why the fold is unbound ("" when bound).
func (b *binder) reason() string {
	if b == nil || !b.unbound.Load() {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.why
}

// unbind marks the fold unbound, for why; a bind of an earlier epoch is
// then ignored.
func (b *binder) unbind(why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unbindLocked(why)
}

func (b *binder) unbindLocked(why string) {
	b.epoch++
	b.why = why
	b.unbound.Store(true)
}

// replace runs fn, which replaces the fold's directory (a bootstrap), and
// marks the new fold unbound, for why; no binding is written meanwhile, and
// a bind of an earlier epoch is then ignored. An error of fn leaves the
// fold unbound too: what it holds is unknown.
func (b *binder) replace(why string, fn func() error) error {
	if b == nil {
		return fn()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unbindLocked(why)
	b.stream = time.Time{} // the new fold's cursor: of a stream not known
	return fn()
}

// setStream records that the fold's cursor now belongs to the stream
// created at created: once the fold has committed data of that stream
// (never before, or a restart would resume on it after a cursor of
// another stream). A bound fold's binding is rewritten at once; an unbound
// fold's is written with it when it is bound.
func (b *binder) setStream(created time.Time) error {
	if b == nil || created.IsZero() {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stream.Equal(created) {
		return nil
	}
	if !b.unbound.Load() {
		fb := b.bindingLocked()
		fb.StreamCreated = created
		if err := writeBinding(b.dir, fb); err != nil {
			return err
		}
	}
	b.stream = created
	return nil
}

// bindNow binds the current fold (an empty one: nothing to verify).
func (b *binder) bindNow() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := writeBinding(b.dir, b.bindingLocked()); err != nil {
		return err
	}
	b.unbound.Store(false)
	b.why = ""
	return nil
}

// current returns the fold's epoch, to pass to bind.
func (b *binder) current() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.epoch
}

// bind writes the binding into the fold verified at epoch; false when the
// fold was replaced since (nothing written) or it was already bound.
func (b *binder) bind(epoch uint64) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if epoch != b.epoch || !b.unbound.Load() {
		return false, nil
	}
	if err := writeBinding(b.dir, b.bindingLocked()); err != nil {
		return false, err
	}
	b.unbound.Store(false)
	b.why = ""
	return true, nil
}

// identityProbes is how many of a fold's newest entries the identity check
// compares with the bucket.
const identityProbes = 8

// probeBucket is what the identity check reads of a bucket; *natskv.Bucket
// has it.
type probeBucket interface {
	slipstream.RecordReader
	// RecordAt returns the record at stream sequence rev; false when the
	// stream holds none there.
	RecordAt(ctx context.Context, rev uint64) (slipstream.Update, bool, error)
}

// checkIdentity compares a fold without a binding with the bucket at a few
// points before a mirror resumes on it: cheap on the bucket's side (two
// reads per probe), but finding the fold's newest entries reads the whole
// fold once (slipstream.Store has no access by revision). For each of the fold's
// newest entries (by revision), the stream's message at that revision, when
// it still exists, must be that key's put of that value, and the key's
// latest record in the bucket must not be older than the fold's. An entry
// that fails shows the fold holds another bucket's keys: the error wraps
// errFoldOfOtherBucket. A cursor past the bucket's last revision is refused
// the same way (another bucket, or this one recreated). Entries the bucket
// no longer says anything about prove nothing; the audit after the first
// catch-up settles them.
func checkIdentity(ctx context.Context, b probeBucket, st store, bucketName string, lastSeq uint64) error {
	cur := st.Cursor()
	if cur.IsNone() {
		return nil
	}
	if rank := cur.Rank(); rank > lastSeq {
		return fmt.Errorf("%w: the fold's cursor %d is past bucket %q's last revision %d (a fold of another bucket, or the bucket was recreated)",
			errFoldOfOtherBucket, rank, bucketName, lastSeq)
	}
	newest := make([]slipstream.Entry, 0, identityProbes+1)
	err := st.ForEachInRange("", func(e slipstream.Entry) error {
		r := revision(e.Version)
		if len(newest) == identityProbes && r <= revision(newest[len(newest)-1].Version) {
			return nil
		}
		i, _ := slices.BinarySearchFunc(newest, r, func(e slipstream.Entry, r uint64) int {
			// descending by revision
			switch er := revision(e.Version); {
			case er > r:
				return -1
			case er < r:
				return 1
			}
			return 0
		})
		e.Value = bytes.Clone(e.Value)
		newest = slices.Insert(newest, i, e)
		if len(newest) > identityProbes {
			newest = newest[:identityProbes]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the fold: %w", err)
	}
	for _, e := range newest {
		r := revision(e.Version)
		if r == 0 {
			continue
		}
		at, ok, err := b.RecordAt(ctx, r)
		if err != nil {
			return fmt.Errorf("compare the fold with bucket %q: %w", bucketName, err)
		}
		if ok && (at.Key != e.Key || at.Op != slipstream.OpPut || !bytes.Equal(at.Value, e.Value)) {
			what := fmt.Sprintf("a %s of %q", at.Op, at.Key)
			if at.Key == e.Key && at.Op == slipstream.OpPut {
				what = "another value"
			}
			return fmt.Errorf("%w: the fold holds %q at revision %d, where bucket %q holds %s",
				errFoldOfOtherBucket, e.Key, r, bucketName, what)
		}
		last, ok, err := b.LastRecord(ctx, e.Key)
		if err != nil {
			return fmt.Errorf("compare the fold with bucket %q: %w", bucketName, err)
		}
		if ok && revision(last.Version) < r {
			return fmt.Errorf("%w: the fold holds %q at revision %d, newer than bucket %q's latest (%d)",
				errFoldOfOtherBucket, e.Key, r, bucketName, revision(last.Version))
		}
	}
	return nil
}

// bindFold returns the binder of a mirror's fold at dir, found bound to
// want by bound (nil: no binding). An empty fold is bound at once. Any other
// fold is compared with the bucket (checkIdentity): refused if it holds
// another bucket's keys, else adopted unbound, to be bound once an audit has
// verified it.
func bindFold(ctx context.Context, dir string, want foldBinding, bound *foldBinding, bucket mirrorBucket, fd *fold, log *slog.Logger) (*binder, error) {
	bd := &binder{dir: dir, want: want}
	if bound != nil {
		bd.stream = bound.StreamCreated
		return bd, nil
	}
	if fd.Cursor().IsNone() {
		if err := writeBinding(dir, want); err != nil {
			return nil, err
		}
		log.Info("fold bound to the bucket", "bucket", want.Bucket, "scope", want.scopeText(), "file", filepath.Join(dir, bindingFile))
		return bd, nil
	}
	st, err := bucket.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", want.Bucket, err)
	}
	if err := checkIdentity(ctx, bucket, fd, want.Bucket, st.LastSeq); err != nil {
		if errors.Is(err, errFoldOfOtherBucket) {
			return nil, fmt.Errorf("fold %s (no binding) is not a fold of bucket %q: %w; use another -fold", dir, want.Bucket, err)
		}
		return nil, err
	}
	bd.unbind(fmt.Sprintf("the fold has no binding (imported, or made by an older slipstream): verifying it against bucket %q before reporting ready", want.Bucket))
	log.Warn("fold has no binding (imported, or made by an older slipstream); verifying it against the bucket before reporting ready",
		"bucket", want.Bucket, slipstream.LogKeyCursor, fd.Cursor().String())
	return bd, nil
}
