package fleet

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
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
// fold (storage.md §8.7). Configure it through its fields and call
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
	// unpack; verify (every file's size and BLAKE3), copy and open.
	Download, Install time.Duration
}

// Run downloads the artifact into a fresh directory under ScratchDir,
// imports it into dest (absent or an empty directory) with
// artifact.Import, and removes the scratch directory, on success and
// failure alike. On failure dest is left as it was.
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
	m, err := artifact.Import(art, dest, im.Backends...)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", im.Key, err)
	}
	res.Manifest = m
	res.Install = time.Since(start)
	size := int64(m.Size())
	progress(Progress{Phase: PhaseImport, Done: size, Total: size, Finished: true})
	return res, nil
}

// ImportRemote downloads the artifact key's pointer names from t into a
// scratch directory under scratchDir, imports it into dest with the given
// backends and removes the scratch directory (storage.md §8.7). It is
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
