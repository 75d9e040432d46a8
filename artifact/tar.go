package artifact

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// DownloadPrefix begins the name of the hidden directory in which
// [ReadTar] unpacks an archive, beside its destination.
const DownloadPrefix = ".slipstream-download-"

// tarEntry is one entry of an artifact archive.
type tarEntry struct {
	hdr  *tar.Header
	path string // on disk; "" for a directory
}

// tarEntries lists the archive of the artifact at dir: MANIFEST.json first
// (a reader learns what to expect before the payload), then data/ and its
// directories and regular files in component-wise order, with relative
// '/'-separated names. Anything but a regular file or a directory is
// refused.
func tarEntries(fsys fsys, dir string) ([]tarEntry, error) {
	mp := filepath.Join(dir, ManifestName)
	fi, err := fsys.Lstat(mp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, invalidf("no %s in %s", ManifestName, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("artifact: stat %s: %w", mp, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, invalidf("%s is not a regular file", mp)
	}
	out := []tarEntry{{hdr: fileHeader(ManifestName, fi.Size(), fi.ModTime()), path: mp}}
	data := filepath.Join(dir, DataDir)
	dfi, err := fsys.Lstat(data)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("artifact: stat %s: %w", data, err)
	}
	ents, err := walkPayload(fsys, data)
	if err != nil {
		return nil, err
	}
	out = append(out, tarEntry{hdr: dirHeader(DataDir, dfi.ModTime())})
	for _, e := range ents {
		fi, err := fsys.Lstat(e.path)
		if err != nil {
			return nil, fmt.Errorf("artifact: stat %s: %w", e.path, err)
		}
		name := DataDir + "/" + e.rel
		if e.isDir {
			out = append(out, tarEntry{hdr: dirHeader(name, fi.ModTime())})
			continue
		}
		out = append(out, tarEntry{hdr: fileHeader(name, fi.Size(), fi.ModTime()), path: e.path})
	}
	return out, nil
}

func fileHeader(name string, size int64, mtime time.Time) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: mtime.Truncate(time.Second)}
}

func dirHeader(name string, mtime time.Time) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: mtime.Truncate(time.Second)}
}

// TarSize returns the exact length of the archive [WriteTar] writes for the
// artifact at dir as it is now (for a Content-Length or a progress bar).
func TarSize(dir string) (int64, error) {
	ents, err := tarEntries(osFS{}, dir)
	if err != nil {
		return 0, err
	}
	return tarSize(ents)
}

func tarSize(ents []tarEntry) (int64, error) {
	const block = 512
	var n int64
	for _, e := range ents {
		var c countWriter
		// The header is written as soon as WriteHeader returns; the
		// content follows, padded to a block.
		if err := tar.NewWriter(&c).WriteHeader(e.hdr); err != nil {
			return 0, fmt.Errorf("artifact: tar header %s: %w", e.hdr.Name, err)
		}
		n += c.n + (e.hdr.Size+block-1)/block*block
	}
	return n + 2*block, nil // the end-of-archive marker
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// WriteTar writes the artifact at dir to w as an uncompressed tar archive
// (engine files are compressed already): MANIFEST.json first, then data/
// with its directories and regular files, relative names, no links. Files
// are streamed with a 1 MiB buffer. A file whose size changes while it is
// written is an error. It returns the bytes written.
func WriteTar(w io.Writer, dir string) (int64, error) {
	ents, err := tarEntries(osFS{}, dir)
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	buf := make([]byte, hashBufSize)
	for _, e := range ents {
		if err := tw.WriteHeader(e.hdr); err != nil {
			return cw.n, fmt.Errorf("artifact: tar %s: %w", e.hdr.Name, err)
		}
		if e.path == "" {
			continue
		}
		if err := copyInto(tw, e, buf); err != nil {
			return cw.n, err
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, fmt.Errorf("artifact: tar: %w", err)
	}
	return cw.n, nil
}

func copyInto(tw *tar.Writer, e tarEntry, buf []byte) error {
	f, err := osFS{}.Open(e.path)
	if err != nil {
		return fmt.Errorf("artifact: tar %s: %w", e.hdr.Name, err)
	}
	defer f.Close()
	n, err := io.CopyBuffer(tw, onlyReader{io.LimitReader(f, e.hdr.Size)}, buf)
	if err != nil {
		return fmt.Errorf("artifact: tar %s: %w", e.hdr.Name, err)
	}
	if n != e.hdr.Size {
		return fmt.Errorf("artifact: tar %s: file shrank to %d bytes while being archived (was %d)", e.hdr.Name, n, e.hdr.Size)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadTar unpacks an artifact archive from r and places it at dest, which
// must be absent or an empty directory. The archive is untrusted: only
// regular files and directories are accepted, named MANIFEST.json or under
// data/ (a leading "./" and a "./" root entry are accepted, as other
// writers emit them), never absolute, never with an empty, "." or ".."
// segment; symlinks, hard links, devices, sparse files and duplicate
// entries are refused;
// permission bits and times are not applied (files 0644, directories
// 0755). The archive must hold a MANIFEST.json that parses strictly.
//
// The archive is unpacked into a hidden directory beside dest (prefix
// [DownloadPrefix]); every file and directory is fsynced. With backends,
// the unpacked artifact must pass [Verify] before it moves. Then dest is
// checked again, the directory is renamed onto it and dest's parent is
// fsynced. On any failure the hidden directory is removed and dest is left
// as it was.
//
// Errors wrap [slipstream.ErrArtifactInvalid] for every refusal above; a
// read error of r (a cut connection) is returned as is, wrapped.
func ReadTar(r io.Reader, dest string, backends ...Backend) (*Manifest, error) {
	return readTar(osFS{}, r, dest, backends)
}

func readTar(fsys fsys, r io.Reader, dest string, backends []Backend) (m *Manifest, err error) {
	stage, err := newStage(fsys, dest, DownloadPrefix)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			_ = fsys.RemoveAll(stage)
		}
	}()
	if err := unpack(fsys, tar.NewReader(r), stage); err != nil {
		return nil, err
	}
	b, err := readManifest(fsys, stage)
	if err != nil {
		return nil, fmt.Errorf("%w (archive has no embedded manifest)", err)
	}
	m, err = ParseManifest(b)
	if err != nil {
		return nil, err
	}
	if len(backends) > 0 {
		if m, err = verify(fsys, stage, backends); err != nil {
			return nil, err
		}
	}
	if err := fsys.Chmod(stage, 0o755); err != nil {
		return nil, fmt.Errorf("artifact: chmod %s: %w", stage, err)
	}
	keep, err = place(fsys, stage, dest)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// unpack extracts tr into stage, refusing anything unsafe.
func unpack(fsys fsys, tr *tar.Reader, stage string) error {
	buf := make([]byte, hashBufSize)
	dirs := []string{stage}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("artifact: read archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // PAX global metadata: nothing to apply
		}
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				// A sparse entry expands holes the archive does not
				// carry: a few bytes could fill the disk.
				return invalidf("archive entry %q is a sparse file", hdr.Name)
			}
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "" {
			if hdr.Typeflag != tar.TypeDir {
				return invalidf("archive root entry %q is not a directory", hdr.Name)
			}
			continue
		}
		p := filepath.Join(stage, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := mkdirs(fsys, stage, p, &dirs); err != nil {
				return err
			}
		case tar.TypeReg: // the reader turns old writers' TypeRegA into TypeReg
			if name == DataDir {
				return invalidf("archive entry %q: %s must be a directory", hdr.Name, DataDir)
			}
			if err := mkdirs(fsys, stage, filepath.Dir(p), &dirs); err != nil {
				return err
			}
			if err := extractFile(fsys, tr, hdr, p, buf); err != nil {
				return err
			}
		default:
			return invalidf("archive entry %q is not a regular file or a directory (type %q)", hdr.Name, hdr.Typeflag)
		}
	}
	for _, d := range dirs {
		if err := fsys.SyncDir(d); err != nil {
			return fmt.Errorf("artifact: sync %s: %w", d, err)
		}
	}
	return nil
}

// entryName validates an archive entry name and returns it relative to the
// artifact root, without a leading "./" or a trailing "/"; "" is the root.
func entryName(raw string) (string, error) {
	name := raw
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		return "", nil
	}
	switch {
	case strings.HasPrefix(name, "/"):
		return "", invalidf("archive entry %q has an absolute path", raw)
	case strings.ContainsRune(name, '\\'):
		return "", invalidf("archive entry %q contains a backslash", raw)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", invalidf("archive entry %q has a non-normal segment %q", raw, seg)
		}
	}
	if name != ManifestName && name != DataDir && !strings.HasPrefix(name, DataDir+"/") {
		return "", invalidf("archive entry %q is neither %s nor under %s/", raw, ManifestName, DataDir)
	}
	if path.Clean(name) != name {
		return "", invalidf("archive entry %q is not a clean path", raw)
	}
	return name, nil
}

// mkdirs creates dir (inside stage) and its missing parents, recording them
// for the final sync. An existing non-directory in the way is refused.
func mkdirs(fsys fsys, stage, dir string, dirs *[]string) error {
	var missing []string
	for d := dir; d != stage; d = filepath.Dir(d) {
		fi, err := fsys.Lstat(d)
		if err == nil {
			if !fi.IsDir() {
				return invalidf("archive entry %s is both a file and a directory", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("artifact: stat %s: %w", d, err)
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := fsys.MkdirAll(missing[i], 0o755); err != nil {
			return fmt.Errorf("artifact: create %s: %w", missing[i], err)
		}
		*dirs = append(*dirs, missing[i])
	}
	return nil
}

func extractFile(fsys fsys, tr *tar.Reader, hdr *tar.Header, p string, buf []byte) error {
	f, err := fsys.Create(p, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return invalidf("archive has a duplicate entry %q", hdr.Name)
	}
	if err != nil {
		return fmt.Errorf("artifact: create %s: %w", p, err)
	}
	defer f.Close()
	n, err := io.CopyBuffer(f, onlyReader{tr}, buf)
	if err != nil {
		return fmt.Errorf("artifact: unpack %s: %w", hdr.Name, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("artifact: unpack %s: %d of %d bytes: %w", hdr.Name, n, hdr.Size, io.ErrUnexpectedEOF)
	}
	if err := fsys.Sync(f); err != nil {
		return fmt.Errorf("artifact: sync %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("artifact: close %s: %w", p, err)
	}
	return nil
}
