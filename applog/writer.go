package applog

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/slipstream-kv/slipstream"
)

// writeBufSize is the size at which WriteUpdate flushes its buffer early.
const writeBufSize = 1 << 20

// Writer appends records to a log file (docs/FORMAT.md): the raw append
// API, for callers that keep their own state. [Store] is built on it.
//
// Records are buffered in memory. Checkpoint and Flush hand them to the
// operating system with one write(2) and no fsync: they survive a process
// crash, not a power loss. Sync adds the fsync.
//
// A write or fsync failure, or a failure to reopen the log after a
// compaction's rename, poisons the writer: every later write returns an error
// wrapping [ErrPoisoned], so nothing is ever appended behind a torn record or
// into a renamed-away file. After a failed write the writer first truncates
// the file back to its last record boundary.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	fs        fsys
	path      string
	f         *os.File // nil once closed
	buf       []byte
	size      int64  // bytes handed to the OS
	since     uint64 // bytes appended since the last compaction
	threshold uint64
	err       error // poison cause, wraps ErrPoisoned
	closed    bool
	closing   sync.WaitGroup // closes of logs replaced by compaction
}

// OpenWriter opens the log at path for appending, creating it with a header
// if it is missing. threshold is the number of appended bytes after which
// Checkpoint reports a compaction due (strictly greater; math.MaxUint64
// never).
//
// An existing file of at least the header's length is taken as a log without
// re-validating it (call [Load] first), and its bytes past the header count
// as appended since the last compaction. A shorter file that is a prefix of
// the header (torn at creation) is reset to a full header; any other short
// file fails with a *[FormatError] wrapping [slipstream.ErrInvalidFormat] and
// is left as it was.
func OpenWriter(path string, threshold uint64) (*Writer, error) {
	return openWriter(osFS{}, path, threshold)
}

func openWriter(fs fsys, path string, threshold uint64) (*Writer, error) {
	w := &Writer{fs: fs, path: path, threshold: threshold}
	f, size, err := w.open()
	if err != nil {
		return nil, err
	}
	w.f, w.size = f, size
	w.since = uint64(size - headerLen)
	return w, nil
}

// open opens the log and returns it with its size, writing the header when
// the file is empty or a torn header.
func (w *Writer) open() (*os.File, int64, error) {
	f, err := w.fs.OpenAppend(w.path)
	if err != nil {
		return nil, 0, fmt.Errorf("applog: open %s: %w", w.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("applog: stat %s: %w", w.path, err)
	}
	size := fi.Size()
	if size >= headerLen {
		return f, size, nil
	}
	prefix := make([]byte, size)
	if _, err := f.ReadAt(prefix, 0); err != nil && err != io.EOF {
		_ = f.Close()
		return nil, 0, fmt.Errorf("applog: read %s: %w", w.path, err)
	}
	if !isHeaderPrefix(prefix) {
		_ = f.Close()
		return nil, 0, withPath(invalidAt(0, "file too short (%d bytes) and not a prefix of the header", size), w.path)
	}
	if size > 0 {
		if err := f.Truncate(0); err != nil {
			_ = f.Close()
			return nil, 0, fmt.Errorf("applog: reset torn header of %s: %w", w.path, err)
		}
	}
	if _, err := f.Write(header[:]); err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("applog: write header of %s: %w", w.path, err)
	}
	return f, headerLen, nil
}

// Path returns the log file's path.
func (w *Writer) Path() string { return w.path }

// Size returns the bytes in the log, buffered ones included.
func (w *Writer) Size() int64 { return w.size + int64(len(w.buf)) }

// SinceCompact returns the bytes appended since the last compaction (since
// the header, for a log opened from disk).
func (w *Writer) SinceCompact() uint64 { return w.since }

func (w *Writer) usable() error {
	if w.closed {
		return fmt.Errorf("applog: write %s: %w", w.path, slipstream.ErrClosed)
	}
	if w.err != nil {
		return fmt.Errorf("applog: write %s: %w", w.path, w.err)
	}
	return nil
}

// WriteUpdate appends u's record (a PUT, or a DELETE for deletes and purges)
// to the buffer; it does I/O only when the buffer is large. It refuses, with
// an error wrapping [slipstream.ErrInvalidFormat] and without writing
// anything, a key longer than [MaxKeyLen] or not UTF-8, a value longer than
// [MaxValueLen], and an unknown op.
func (w *Writer) WriteUpdate(u slipstream.Update) error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := checkUpdate(u); err != nil {
		return err
	}
	w.appendUpdate(u)
	if len(w.buf) >= writeBufSize {
		return w.flush()
	}
	return nil
}

// appendUpdate appends a checked update's record to the buffer and
// returns the offset in the log at which a put's value will be.
func (w *Writer) appendUpdate(u slipstream.Update) int64 {
	before := len(w.buf)
	if u.Op == slipstream.OpPut {
		w.buf = appendPut(w.buf, u.Key, u.Value, u.Version)
	} else {
		w.buf = appendDelete(w.buf, u.Key, u.Version)
	}
	w.since += uint64(len(w.buf) - before)
	return w.size + int64(before) + putHeaderLen + int64(len(u.Key))
}

// Checkpoint appends a CURSOR record for c and flushes the buffer to the
// operating system (no fsync). It reports whether a compaction is due: more
// than the threshold's bytes appended since the last compaction.
func (w *Writer) Checkpoint(c slipstream.Cursor) (compactDue bool, err error) {
	if err := w.usable(); err != nil {
		return false, err
	}
	before := len(w.buf)
	w.buf = appendCursor(w.buf, c)
	w.since += uint64(len(w.buf) - before)
	if err := w.flush(); err != nil {
		return false, err
	}
	return w.since > w.threshold, nil
}

// Flush hands the buffered records to the operating system (no fsync, no
// cursor record).
func (w *Writer) Flush() error {
	if err := w.usable(); err != nil {
		return err
	}
	return w.flush()
}

// Sync flushes the buffer and fsyncs the log.
func (w *Writer) Sync() error {
	if err := w.Flush(); err != nil {
		return err
	}
	if err := w.fs.Sync(w.f); err != nil {
		w.poison(fmt.Errorf("sync: %w", err))
		return w.usable()
	}
	return nil
}

func (w *Writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.fs.Write(w.f, w.buf)
	if err != nil {
		cause := fmt.Errorf("write: %w", err)
		if n > 0 {
			// Cut the torn record so the file still ends on a record
			// boundary; whatever lands after it would be unreadable.
			if terr := w.f.Truncate(w.size); terr != nil {
				cause = fmt.Errorf("%w; truncating the torn write also failed: %w", cause, terr)
			}
		}
		w.poison(cause)
		return w.usable()
	}
	w.size += int64(n)
	w.buf = w.buf[:0]
	return nil
}

// Compact flushes the buffer (so records not yet checkpointed are part of
// the rewrite), replays the whole log and rewrites it compactly through a
// temp file in the same directory, fsync, rename and a directory fsync; then
// it reopens the new file for appending and resets the compaction counter.
//
// A replay error (a *[FormatError]) or a failure before the rename leaves the
// file and the writer as they were. Once the rename has happened the writer
// always moves to the new file, even if the directory fsync failed (that
// error is returned); if the reopen fails the writer is poisoned.
func (w *Writer) Compact() error {
	if err := w.Flush(); err != nil {
		return err
	}
	data, err := os.ReadFile(w.path)
	if err != nil {
		return fmt.Errorf("applog: read %s: %w", w.path, err)
	}
	snap := Snapshot{Entries: make(map[string]slipstream.Entry)}
	res, err := replay(data, snapshotSink(snap.Entries))
	if err != nil {
		return withPath(err, w.path)
	}
	_, err = w.rewrite(res.cursor, snap.emit)
	return err
}

// rewrite replaces the log with a compact one written by emit and cursor c,
// and moves the writer onto it. The buffer must be empty. moved reports
// that the writer appends to the new file, which holds what emit wrote: a
// caller that keeps offsets into the log moves them there, even when err is
// not nil (the directory sync failed). A writer that could not reopen the
// file, or found it of another size, is poisoned and not moved.
func (w *Writer) rewrite(c slipstream.Cursor, emit func(*recordWriter)) (moved bool, err error) {
	size, renamed, err := compactToFile(w.fs, w.path, c, emit)
	if !renamed {
		return false, fmt.Errorf("applog: compact %s: %w", w.path, err)
	}
	// The old handle points at the renamed-away inode: never write there.
	// Its last close frees the replaced file's page cache, which takes the
	// kernel a while for a large log; nothing needs to wait for it but
	// Close.
	old := w.f
	w.closing.Go(func() { _ = old.Close() })
	f, fsize, oerr := w.open()
	if oerr != nil {
		w.f = nil
		w.poison(fmt.Errorf("reopen after compaction: %w", oerr))
		if err != nil {
			return false, fmt.Errorf("applog: compact %s: %w; %w", w.path, err, w.usable())
		}
		return false, w.usable()
	}
	w.f, w.size, w.since = f, fsize, 0
	if size != fsize {
		w.poison(fmt.Errorf("compacted %s to %d bytes but reopened %d", w.path, size, fsize))
		return false, w.usable()
	}
	if err != nil {
		return true, fmt.Errorf("applog: compact %s: %w", w.path, err)
	}
	return true, nil
}

// truncate cuts the log back to its first end bytes (a torn tail) and
// fsyncs it, so that records appended next never follow the torn bytes on
// disk. The buffer must be empty.
func (w *Writer) truncate(end int64) error {
	if err := w.f.Truncate(end); err != nil {
		return fmt.Errorf("applog: cut the torn tail of %s at %d: %w", w.path, end, err)
	}
	if err := w.fs.Sync(w.f); err != nil {
		return fmt.Errorf("applog: sync %s after cutting its torn tail: %w", w.path, err)
	}
	w.size = end
	return nil
}

func (w *Writer) poison(cause error) {
	if w.err == nil {
		w.err = fmt.Errorf("%w: %w", ErrPoisoned, cause)
	}
}

// Close flushes the buffer (no fsync) and closes the file. A poisoned
// writer's buffer is dropped. Further calls return [slipstream.ErrClosed].
func (w *Writer) Close() error {
	if w.closed {
		return fmt.Errorf("applog: close %s: %w", w.path, slipstream.ErrClosed)
	}
	var err error
	if w.err == nil {
		err = w.flush()
	}
	w.closed = true
	w.closing.Wait()
	if w.f != nil {
		if cerr := w.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("applog: close %s: %w", w.path, cerr)
		}
		w.f = nil
	}
	return err
}
