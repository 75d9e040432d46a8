package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/protocol"
)

// Transport publishes artifacts to a [Store] under a monotone pointer and
// fetches them back (docs/TRANSPORT.md). Its methods may be called
// concurrently, from any number of processes sharing the store: the pointer
// swap is a conditional write, so correctness does not depend on a lease.
type Transport struct {
	// Store holds the objects. Required.
	Store Store
	// Prefix is prepended to every object name ('/'-separated; empty
	// segments are dropped). Keep it to [A-Za-z0-9._/-].
	Prefix string
	// NonAtomicPointerFallback lets Upload overwrite the pointer
	// unconditionally when the store cannot replace conditionally
	// (Replace returns ErrNotImplemented), after re-checking that the
	// pointer is older. Two publishers racing on such a store can then move
	// the pointer backwards. Without it, Upload fails closed there. It is
	// the reference's with_non_atomic_pointer_fallback.
	NonAtomicPointerFallback bool
	// Logger receives the non-atomic fallback's warning; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Outcome is the result of an [Transport.Upload].
type Outcome uint8

const (
	// Published means the pointer now names the uploaded artifact.
	Published Outcome = iota + 1
	// Superseded means the pointer already named a strictly newer artifact
	// and was left alone; the uploaded payload is garbage for Prune.
	Superseded
)

// String returns "published" or "superseded".
func (o Outcome) String() string {
	switch o {
	case Published:
		return "published"
	case Superseded:
		return "superseded"
	default:
		return "Outcome(" + strconv.Itoa(int(o)) + ")"
	}
}

// UploadResult reports an [Transport.Upload].
type UploadResult struct {
	// Outcome says whether the pointer moved.
	Outcome Outcome
	// Manifest is the uploaded artifact's manifest.
	Manifest *artifact.Manifest
	// Remote is the cursor of the pointer that superseded the upload (zero
	// when Published).
	Remote slipstream.Cursor
	// Payload is the name of the uploaded payload object.
	Payload string
}

func (t *Transport) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.Default()
}

func (t *Transport) names(key string) (pointer, payloads string, err error) {
	if t.Store == nil {
		return "", "", fmt.Errorf("%w: transport has no store", slipstream.ErrInvalidConfig)
	}
	return names(t.Prefix, key)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", slipstream.ErrArtifactInvalid, fmt.Sprintf(format, args...))
}

func backend(op, name string, err error) error {
	return fmt.Errorf("%w: %s %s: %w", slipstream.ErrOperationFailed, op, name, err)
}

// Upload publishes the artifact in artifactDir under key: it reads and
// strictly parses the artifact's MANIFEST.json (payload hashes are not
// verified: import does that), tars the directory into a temporary file in
// artifactDir's parent, uploads it as the payload object, and then swaps the
// pointer to the artifact's manifest unless the pointer already names a
// strictly newer cursor ([Superseded]).
//
// Errors: an unreadable manifest returns the I/O error; a malformed manifest,
// a non-regular file in the artifact or an artifactDir with no parent wrap
// slipstream.ErrArtifactInvalid; store failures wrap
// slipstream.ErrOperationFailed; on a store without conditional replace the
// error wraps ErrNotImplemented and names NonAtomicPointerFallback; eight
// lost races in a row wrap ErrPreconditionFailed. A failed Upload may leave
// its payload behind (Prune collects it) but never a pointer to a missing
// payload.
func (t *Transport) Upload(ctx context.Context, key, artifactDir string) (*UploadResult, error) {
	pointerName, payloads, err := t.names(key)
	if err != nil {
		return nil, err
	}
	pointer, err := readManifestFile(filepath.Join(artifactDir, artifact.ManifestName))
	if err != nil {
		return nil, err
	}
	m, err := artifact.ParseManifest(pointer)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", artifactDir, err)
	}
	parent := parentDir(artifactDir)
	if parent == "" {
		return nil, invalidf("artifact directory %q has no parent directory to stage the tar in", artifactDir)
	}
	tmp, err := os.CreateTemp(parent, uploadPrefix+"*.tar")
	if err != nil {
		return nil, fmt.Errorf("create upload temp file: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	size, err := artifact.WriteTar(tmp, artifactDir)
	if err != nil {
		return nil, fmt.Errorf("tar %s: %w", artifactDir, err)
	}
	payload := payloadName(payloads, m.Cursor.Rank(), pointer)
	if err := t.Store.Put(ctx, payload, tmp, size); err != nil {
		return nil, backend("upload payload", payload, err)
	}
	res := &UploadResult{Manifest: m, Payload: payload}
	res.Outcome, res.Remote, err = t.swapPointer(ctx, pointerName, pointer, m.Cursor.Rank())
	if err != nil {
		return nil, err
	}
	return res, nil
}

// readManifestFile reads a local MANIFEST.json, refusing one the transport
// could not read back as a pointer.
func readManifestFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read artifact manifest: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxPointerSize+1))
	if err != nil {
		return nil, fmt.Errorf("read artifact manifest: %w", err)
	}
	if len(b) > MaxPointerSize {
		return nil, invalidf("manifest %s exceeds %d bytes", path, MaxPointerSize)
	}
	return b, nil
}

// readPointer reads the pointer object: its bytes (at most MaxPointerSize)
// and ETag. A missing pointer returns an error wrapping ErrNotExist; an
// oversized one wraps slipstream.ErrArtifactInvalid; others wrap
// slipstream.ErrOperationFailed.
func (t *Transport) readPointer(ctx context.Context, name string) ([]byte, string, error) {
	rc, attrs, err := t.Store.Get(ctx, name)
	if errors.Is(err, ErrNotExist) {
		return nil, "", fmt.Errorf("read pointer %s: %w", name, err)
	}
	if err != nil {
		return nil, "", backend("read pointer", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxPointerSize+1))
	if err != nil {
		return nil, "", backend("read pointer", name, err)
	}
	if len(b) > MaxPointerSize {
		return nil, "", invalidf("remote pointer %s exceeds %d bytes", name, MaxPointerSize)
	}
	return b, attrs.ETag, nil
}

// swapPointer moves the pointer to the candidate's bytes if the guard
// allows it, by conditional writes, in at most PointerSwapAttempts rounds.
func (t *Transport) swapPointer(ctx context.Context, name string, candidate []byte, rank uint64) (Outcome, slipstream.Cursor, error) {
	for range PointerSwapAttempts {
		cur, etag, err := t.readPointer(ctx, name)
		state := protocol.Absent
		var remote slipstream.Cursor
		switch {
		case errors.Is(err, ErrNotExist):
		case err != nil:
			return 0, remote, err
		default:
			if m, perr := artifact.ParseManifest(cur); perr == nil {
				state, remote = protocol.PointerAt(m.Cursor.Rank()), m.Cursor
			} else {
				state = protocol.CorruptPointer()
			}
		}
		if !protocol.PointerPublishAllowed(state, rank) {
			return Superseded, remote, nil
		}
		if !state.Present {
			err = t.Store.Create(ctx, name, candidate)
		} else {
			err = t.Store.Replace(ctx, name, candidate, etag)
		}
		switch {
		case err == nil:
			return Published, slipstream.Cursor{}, nil
		case errors.Is(err, ErrPreconditionFailed), state.Present && errors.Is(err, ErrNotExist):
			continue // lost a race (or the pointer vanished): re-read
		case state.Present && errors.Is(err, ErrNotImplemented):
			if !t.NonAtomicPointerFallback {
				return 0, remote, fmt.Errorf("%w: replace pointer %s: the store cannot replace conditionally; "+
					"set Transport.NonAtomicPointerFallback (with_non_atomic_pointer_fallback) to overwrite it without CAS: %w",
					slipstream.ErrOperationFailed, name, err)
			}
			t.logger().Warn("store cannot replace conditionally: overwriting the pointer without CAS (NonAtomicPointerFallback)",
				"pointer", name)
			if err := t.Store.Put(ctx, name, bytes.NewReader(candidate), int64(len(candidate))); err != nil {
				return 0, remote, backend("overwrite pointer", name, err)
			}
			return Published, slipstream.Cursor{}, nil
		default:
			return 0, remote, backend("write pointer", name, err)
		}
	}
	return 0, slipstream.Cursor{}, fmt.Errorf("%w: pointer swap for %s lost %d consecutive CAS races: %w",
		slipstream.ErrOperationFailed, name, PointerSwapAttempts, ErrPreconditionFailed)
}

// NotPublishedError is the error of a read of a key that has no pointer:
// nothing was published under it. It matches ErrNotPublished, ErrNotExist
// and slipstream.ErrArtifactInvalid (the storage spec's kind for a missing
// remote object: fetch another artifact, never repair the fold).
type NotPublishedError struct {
	// Key is the logical key.
	Key string
	// Pointer is the pointer object's name in the store.
	Pointer string
	// Store, when set, names the store (its URL) in the message; the
	// transport leaves it empty, a caller that knows the URL fills it in.
	Store string
}

func (e *NotPublishedError) Error() string {
	where := ""
	if e.Store != "" {
		where = " under " + e.Store
	}
	return fmt.Sprintf("no artifact published at %s%s (remote artifact object not found: %s)", e.Key, where, e.Pointer)
}

// Is matches ErrNotPublished, ErrNotExist and slipstream.ErrArtifactInvalid.
func (e *NotPublishedError) Is(target error) bool {
	return target == ErrNotPublished || target == ErrNotExist || target == slipstream.ErrArtifactInvalid
}

// Check probes the store with the request every operation on key starts
// with, a read of key's pointer, so that a missing bucket or refused
// credentials surface before any work (an upload's tar, an export round)
// rather than at the end of it. A missing pointer is not an error: nothing
// is published yet. Check proves the store readable, not writable: a store
// that refuses only writes fails at the first upload.
//
// Errors are the store's: a missing bucket wraps ErrBucketNotFound,
// refused credentials ErrAccessDenied, anything else
// slipstream.ErrOperationFailed (or ctx's error).
func (t *Transport) Check(ctx context.Context, key string) error {
	name, _, err := t.names(key)
	if err != nil {
		return err
	}
	rc, _, err := t.Store.Get(ctx, name)
	switch {
	case err == nil:
		return rc.Close()
	case errors.Is(err, ErrNotExist):
		return nil
	case errors.Is(err, ErrBucketNotFound), errors.Is(err, ErrAccessDenied), ctx.Err() != nil:
		return err // the store's own words name the bucket and the object
	default:
		return backend("read pointer", name, err)
	}
}

// Manifest returns the manifest the key's pointer names, without fetching the
// payload. A missing pointer returns a [*NotPublishedError] (matching
// ErrNotPublished, ErrNotExist and slipstream.ErrArtifactInvalid); an oversized or malformed
// one wraps slipstream.ErrArtifactInvalid; store failures wrap
// slipstream.ErrOperationFailed.
func (t *Transport) Manifest(ctx context.Context, key string) (*artifact.Manifest, error) {
	m, _, err := t.pointer(ctx, key)
	return m, err
}

// pointer reads and parses key's pointer, returning its bytes too.
func (t *Transport) pointer(ctx context.Context, key string) (*artifact.Manifest, []byte, error) {
	name, _, err := t.names(key)
	if err != nil {
		return nil, nil, err
	}
	b, _, err := t.readPointer(ctx, name)
	if errors.Is(err, ErrNotExist) {
		return nil, nil, &NotPublishedError{Key: key, Pointer: name}
	}
	if err != nil {
		return nil, nil, err
	}
	m, err := artifact.ParseManifest(b)
	if err != nil {
		return nil, nil, fmt.Errorf("remote pointer %s: %w", name, err)
	}
	return m, b, nil
}

// Prune deletes the key's payloads that no pointer can name any more: those
// whose rank is strictly below the pointer's, that are not the pointer's
// target, and that were last modified at least grace ago
// (protocol.PayloadPrunable). Objects whose names do not parse are kept. If
// the pointer cannot be read and parsed for any reason, nothing is provably
// stale and Prune returns 0 and no error.
//
// Listing and delete errors stop the prune and are returned with the count
// deleted so far (those deletes stand).
func (t *Transport) Prune(ctx context.Context, key string, grace time.Duration) (int, error) {
	_, payloads, err := t.names(key)
	if err != nil {
		return 0, err
	}
	m, pointer, err := t.pointer(ctx, key)
	if err != nil {
		if !errors.Is(err, ErrNotExist) {
			t.logger().Warn("prune: pointer unreadable, nothing is provably stale", "key", key, "err", err)
		}
		return 0, nil
	}
	pointerRank := m.Cursor.Rank()
	keep := payloadName(payloads, pointerRank, pointer)
	cutoff := cutoffMillis(time.Now(), grace)
	list, err := t.Store.List(ctx, payloads+"/")
	if err != nil {
		return 0, backend("list", payloads+"/", err)
	}
	deleted := 0
	for _, o := range list {
		base := strings.TrimPrefix(o.Name, payloads+"/")
		var rank *uint64
		head, _, _ := strings.Cut(base, "-")
		if r, err := strconv.ParseUint(head, 16, 64); err == nil {
			rank = &r
		}
		aged := o.LastModified.UnixMilli() <= cutoff
		if !protocol.PayloadPrunable(rank, pointerRank, o.Name == keep, aged) {
			continue
		}
		if err := t.Store.Delete(ctx, o.Name); err != nil {
			return deleted, backend("delete", o.Name, err)
		}
		deleted++
	}
	return deleted, nil
}

// cutoffMillis is now − grace in Unix milliseconds, saturating at 0.
func cutoffMillis(now time.Time, grace time.Duration) int64 {
	ms := now.UnixMilli()
	g := grace.Milliseconds()
	if g < 0 {
		g = 0
	}
	if g >= ms {
		return 0
	}
	return ms - g
}
