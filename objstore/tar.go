package objstore

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// writeTar writes the artifact directory root to f as an uncompressed tar of
// relative paths (directories and regular files only, in lexical order, with
// fixed modes and times so the same artifact yields the same bytes) and
// returns its size.
func writeTar(f *os.File, root string) (int64, error) {
	tw := tar.NewWriter(f)
	epoch := time.Unix(0, 0)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel == "." {
			if !d.IsDir() {
				return invalidf("artifact %s is not a directory", root)
			}
			return nil
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch})
		case d.Type().IsRegular():
			return addFile(tw, path, rel, epoch)
		default:
			return invalidf("artifact contains a non-regular file: %s", rel)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("tar %s: %w", root, err)
	}
	if err := tw.Close(); err != nil {
		return 0, fmt.Errorf("tar %s: %w", root, err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, fmt.Errorf("tar %s: %w", root, err)
	}
	return size, nil
}

func addFile(tw *tar.Writer, path, rel string, mtime time.Time) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return invalidf("artifact contains a non-regular file: %s", rel)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: fi.Size(), ModTime: mtime}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, src, fi.Size()); err != nil {
		return fmt.Errorf("%s changed while being archived: %w", rel, err)
	}
	return nil
}

// extract unpacks the untrusted tar stream r into the existing directory
// stage. It creates only directories (0755) and regular files (0644) at
// normal relative paths under stage; anything else (absolute paths, ".."
// segments, symlinks, hard links, devices, FIFOs, sparse files, a second
// entry for the same file) is refused with an error wrapping
// slipstream.ErrArtifactInvalid. The "./" root entry and a "./" prefix on
// names are accepted, as the reference writer emits them. Permission bits,
// owners and times in the archive are ignored.
//
// Because nothing but directories and regular files is ever created, no
// path under stage resolves outside it, so no entry can write elsewhere.
// On error the stage holds a partial extraction; the caller removes it.
func extract(r io.Reader, stage string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return invalidf("malformed tar: %v", err)
		}
		rel, err := entryPath(hdr.Name)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if rel == "" {
				continue // the "./" root entry
			}
			if err := os.MkdirAll(filepath.Join(stage, filepath.FromSlash(rel)), 0o755); err != nil {
				return invalidf("create directory %q: %v", rel, err)
			}
		case tar.TypeReg:
			if rel == "" {
				return invalidf("tar entry %q is a file at the archive root", hdr.Name)
			}
			if err := extractFile(tr, stage, rel, hdr.Size); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader:
			continue // PAX global metadata: nothing to create
		default:
			return invalidf("tar entry %q is not a regular file or directory (type %q)", hdr.Name, hdr.Typeflag)
		}
	}
}

// entryPath validates a tar entry name and returns it relative to the stage,
// '/'-separated, without a "./" prefix or a trailing '/' ("" for the root).
func entryPath(name string) (string, error) {
	if strings.ContainsRune(name, '\\') || strings.ContainsRune(name, 0) {
		return "", invalidf("tar entry %q has a backslash or NUL", name)
	}
	if strings.HasPrefix(name, "/") {
		return "", invalidf("tar entry %q is an absolute path", name)
	}
	n := strings.TrimPrefix(name, "./")
	n = strings.TrimSuffix(n, "/")
	if n == "" || n == "." {
		return "", nil
	}
	for _, seg := range strings.Split(n, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", invalidf("tar entry %q has a %q segment", name, seg)
		}
	}
	return n, nil
}

func extractFile(r io.Reader, stage, rel string, size int64) error {
	path := filepath.Join(stage, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return invalidf("create directory for %q: %v", rel, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return invalidf("tar entry %q appears twice or over a directory", rel)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", rel, err)
	}
	_, err = io.CopyN(f, r, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, tar.ErrHeader) {
			return invalidf("tar entry %q is truncated: %v", rel, err)
		}
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}
