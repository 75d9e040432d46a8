package applog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/slipstream-kv/slipstream"
)

// compactBufSize is the write buffer of a compaction.
const compactBufSize = 1 << 20

// recordWriter appends records into a buffer and writes it out in large
// chunks. Its first write error is sticky.
type recordWriter struct {
	w   io.Writer
	buf []byte
	n   int64 // bytes written or buffered
	err error
}

func newRecordWriter(w io.Writer) *recordWriter {
	rw := &recordWriter{w: w, buf: make([]byte, 0, compactBufSize+64<<10), n: headerLen}
	rw.buf = appendHeader(rw.buf)
	return rw
}

// put appends a PUT record and returns the offset of its value in the
// file.
func (rw *recordWriter) put(key string, value []byte, v slipstream.Version) int64 {
	off := rw.n + putHeaderLen + int64(len(key))
	before := len(rw.buf)
	rw.buf = appendPut(rw.buf, key, value, v)
	rw.n += int64(len(rw.buf) - before)
	if len(rw.buf) >= compactBufSize {
		rw.flush()
	}
	return off
}

// fail makes err the writer's error (its first error is kept): the file is
// not used.
func (rw *recordWriter) fail(err error) {
	if rw.err == nil {
		rw.err = err
	}
}

// cursor appends the closing CURSOR record, omitted for a none cursor.
func (rw *recordWriter) cursor(c slipstream.Cursor) {
	if c.IsNone() {
		return
	}
	before := len(rw.buf)
	rw.buf = appendCursor(rw.buf, c)
	rw.n += int64(len(rw.buf) - before)
}

func (rw *recordWriter) flush() {
	if rw.err == nil && len(rw.buf) > 0 {
		_, rw.err = rw.w.Write(rw.buf)
	}
	rw.buf = rw.buf[:0]
}

// compactToFile atomically replaces path with a compact log: the header, one
// PUT per live entry in ascending key order (emitted by emit, which must
// produce them sorted and unique), then a CURSOR record unless c is none.
// The bytes are a deterministic function of the logical state.
//
// It writes a temp file in path's own directory (same filesystem, so the
// rename is atomic), fsyncs it, renames it over path and fsyncs the
// directory, without which the rename is not durable. renamed reports whether
// the rename happened: once it has, path holds the new log even when err is
// non-nil (the directory sync failed), and a writer holding the old inode
// must reopen path. Before the rename, a failure removes the temp file and
// leaves path untouched. It returns the new file's size.
func compactToFile(fs fsys, path string, c slipstream.Cursor, emit func(*recordWriter)) (size int64, renamed bool, err error) {
	dir := filepath.Dir(path)
	f, err := fs.CreateTemp(dir, tempPattern)
	if err != nil {
		return 0, false, fmt.Errorf("create compaction temp file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if !renamed {
			_ = f.Close()
			_ = fs.Remove(tmp)
		}
	}()
	rw := newRecordWriter(f)
	emit(rw)
	rw.cursor(c)
	rw.flush()
	if rw.err != nil {
		return 0, false, fmt.Errorf("write %s: %w", tmp, rw.err)
	}
	if err := fs.Sync(f); err != nil {
		return 0, false, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return 0, false, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		return 0, false, fmt.Errorf("rename %s over %s: %w", tmp, path, err)
	}
	renamed = true
	if err := fs.SyncDir(dir); err != nil {
		return rw.n, true, fmt.Errorf("sync directory %s after renaming %s: %w", dir, path, err)
	}
	return rw.n, true, nil
}

// removeTemps deletes compaction temp files a crash left in dir.
func removeTemps(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, de := range des {
		if isTempName(de.Name()) {
			p := filepath.Join(dir, de.Name())
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, p)
		}
	}
	return removed, errors.Join(errs...)
}
