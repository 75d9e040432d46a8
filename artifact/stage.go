package artifact

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"lukechampine.com/blake3"

	"github.com/slipstream-kv/slipstream"
)

const (
	// StagePrefix begins the name of the hidden directory in which an
	// export or an import is assembled, beside its destination. A crash
	// leaves at most such a directory behind, never a partial destination.
	StagePrefix = ".slipstream-artifact-"
	// hashBufSize is the read buffer of hashing and copying: memory stays
	// flat whatever the size of the fold.
	hashBufSize = 1 << 20
	// manifestTemp is the manifest's name inside the stage until it is
	// complete and synced.
	manifestTemp = ".MANIFEST.json.tmp"
)

// destState is what a destination check found.
type destState int

const (
	destAbsent destState = iota
	destEmptyDir
)

// destAvailable accepts a destination that does not exist or is an empty
// directory. A non-empty directory or any other existing entry is refused
// with an error wrapping [slipstream.ErrArtifactInvalid]; the destination is
// never modified.
func destAvailable(fsys fsys, dest string) (destState, error) {
	fi, err := fsys.Lstat(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return destAbsent, nil
	case err != nil:
		return 0, fmt.Errorf("artifact: check destination %s: %w", dest, err)
	case !fi.IsDir():
		return 0, invalidf("destination %s already exists", dest)
	}
	des, err := fsys.ReadDir(dest)
	if err != nil {
		return 0, fmt.Errorf("artifact: check destination %s: %w", dest, err)
	}
	if len(des) > 0 {
		return 0, invalidf("destination %s exists and is not empty", dest)
	}
	return destEmptyDir, nil
}

// parentOf returns the directory that holds dest; a destination without one
// ("" or a filesystem root) is refused.
func parentOf(dest string) (string, error) {
	if dest == "" {
		return "", invalidf("destination %q has no parent directory", dest)
	}
	clean := filepath.Clean(dest)
	parent := filepath.Dir(clean)
	if parent == clean {
		return "", invalidf("destination %s has no parent directory", dest)
	}
	return parent, nil
}

// newStage checks dest and creates a hidden stage directory named prefix*
// in its parent (created if missing), on dest's filesystem so the final
// rename is atomic and hard links work.
func newStage(fsys fsys, dest, prefix string) (stage string, err error) {
	if _, err := destAvailable(fsys, dest); err != nil {
		return "", err
	}
	parent, err := parentOf(dest)
	if err != nil {
		return "", err
	}
	if err := fsys.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("artifact: create %s: %w", parent, err)
	}
	sweepStale(fsys, parent, prefix, time.Now().Add(-StaleStageAge))
	stage, err = fsys.MkdirTemp(parent, prefix+"*")
	if err != nil {
		return "", fmt.Errorf("artifact: create stage in %s: %w", parent, err)
	}
	return stage, nil
}

// StaleStageAge is how long a stage directory (see [StagePrefix] and
// [DownloadPrefix]) must have gone unmodified before an export, import or
// unpack into the same parent removes it as a crashed run's leftover. A
// stage is modified throughout its run (files and directories are created
// and written), and the newest modification anywhere in it counts, so a
// day leaves room for any run in progress, however slow.
const StaleStageAge = 24 * time.Hour

// sweepStale removes from parent the stage directories, of prefix, that a
// crashed run left behind: directories named prefix followed by digits
// (os.MkdirTemp's naming of the stages newStage creates) in which nothing
// was modified after cutoff. Anything else, however it is named, is left
// alone. The sweep is best effort: a stage it cannot read or remove stays,
// and the run that swept goes on (its own stage is a fresh name).
func sweepStale(fsys fsys, parent, prefix string, cutoff time.Time) {
	des, err := fsys.ReadDir(parent)
	if err != nil {
		return // newStage's own MkdirTemp reports an unusable parent
	}
	for _, de := range des {
		digits, ok := strings.CutPrefix(de.Name(), prefix)
		if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" || !de.IsDir() {
			continue
		}
		dir := filepath.Join(parent, de.Name())
		if fresh, err := modifiedAfter(fsys, dir, cutoff); err != nil || fresh {
			continue
		}
		_ = fsys.RemoveAll(dir) // best effort: see above
	}
}

// modifiedAfter reports whether path or anything under it (symlinks are
// not followed) was modified after cutoff. It stops at the first such entry.
func modifiedAfter(fsys fsys, path string, cutoff time.Time) (bool, error) {
	fi, err := fsys.Lstat(path)
	if err != nil {
		return false, err
	}
	if fi.ModTime().After(cutoff) {
		return true, nil
	}
	if !fi.IsDir() {
		return false, nil
	}
	des, err := fsys.ReadDir(path)
	if err != nil {
		return false, err
	}
	for _, de := range des {
		if fresh, err := modifiedAfter(fsys, filepath.Join(path, de.Name()), cutoff); err != nil || fresh {
			return fresh, err
		}
	}
	return false, nil
}

// place moves src (a complete stage, or a directory inside one) to dest:
// dest is checked again (it may have appeared meanwhile: fail closed, never
// overwrite), src is renamed onto it — a rename replaces an empty directory
// and fails on anything else — and dest's parent is synced so the rename is
// durable. renamed reports whether the rename happened: once it has, dest is
// complete even if err (the parent's sync) is not nil.
func place(fsys fsys, src, dest string) (renamed bool, err error) {
	if _, err := destAvailable(fsys, dest); err != nil {
		return false, err
	}
	if err := fsys.Rename(src, dest); err != nil {
		// Something may have appeared at dest since the check.
		if _, derr := destAvailable(fsys, dest); derr != nil {
			return false, fmt.Errorf("%w (rename: %w)", derr, err)
		}
		return false, fmt.Errorf("artifact: move %s to %s: %w", src, dest, err)
	}
	parent := filepath.Dir(filepath.Clean(dest))
	if err := fsys.SyncDir(parent); err != nil {
		return true, fmt.Errorf("artifact: sync %s after moving %s into place: %w", parent, dest, err)
	}
	return true, nil
}

// payloadEntry is one entry of a payload walk.
type payloadEntry struct {
	rel   string // relative to the payload's root directory, '/'-separated
	path  string // on disk
	isDir bool
}

// walkPayload lists the regular files and directories under root (root
// excluded) in component-wise path order. A symlink, device, socket or any
// other non-regular entry, and a name that is not UTF-8, is refused with an
// error wrapping [slipstream.ErrArtifactInvalid]. A missing root is an error
// wrapping fs.ErrNotExist.
func walkPayload(fsys fsys, root string) ([]payloadEntry, error) {
	fi, err := fsys.Lstat(root)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, invalidf("payload contains a non-regular file: %s is not a directory", root)
	}
	var out []payloadEntry
	var walk func(dir, rel string) error
	walk = func(dir, rel string) error {
		des, err := fsys.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("artifact: read %s: %w", dir, err)
		}
		for _, de := range des { // sorted by name: component-wise order
			name := de.Name()
			if !utf8.ValidString(name) {
				return invalidf("payload contains a file name that is not UTF-8: %q", filepath.Join(dir, name))
			}
			p, r := filepath.Join(dir, name), name
			if rel != "" {
				r = rel + "/" + name
			}
			switch {
			case de.IsDir():
				out = append(out, payloadEntry{rel: r, path: p, isDir: true})
				if err := walk(p, r); err != nil {
					return err
				}
			case de.Type().IsRegular():
				out = append(out, payloadEntry{rel: r, path: p})
			default:
				return invalidf("payload contains a non-regular file: %s (%s)", p, de.Type())
			}
		}
		return nil
	}
	if err := walk(root, ""); err != nil {
		return nil, err
	}
	return out, nil
}

// hashFile streams the file at path through BLAKE3 with a 1 MiB buffer and
// returns its size and lowercase hex digest, refusing anything but a
// regular file. With sync it also fsyncs the file.
func hashFile(fsys fsys, path string, buf []byte, sync bool) (size uint64, digest string, err error) {
	f, err := fsys.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	if err := checkRegular(f, path); err != nil {
		return 0, "", err
	}
	h := blake3.New(32, nil)
	n, err := io.CopyBuffer(h, onlyReader{f}, buf)
	if err != nil {
		return 0, "", fmt.Errorf("artifact: read %s: %w", path, err)
	}
	if sync {
		if err := fsys.Sync(f); err != nil {
			return 0, "", fmt.Errorf("artifact: sync %s: %w", path, err)
		}
	}
	return uint64(n), hex.EncodeToString(h.Sum(nil)), nil
}

// copyFile copies src to a new file dst while hashing it, in one pass with
// buf, fsyncs the copy, and returns the size and lowercase hex digest.
func copyFile(fsys fsys, src, dst string, buf []byte) (size uint64, digest string, err error) {
	in, err := fsys.Open(src)
	if err != nil {
		return 0, "", err
	}
	defer in.Close()
	if err := checkRegular(in, src); err != nil {
		return 0, "", err
	}
	out, err := fsys.Create(dst, 0o644)
	if err != nil {
		return 0, "", fmt.Errorf("artifact: create %s: %w", dst, err)
	}
	defer out.Close()
	h := blake3.New(32, nil)
	n, err := io.CopyBuffer(io.MultiWriter(out, h), onlyReader{in}, buf)
	if err != nil {
		return 0, "", fmt.Errorf("artifact: copy %s to %s: %w", src, dst, err)
	}
	if err := fsys.Sync(out); err != nil {
		return 0, "", fmt.Errorf("artifact: sync %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return 0, "", fmt.Errorf("artifact: close %s: %w", dst, err)
	}
	return uint64(n), hex.EncodeToString(h.Sum(nil)), nil
}

// onlyReader hides an *os.File's WriterTo/ReaderFrom, so io.CopyBuffer uses
// the caller's buffer (and its 1 MiB bound) instead of a path of its own.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func checkRegular(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("artifact: stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return invalidf("payload contains a non-regular file: %s (%s)", path, fi.Mode().Type())
	}
	return nil
}

// seal turns a stage whose data/ the backend has written into a complete
// artifact (docs/ARTIFACTS.md, "Export", step 4): every payload entry must be a regular
// file or a directory; each file is hashed (1 MiB buffer), measured and
// fsynced; every directory under data/ is fsynced; then the manifest is
// written as a temp file, fsynced, renamed to MANIFEST.json, and the stage
// root is fsynced. The manifest lists the files in component-wise path
// order.
func seal(fsys fsys, stage string, exp slipstream.Export, now time.Time) (*Manifest, error) {
	data := filepath.Join(stage, DataDir)
	ents, err := walkPayload(fsys, data)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, invalidf("export wrote no %s directory", DataDir)
		}
		return nil, err
	}
	if err := checkExportFiles(ents, exp.Files); err != nil {
		return nil, err
	}
	created := uint64(0)
	if s := now.Unix(); s > 0 {
		created = uint64(s)
	}
	m := &Manifest{
		SchemaVersion:  SchemaVersion,
		Backend:        exp.Backend,
		BackendVersion: exp.BackendVersion,
		Cursor:         exp.Cursor,
		CreatedAtUnix:  created,
		Files:          []File{},
	}
	buf := make([]byte, hashBufSize)
	dirs := []string{data}
	for _, e := range ents {
		if e.isDir {
			dirs = append(dirs, e.path)
			continue
		}
		size, digest, err := hashFile(fsys, e.path, buf, true)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, File{Path: DataDir + "/" + e.rel, Size: size, BLAKE3: digest})
	}
	for _, d := range dirs {
		if err := fsys.SyncDir(d); err != nil {
			return nil, fmt.Errorf("artifact: sync %s: %w", d, err)
		}
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if err := writeManifest(fsys, stage, b); err != nil {
		return nil, err
	}
	return m, nil
}

// checkExportFiles compares the files the backend reported with what it
// left in the stage: a difference means the export cannot be trusted.
func checkExportFiles(ents []payloadEntry, reported []string) error {
	var found []string
	for _, e := range ents {
		if !e.isDir {
			found = append(found, e.rel)
		}
	}
	want := slices.Clone(reported)
	slices.Sort(want)
	slices.Sort(found)
	if !slices.Equal(found, want) {
		return invalidf("exported payload disagrees with the export's file list: wrote %q, reported %q", found, want)
	}
	return nil
}

// writeManifest writes b as stage/MANIFEST.json: temp file, fsync, rename,
// fsync of the stage root. The manifest is the last file of an artifact.
func writeManifest(fsys fsys, stage string, b []byte) error {
	tmp := filepath.Join(stage, manifestTemp)
	f, err := fsys.Create(tmp, 0o644)
	if err != nil {
		return fmt.Errorf("artifact: create %s: %w", tmp, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = fsys.Sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("artifact: write %s: %w", tmp, err)
	}
	if err := fsys.Rename(tmp, filepath.Join(stage, ManifestName)); err != nil {
		return fmt.Errorf("artifact: rename %s: %w", tmp, err)
	}
	if err := fsys.SyncDir(stage); err != nil {
		return fmt.Errorf("artifact: sync %s: %w", stage, err)
	}
	return nil
}

// relPaths returns the manifest's paths relative to the data directory.
func relPaths(m *Manifest) []string {
	out := make([]string, len(m.Files))
	for i, f := range m.Files {
		out[i] = strings.TrimPrefix(f.Path, DataDir+"/")
	}
	return out
}
