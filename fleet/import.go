package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/internal/fsync"
	"github.com/slipstream-kv/slipstream/internal/movedir"
	"github.com/slipstream-kv/slipstream/objstore"
)

// BootstrapPrefix begins the name of an import's scratch directory under
// [Import.ScratchDir]. The directory is removed when the import returns,
// whatever happened.
const BootstrapPrefix = ".slipstream-bootstrap-"

// Phases of an [Import], as reported to [Import.OnProgress].
const (
	PhaseDownload = "download" // fetching and unpacking the payload
	PhaseImport   = "import"   // verifying and installing the fold
)

// Progress reports how far an [Import] got.
type Progress struct {
	// Phase is PhaseDownload or PhaseImport.
	Phase string
	// Done and Total are bytes: of the payload object while downloading,
	// of the payload files while importing (reported at the start and at
	// the end of the phase only).
	Done, Total int64
	// Finished is set on the phase's last report.
	Finished bool
}

// Import fetches the artifact a key's pointer names and installs it as a
// fold (docs/FLEET.md). Configure it through its fields and call
// [Import.Run]; [ImportRemote] is the one-call form.
type Import struct {
	// Transport fetches the artifact. Required.
	Transport *objstore.Transport
	// Key is the artifact's logical key. Required.
	Key string
	// ScratchDir holds the import's directory (prefix BootstrapPrefix):
	// the downloaded tar and the unpacked artifact. Required; created if
	// missing. Put it on the destination's filesystem, with room for twice
	// the artifact.
	ScratchDir string
	// Backends are the fold backends accepted; the manifest's backend
	// field picks one. Required.
	Backends []artifact.Backend
	// OnProgress, if set, is called as the phases advance (from the
	// calling goroutine or the store's reader). It must not block.
	OnProgress func(Progress)
}

// ImportResult reports a completed [Import.Run].
type ImportResult struct {
	// Manifest is the imported artifact's: its cursor is the new fold's.
	Manifest *artifact.Manifest
	// Downloaded is the payload's size in bytes.
	Downloaded int64
	// Download and Install are the durations of the two phases: fetch and
	// unpack; verify (every file's size and BLAKE3, the backend's cursor)
	// and move into place.
	Download, Install time.Duration
	// Verify is the part of Install spent verifying.
	Verify time.Duration
}

// Run downloads the artifact into a fresh directory under ScratchDir,
// verifies it in place (artifact.Verify: every file's size and BLAKE3, the
// backend's own recovery of the manifest's cursor), moves its payload onto
// dest (absent or an empty directory; checked before the download too) and
// syncs dest's parent, then removes the scratch directory, on success and
// failure alike. On failure dest is left as it was. The move saves
// artifact.Import's copy; across filesystems Run imports with
// artifact.Import instead.
//
// Errors: the transport's (a missing pointer or payload, a doctored or
// oversized pointer, an unsafe archive wrap slipstream.ErrArtifactInvalid;
// store failures slipstream.ErrOperationFailed), the import's (every
// verification failure wraps slipstream.ErrArtifactInvalid, as does a
// backend not among Backends), ctx.Err(), and the filesystem's.
func (im *Import) Run(ctx context.Context, dest string) (res *ImportResult, err error) {
	switch {
	case im.Transport == nil || im.Transport.Store == nil:
		return nil, fmt.Errorf("%w: import: no Transport", slipstream.ErrInvalidConfig)
	case im.Key == "":
		return nil, fmt.Errorf("%w: import: no Key", slipstream.ErrInvalidConfig)
	case im.ScratchDir == "":
		return nil, fmt.Errorf("%w: import: no ScratchDir", slipstream.ErrInvalidConfig)
	case len(im.Backends) == 0:
		return nil, fmt.Errorf("%w: import: no Backends", slipstream.ErrInvalidConfig)
	}
	if err := destAvailable(dest); err != nil {
		return nil, fmt.Errorf("import %s: %w", im.Key, err)
	}
	if err := os.MkdirAll(im.ScratchDir, 0o755); err != nil {
		return nil, fmt.Errorf("import: create scratch directory: %w", err)
	}
	tmp, err := os.MkdirTemp(im.ScratchDir, BootstrapPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("import: create scratch directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("import: remove scratch directory: %w", rerr)
		}
	}()

	progress := im.OnProgress
	if progress == nil {
		progress = func(Progress) {}
	}
	tr := *im.Transport
	cs := &countingStore{Store: tr.Store, onRead: func(done, total int64) {
		progress(Progress{Phase: PhaseDownload, Done: done, Total: total})
	}}
	tr.Store = cs
	res = &ImportResult{}
	start := time.Now()
	art := filepath.Join(tmp, "artifact")
	dm, err := tr.Download(ctx, im.Key, art)
	if err != nil {
		return nil, fmt.Errorf("import %s: download: %w", im.Key, err)
	}
	res.Downloaded = cs.read.Load()
	res.Download = time.Since(start)
	progress(Progress{Phase: PhaseDownload, Done: res.Downloaded, Total: res.Downloaded, Finished: true})
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("import %s: %w", im.Key, err)
	}

	start = time.Now()
	progress(Progress{Phase: PhaseImport, Total: int64(dm.Size())})
	m, verified, err := install(art, dest, im.Backends)
	res.Verify = verified
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", im.Key, err)
	}
	res.Manifest = m
	res.Install = time.Since(start)
	size := int64(m.Size())
	progress(Progress{Phase: PhaseImport, Done: size, Total: size, Finished: true})
	return res, nil
}

// install verifies the downloaded artifact at art in place (artifact.Verify:
// the manifest, every file's size and BLAKE3, the backend's cursor) and
// moves its payload onto dest, saving artifact.Import's copy: the download
// is this import's own, unpacked and fsynced by the transport, and removed
// afterwards. When dest is on another filesystem than the scratch directory,
// it imports with artifact.Import (verify while copying) instead. Either way
// dest holds the complete verified fold or, on failure, what it held before.
func install(art, dest string, backends []artifact.Backend) (*artifact.Manifest, time.Duration, error) {
	start := time.Now()
	m, err := artifact.Verify(art, backends...)
	verified := time.Since(start)
	if err != nil {
		return nil, verified, err
	}
	if err := destAvailable(dest); err != nil {
		return nil, verified, err
	}
	parent := filepath.Dir(filepath.Clean(dest))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, verified, fmt.Errorf("create %s: %w", parent, err)
	}
	data := filepath.Join(art, artifact.DataDir)
	if len(m.Files) == 0 {
		// A fold that never applied anything has no payload files.
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, verified, fmt.Errorf("create %s: %w", data, err)
		}
	}
	if err := movedir.Onto(data, dest); err != nil {
		if errors.Is(err, syscall.EXDEV) {
			m, err := artifact.Import(art, dest, backends...)
			return m, verified, err
		}
		if derr := destAvailable(dest); derr != nil {
			return nil, verified, fmt.Errorf("%w (rename: %w)", derr, err)
		}
		return nil, verified, fmt.Errorf("move the verified payload to %s: %w", dest, err)
	}
	if err := fsync.Dir(parent); err != nil {
		return nil, verified, err
	}
	return m, verified, nil
}

// destAvailable accepts a destination that is absent or an empty directory.
func destAvailable(dest string) error {
	fi, err := os.Lstat(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("check destination %s: %w", dest, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: destination %s already exists", slipstream.ErrArtifactInvalid, dest)
	}
	ents, err := os.ReadDir(dest)
	if err != nil {
		return fmt.Errorf("check destination %s: %w", dest, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("%w: destination %s exists and is not empty", slipstream.ErrArtifactInvalid, dest)
	}
	return nil
}

// ImportRemote downloads the artifact key's pointer names from t into a
// scratch directory under scratchDir, imports it into dest with the given
// backends and removes the scratch directory (docs/FLEET.md). It is
// [Import.Run] without progress reports.
func ImportRemote(ctx context.Context, t *objstore.Transport, key, scratchDir, dest string, backends ...artifact.Backend) (*artifact.Manifest, error) {
	im := &Import{Transport: t, Key: key, ScratchDir: scratchDir, Backends: backends}
	res, err := im.Run(ctx, dest)
	if err != nil {
		return nil, err
	}
	return res.Manifest, nil
}

// countingStore counts the bytes read from payload objects (names ending in
// ".tar") and reports them.
type countingStore struct {
	objstore.Store
	read   atomic.Int64
	onRead func(done, total int64)
}

func (s *countingStore) Get(ctx context.Context, name string) (io.ReadCloser, objstore.Attrs, error) {
	rc, attrs, err := s.Store.Get(ctx, name)
	if err != nil || !strings.HasSuffix(name, ".tar") {
		return rc, attrs, err
	}
	s.onRead(0, attrs.Size)
	return &countingReader{ReadCloser: rc, s: s, total: attrs.Size}, attrs, nil
}

type countingReader struct {
	io.ReadCloser
	s     *countingStore
	total int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.s.onRead(r.s.read.Add(int64(n)), r.total)
	}
	return n, err
}
