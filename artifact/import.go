package artifact

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/slipstream-kv/slipstream"
)

// maxManifestSize bounds the manifest read from an artifact: far above any
// real manifest (a pebble checkpoint of a large fold lists thousands of
// files, about 150 bytes each), far below what would hurt.
const maxManifestSize = 64 << 20

// Import verifies the artifact at artifactDir and installs its payload as a
// fold at dest, which must be absent or an empty directory
// (docs/ARTIFACTS.md, "Import and Verify"). backends are the backends
// accepted; the manifest's backend field picks one. Open the fold at dest
// with that backend afterwards; its cursor is the manifest's, from which a
// follower resumes.
//
// Verification, in order: the manifest is read and parsed strictly; its
// backend must be one of backends and accept the backend_version and the
// file list; dest must be available; data/ must hold only regular files and
// directories, every file declared. The declared files are then copied into
// a hidden stage beside dest (prefix [StagePrefix]) while being hashed: the
// size and BLAKE3 digest of each copy must match the manifest. Each copy
// and every staged directory is fsynced. The backend then opens the staged
// payload, and the cursor it recovers must equal the manifest's. Only then
// is the staged payload renamed onto dest (checked again first) and dest's
// parent fsynced.
//
// On any failure the stage is removed and dest is left as it was; the
// artifact is never modified. A crash leaves at most the hidden stage, or a
// complete fold at dest (a retried Import then refuses the occupied
// destination: open it instead). Errors: one wrapping
// [slipstream.ErrArtifactInvalid] for every check above (a payload the
// backend cannot open also wraps the backend's own error), the
// filesystem's errors otherwise.
func Import(artifactDir, dest string, backends ...Backend) (*Manifest, error) {
	return importTo(osFS{}, artifactDir, dest, backends)
}

func importTo(fsys fsys, artifactDir, dest string, backends []Backend) (*Manifest, error) {
	m, be, stage, err := verifyAndStage(fsys, artifactDir, dest, backends)
	if err != nil {
		return nil, err
	}
	// Once the fold is in place the import has succeeded: a stage that
	// cannot be removed is only a hidden, empty leftover.
	defer func() { _ = fsys.RemoveAll(stage) }()
	staged := filepath.Join(stage, DataDir)
	if err := checkCursor(be, staged, m); err != nil {
		return nil, err
	}
	if _, err := place(fsys, staged, dest); err != nil {
		return nil, err
	}
	return m, nil
}

// checkCursor opens the payload in dir with the backend and compares the
// cursor it recovers with the manifest's.
func checkCursor(be Backend, dir string, m *Manifest) error {
	c, err := be.RecoverCursor(dir)
	if err != nil {
		return fmt.Errorf("%w: %s payload does not open: %w", slipstream.ErrArtifactInvalid, m.Backend, err)
	}
	if c != m.Cursor {
		return invalidf("payload cursor %s disagrees with manifest cursor %s", c, m.Cursor)
	}
	return nil
}

// verifyAndStage is the common half of an import: everything but the
// backend's cursor gate and the final rename. It returns the stage, whose
// data/ holds the verified copy; on error there is no stage.
func verifyAndStage(fsys fsys, artifactDir, dest string, backends []Backend) (m *Manifest, be Backend, stage string, err error) {
	m, be, err = readArtifact(fsys, artifactDir, backends)
	if err != nil {
		return nil, nil, "", err
	}
	if _, err := destAvailable(fsys, dest); err != nil {
		return nil, nil, "", err
	}
	if err := checkPayloadTree(fsys, artifactDir, m); err != nil {
		return nil, nil, "", err
	}
	created, err := newStage(fsys, dest, StagePrefix)
	if err != nil {
		return nil, nil, "", err
	}
	defer func() {
		if err != nil {
			_ = fsys.RemoveAll(created)
		}
	}()
	stage = created
	buf := make([]byte, hashBufSize)
	dirs := map[string]bool{}
	data := filepath.Join(stage, DataDir)
	for _, f := range m.Files {
		dst := filepath.Join(stage, filepath.FromSlash(f.Path))
		for d := filepath.Dir(dst); d != stage && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
		if err := fsys.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, nil, "", fmt.Errorf("artifact: create %s: %w", filepath.Dir(dst), err)
		}
		src := filepath.Join(artifactDir, filepath.FromSlash(f.Path))
		size, digest, err := copyFile(fsys, src, dst, buf)
		if err != nil {
			return nil, nil, "", payloadErr(f.Path, err)
		}
		if err := checkFile(f, size, digest); err != nil {
			return nil, nil, "", err
		}
	}
	if err := fsys.MkdirAll(data, 0o755); err != nil {
		return nil, nil, "", fmt.Errorf("artifact: create %s: %w", data, err)
	}
	dirs[data] = true
	for d := range dirs {
		if err := fsys.SyncDir(d); err != nil {
			return nil, nil, "", fmt.Errorf("artifact: sync %s: %w", d, err)
		}
	}
	return m, be, stage, nil
}

// readArtifact reads and parses artifactDir's manifest and picks its
// backend, which must accept the format generation and the file list.
func readArtifact(fsys fsys, artifactDir string, backends []Backend) (*Manifest, Backend, error) {
	b, err := readManifest(fsys, artifactDir)
	if err != nil {
		return nil, nil, err
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, nil, err
	}
	be, err := pick(m.Backend, backends)
	if err != nil {
		return nil, nil, err
	}
	if err := be.CheckVersion(m.BackendVersion); err != nil {
		return nil, nil, fmt.Errorf("%w: %s backend_version %q refused: %w", slipstream.ErrArtifactInvalid, m.Backend, m.BackendVersion, err)
	}
	if err := checkDeclared(m); err != nil {
		return nil, nil, err
	}
	if err := be.CheckFiles(relPaths(m)); err != nil {
		return nil, nil, fmt.Errorf("%w: %s payload files refused: %w", slipstream.ErrArtifactInvalid, m.Backend, err)
	}
	return m, be, nil
}

// readManifest reads artifactDir/MANIFEST.json, at most maxManifestSize
// bytes.
func readManifest(fsys fsys, artifactDir string) ([]byte, error) {
	p := filepath.Join(artifactDir, ManifestName)
	f, err := fsys.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, invalidf("no %s in %s", ManifestName, artifactDir)
	}
	if err != nil {
		return nil, fmt.Errorf("artifact: read %s: %w", p, err)
	}
	defer f.Close()
	if err := checkRegular(f, p); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("artifact: read %s: %w", p, err)
	}
	if len(b) > maxManifestSize {
		return nil, invalidf("%s exceeds %d bytes", p, maxManifestSize)
	}
	return b, nil
}

// checkDeclared refuses a manifest that declares a path twice, or a path
// both as a file and as a directory holding files.
func checkDeclared(m *Manifest) error {
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if seen[f.Path] {
			return invalidf("manifest declares %s twice", f.Path)
		}
		seen[f.Path] = true
	}
	for _, f := range m.Files {
		for d := f.Path; ; {
			i := strings.LastIndexByte(d, '/')
			if i < 0 {
				break
			}
			d = d[:i]
			if seen[d] {
				return invalidf("manifest declares %s both as a file and as a directory", d)
			}
		}
	}
	return nil
}

// checkPayloadTree walks artifactDir/data: every entry must be a regular
// file or a directory, and every file declared. A missing data directory
// holds no file (each declared file is then missing).
func checkPayloadTree(fsys fsys, artifactDir string, m *Manifest) error {
	ents, err := walkPayload(fsys, filepath.Join(artifactDir, DataDir))
	if errors.Is(err, fs.ErrNotExist) {
		if len(m.Files) > 0 {
			return invalidf("payload file missing: %s (no %s directory in %s)", m.Files[0].Path, DataDir, artifactDir)
		}
		return nil
	}
	if err != nil {
		return err
	}
	declared := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		declared[f.Path] = true
	}
	for _, e := range ents {
		if !e.isDir && !declared[DataDir+"/"+e.rel] {
			return invalidf("payload contains undeclared file: %s/%s", DataDir, e.rel)
		}
	}
	return nil
}

// payloadErr classifies a failure to read a declared payload file.
func payloadErr(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return invalidf("payload file missing: %s", path)
	}
	return err
}

// checkFile compares a file's measured size and digest with the manifest.
func checkFile(f File, size uint64, digest string) error {
	if size != f.Size {
		return invalidf("payload file %s is %d bytes, manifest says %d", f.Path, size, f.Size)
	}
	if digest != f.BLAKE3 {
		return invalidf("payload file %s checksum mismatch: BLAKE3 %s, manifest says %s", f.Path, digest, f.BLAKE3)
	}
	return nil
}
