package artifact

import "path/filepath"

// Verify checks the artifact at artifactDir in place, without modifying it:
// the manifest is read and parsed strictly; its backend must be one of
// backends and accept the backend_version and the file list; data/ must
// hold only regular files and directories, every file declared and every
// declared file present with the manifest's size and BLAKE3 digest; and the
// backend must open the payload and recover exactly the manifest's cursor.
// It returns the manifest of a valid artifact, and otherwise an error
// wrapping [slipstream.ErrArtifactInvalid] naming the first failed check
// (or a filesystem error).
func Verify(artifactDir string, backends ...Backend) (*Manifest, error) {
	return verify(osFS{}, artifactDir, backends)
}

func verify(fsys fsys, artifactDir string, backends []Backend) (*Manifest, error) {
	m, be, err := readArtifact(fsys, artifactDir, backends)
	if err != nil {
		return nil, err
	}
	if err := checkPayloadTree(fsys, artifactDir, m); err != nil {
		return nil, err
	}
	buf := make([]byte, hashBufSize)
	for _, f := range m.Files {
		size, digest, err := hashFile(fsys, filepath.Join(artifactDir, filepath.FromSlash(f.Path)), buf, false)
		if err != nil {
			return nil, payloadErr(f.Path, err)
		}
		if err := checkFile(f, size, digest); err != nil {
			return nil, err
		}
	}
	if err := checkCursor(be, filepath.Join(artifactDir, DataDir), m); err != nil {
		return nil, err
	}
	return m, nil
}

// Size returns the total size in bytes of the payload files m declares.
func (m *Manifest) Size() uint64 {
	var n uint64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}
