package objstore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/internal/fsync"
)

// uploadPrefix begins the name of Upload's temporary tar, created in the
// artifact's parent directory (Download's temporaries use
// artifact.DownloadPrefix in the destination's parent). A crash leaves only
// such hidden entries behind.
const uploadPrefix = ".slipstream-upload-"

// Download fetches the artifact key's pointer names into destDir and returns
// its manifest. destDir must not exist or be an empty directory, and must
// have a parent directory; both are checked before any remote I/O. The
// payload is streamed to a temporary file in the parent and unpacked into a
// hidden stage directory there: only regular files and directories are
// accepted (no absolute or ".." paths, no links or devices), files are
// created 0644 and directories 0755 whatever the archive says, and the
// archive's MANIFEST.json must be byte-for-byte the pointer. The stage is
// then renamed onto destDir. On every error the temporary file and the stage
// are removed and destDir is untouched.
//
// Download does not verify the payload files' hashes: import does, so always
// import (or verify) what was downloaded.
//
// Errors: destination and archive problems, a missing pointer and a missing
// payload (what a doctored pointer produces) wrap
// slipstream.ErrArtifactInvalid; store failures wrap
// slipstream.ErrOperationFailed; local I/O errors are returned as they are.
func (t *Transport) Download(ctx context.Context, key, destDir string) (*artifact.Manifest, error) {
	if _, _, err := t.names(key); err != nil {
		return nil, err
	}
	if err := destAvailable(destDir); err != nil {
		return nil, err
	}
	parent := parentDir(destDir)
	if parent == "" {
		return nil, invalidf("download destination %q has no parent directory", destDir)
	}
	m, pointer, err := t.pointer(ctx, key)
	if err != nil {
		return nil, err
	}
	_, payloads, _ := t.names(key)
	payload := payloadName(payloads, m.Cursor.Rank(), pointer)

	tmp, err := os.CreateTemp(parent, artifact.DownloadPrefix+"*.tar")
	if err != nil {
		return nil, fmt.Errorf("create download temp file: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := t.fetch(ctx, payload, tmp); err != nil {
		return nil, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind download temp file: %w", err)
	}

	// artifact.ReadTar unpacks safely into its own hidden directory and
	// moves the result onto unpacked, inside our stage; the embedded
	// manifest is compared with the pointer before anything reaches destDir.
	stage, err := os.MkdirTemp(parent, artifact.DownloadPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("create download stage: %w", err)
	}
	defer os.RemoveAll(stage)
	unpacked := filepath.Join(stage, "artifact")
	if _, err := artifact.ReadTar(tmp, unpacked); err != nil {
		if errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: %w", slipstream.ErrArtifactInvalid, err)
		}
		return nil, fmt.Errorf("unpack payload %s: %w", payload, err)
	}
	embedded, err := os.ReadFile(filepath.Join(unpacked, artifact.ManifestName))
	if err != nil {
		return nil, fmt.Errorf("read embedded manifest: %w", err)
	}
	if !bytes.Equal(embedded, pointer) {
		return nil, invalidf("embedded manifest disagrees with the pointer for payload %s", payload)
	}

	if err := destAvailable(destDir); err != nil {
		return nil, err
	}
	if err := os.Remove(destDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("replace empty destination: %w", err)
	}
	if err := os.Rename(unpacked, destDir); err != nil {
		return nil, fmt.Errorf("move download into place: %w", err)
	}
	if err := fsync.Dir(parent); err != nil {
		return nil, err
	}
	return m, nil
}

// fetch streams the payload object into w.
func (t *Transport) fetch(ctx context.Context, name string, w io.Writer) error {
	rc, _, err := t.Store.Get(ctx, name)
	if errors.Is(err, ErrNotExist) {
		return fmt.Errorf("%w: remote artifact object not found: %s: %w", slipstream.ErrArtifactInvalid, name, err)
	}
	if err != nil {
		return backend("read payload", name, err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return backend("read payload", name, err)
	}
	return nil
}

// destAvailable accepts a destination that does not exist or is an empty
// directory.
func destAvailable(dest string) error {
	fi, err := os.Stat(dest)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check destination: %w", err)
	}
	if !fi.IsDir() {
		return invalidf("destination %s already exists", dest)
	}
	f, err := os.Open(dest)
	if err != nil {
		return fmt.Errorf("check destination: %w", err)
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err == nil {
		return invalidf("destination %s exists and is not empty", dest)
	} else if err != io.EOF {
		return fmt.Errorf("check destination: %w", err)
	}
	return nil
}

// parentDir returns p's parent directory, or "" when p names none: a bare
// name ("artifact"), the root, or "".
func parentDir(p string) string {
	p = filepath.Clean(p)
	if p == "." || p == string(filepath.Separator) || !strings.ContainsRune(p, filepath.Separator) {
		return ""
	}
	return filepath.Dir(p)
}
