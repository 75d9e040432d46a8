package applog

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/movedir"
)

// Backend and BackendVersion identify append-log exports: the log format
// of docs/FORMAT.md, version 2.
const (
	Backend        = "append-log"
	BackendVersion = "2"
)

// scanChunk is how many keys ForEachInRange resolves per read-lock hold.
const scanChunk = 256

// Options tunes a [Store]. The zero value is ready to use.
type Options struct {
	// CompactThreshold is the number of garbage bytes in the log (records
	// of overwritten and deleted keys, superseded cursors) beyond which Apply
	// compacts it. 0 means [DefaultCompactThreshold]; math.MaxUint64
	// disables compaction, in Apply and in Open. Apply
	// compacts only once the garbage also exceeds the live records, so a
	// large fold is rewritten after at least as many bytes as it holds
	// (one rewritten byte per garbage byte, amortised; the log stays under
	// about twice the live records plus the threshold), and a hydration,
	// which appends no garbage, never triggers a rewrite.
	CompactThreshold uint64
	// Sync fsyncs the log after every Apply. By default Apply hands its
	// records to the operating system with one write(2): they survive a
	// process crash but not a power loss, which may drop a tail of applies
	// (what survives carries its own cursor).
	Sync bool
	// Logger receives compaction and repair events; nil means slog.Default().
	Logger *slog.Logger
}

// Store is an append-log fold: a directory holding the log [FileName] and the
// lock file [LockName]. The keys, their versions and the place of each value
// in the log are held in RAM (a keydir); values are read back from the log,
// through the page cache. The log is replayed at open.
//
// # Concurrency
//
// Apply, ExportTo and Close are serialised by an internal lock (one writer).
// Get, ForEachInRange, Cursor, Len and Size may run concurrently with them
// and with each other. A Get observes each Apply entirely or not at all. The
// cursor moves after the batch's data is visible, so a reader may see data
// ahead of Cursor, never the reverse. ForEachInRange is not a point-in-time
// snapshot: it holds the read lock only while it resolves a chunk of keys, so
// an Apply can run between chunks; every entry it yields was live, with that
// value, at some instant during the scan; keys inserted or deleted during the
// scan may or may not be seen. Each key is yielded at most once, in order.
type Store struct {
	dir, path string
	threshold uint64
	sync      bool
	log       *slog.Logger
	fs        fsys
	lock      *os.File // nil when read-only
	readOnly  bool

	wmu     sync.Mutex // the single writer: Apply, ExportTo, Close
	w       *Writer    // nil when read-only
	size    atomic.Int64
	fps     []uint32 // writer scratch: the batch's key fingerprints
	offs    []int64  // writer scratch: where the batch's values are in the log
	touched uint64   // keeps prefetch loads alive

	mu     sync.RWMutex // guards the fields below for readers
	t      *table
	lf     *logReader // the log the table's offsets point into
	cursor slipstream.Cursor
	closed bool
}

var _ slipstream.Store = (*Store)(nil)

// Open opens the fold in dir, creating dir and an empty log if missing. It
// takes an exclusive lock on dir/LOCK for the life of the store, removes
// temp files of an interrupted compaction, then replays the log. Unlike
// [Load] it rewrites the log only when Apply would (its garbage exceeds
// Options.CompactThreshold and the live records): the cursor records of
// past applies and a few overwrites do not make a restart rewrite the fold.
// A torn tail is cut off in place (truncate and fsync).
//
// Errors: one wrapping [slipstream.ErrLocked] and naming the lock file when
// another Open (in this or another process) holds the fold; a *[FormatError]
// wrapping [slipstream.ErrInvalidFormat] or [slipstream.ErrCorrupt] naming
// the log when it cannot be loaded (the file is left as it was: delete the
// fold and replay); one wrapping [slipstream.ErrInvalidFormat] when dir is
// not a directory or is a non-empty directory without a log (it is left as
// it was).
func Open(dir string, opts *Options) (*Store, error) {
	return openFold(dir, opts, osFS{}, defaultSizes)
}

// openFold is Open on filesystem fs with load sizes sz.
func openFold(dir string, opts *Options, fs fsys, sz loadSizes) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.CompactThreshold == 0 {
		o.CompactThreshold = DefaultCompactThreshold
	}
	s := newStore(dir, &o)
	s.fs = fs
	if err := checkFoldDir(dir, true); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("applog: create fold directory: %w", err)
	}
	lock, err := lockFile(filepath.Join(dir, LockName))
	if err != nil {
		return nil, err
	}
	if err := s.open(sz); err != nil {
		_ = lock.Close()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

func newStore(dir string, o *Options) *Store {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Store{
		dir:       dir,
		path:      filepath.Join(dir, FileName),
		threshold: o.CompactThreshold,
		sync:      o.Sync,
		log:       log.With(slipstream.LogKeyComponent, "applog", slipstream.LogKeyDir, dir),
		fs:        osFS{},
		t:         newTable(),
	}
}

// open loads the log, opens the writer and repairs the log, writing as
// little as it can: a torn tail is cut off (a truncate and an fsync, not a
// rewrite), and the log is rewritten compactly only when its garbage is due
// under the policy Apply uses (compactDue). Overwritten keys and the cursor
// record of every past Apply are garbage, but below the policy's bounds they
// stay: a restart costs a replay of the log, not a rewrite of the fold. The
// lock is held.
func (s *Store) open(sz loadSizes) error {
	removed, err := removeTemps(s.dir)
	if err != nil {
		return fmt.Errorf("applog: remove stale compaction files in %s: %w", s.dir, err)
	}
	for _, p := range removed {
		s.log.Info("removed temp file of an interrupted compaction", "path", p)
	}
	f, err := os.Open(s.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("applog: read %s: %w", s.path, err)
	}
	var st loadState
	if f != nil {
		if st, err = loadFrom(f, s.path, s.t, sz); err != nil {
			_ = f.Close()
			return err
		}
	}
	w, err := openWriter(s.fs, s.path, s.threshold)
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		return err
	}
	s.w = w
	if f == nil {
		// The writer created the log: read it through a handle of our own.
		if f, err = os.Open(s.path); err != nil {
			_ = w.Close()
			return fmt.Errorf("applog: read %s: %w", s.path, err)
		}
	}
	s.lf = newLogReader(f, s.path)
	if !st.res.cleanEOF && st.fileLen > headerLen {
		if err := w.truncate(int64(st.res.end)); err != nil {
			s.closeFiles()
			return err
		}
		s.log.Info("log repaired on load: torn tail dropped", "path", s.path,
			"dropped_bytes", st.fileLen-st.res.end, "bytes_after", st.res.end)
	}
	// The writer's own counter is not the policy: Apply decides from the
	// garbage (compactDue).
	w.since = 0
	if s.t.overdue() {
		// Keys a load inserted out of order (an uncompacted log) are
		// sorted now rather than in the first Apply; a sorted run waits
		// for the first scan (see table.unindexed).
		s.t.refresh()
	}
	s.cursor = st.res.cursor
	if before := w.Size(); s.compactDue(before) {
		if err := s.compact(s.cursor); err != nil {
			s.closeFiles()
			return err
		}
		s.log.Info("log compacted on load", "path", s.path, "bytes_before", before, "bytes_after", w.Size())
	}
	s.size.Store(w.Size())
	return nil
}

// OpenReadOnly opens the fold in dir for reading, for offline queries on a
// fold that a running process may hold. It takes no lock and never writes:
// a torn tail is ignored in memory rather than repaired, and Apply and
// ExportTo return [ErrReadOnly]. The state is the log as of the open; a
// concurrent compaction by the holder is harmless (it renames a new file
// into place). A missing log is an error wrapping fs.ErrNotExist; load
// errors are as for [Open].
func OpenReadOnly(dir string) (*Store, error) {
	return openReadOnly(dir, defaultSizes)
}

func openReadOnly(dir string, sz loadSizes) (*Store, error) {
	if err := checkFoldDir(dir, false); err != nil {
		return nil, err
	}
	s := newStore(dir, &Options{})
	s.readOnly = true
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("applog: open %s: %w", s.path, err)
	}
	st, err := loadFrom(f, s.path, s.t, sz)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	// The store reads this file (this inode) for its life, whatever the
	// holder renames into place later.
	s.lf = newLogReader(f, s.path)
	s.size.Store(int64(st.fileLen))
	if s.t.overdue() {
		s.t.refresh()
	}
	s.cursor = st.res.cursor
	return s, nil
}

// checkFoldDir refuses a path that is not a directory, and a non-empty
// directory without a log (anything but the lock file and compaction temp
// files), so a mistyped path never has a fold written into it. A missing
// directory is fine when create is set.
func checkFoldDir(dir string, create bool) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) && create {
		return nil
	}
	if err != nil {
		return fmt.Errorf("applog: open fold %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("applog: open fold %s: %w: not a directory", dir, slipstream.ErrInvalidFormat)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("applog: open fold %s: %w", dir, err)
	}
	for _, de := range des {
		if de.Name() == FileName {
			return nil
		}
	}
	for _, de := range des {
		if n := de.Name(); n != LockName && !isTempName(n) {
			return fmt.Errorf("applog: open fold %s: %w: directory is not empty and holds no %s (found %q)",
				dir, slipstream.ErrInvalidFormat, FileName, n)
		}
	}
	return nil
}

// Apply appends the batch's records and a CURSOR record for cursor, hands
// them to the operating system in one write (and fsyncs with Options.Sync),
// then folds the batch into memory and compacts the log if due. The data and
// its cursor reach the file before the cursor moves in memory.
//
// Apply first checks the whole batch and refuses it, with an error wrapping
// [slipstream.ErrInvalidFormat] and no effect, if an update has an unknown
// op, a key over [MaxKeyLen] bytes or not UTF-8, or a value over
// [MaxValueLen] bytes. A write, fsync or compaction failure returns an error
// and leaves Cursor unchanged (the in-memory state may be ahead of it, which
// a retry of the batch makes good); a write or fsync failure poisons the
// store (see [ErrPoisoned]). It returns [slipstream.ErrClosed] after Close
// and [ErrReadOnly] on a read-only store. Apply does not retain batch.
func (s *Store) Apply(batch []slipstream.Update, cursor slipstream.Cursor) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.writable("apply to"); err != nil {
		return err
	}
	for i := range batch {
		if err := checkUpdate(batch[i]); err != nil {
			return fmt.Errorf("applog: apply to %s: %w", s.path, err)
		}
	}
	w := s.w
	if err := w.usable(); err != nil {
		return err
	}
	// The writer lock excludes the only mutator of the hash index, so it
	// may be read here without the read-write lock. Hash the batch and pull
	// its slots into cache while the records are encoded and written.
	s.fps = slices.Grow(s.fps[:0], len(batch))[:len(batch)]
	s.touched += s.t.h.prefetch(s.fps, len(batch), func(i int) string { return batch[i].Key })
	s.offs = slices.Grow(s.offs[:0], len(batch))[:len(batch)]
	for i := range batch {
		s.offs[i] = w.appendUpdate(batch[i])
		if len(w.buf) >= writeBufSize {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	_, err := w.Checkpoint(cursor)
	if err == nil && s.sync {
		err = w.Sync()
	}
	s.size.Store(w.Size())
	if err != nil {
		return err
	}

	s.mu.Lock()
	for i := range batch {
		s.t.applyFP(&batch[i], s.fps[i], s.offs[i])
	}
	if s.t.overdue() {
		s.t.refresh()
	}
	s.mu.Unlock()

	if s.compactDue(w.Size()) {
		if err := s.compact(cursor); err != nil {
			return err
		}
	}

	s.mu.Lock()
	s.cursor = cursor
	s.mu.Unlock()
	return nil
}

// compactDue reports whether a log of size bytes holds enough garbage to
// rewrite: more than the threshold, and more than the live records (so a
// rewrite writes at most one byte per garbage byte appended since the last
// one: amortised O(1), and the log stays under about twice the live size).
// A log that only grows — a hydration — holds almost no garbage and is
// never rewritten. The writer lock is held.
func (s *Store) compactDue(size int64) bool {
	const cursorRecord = 4 + 1 + 1 + slipstream.MaxVersionLen
	garbage := size - headerLen - s.t.live - cursorRecord
	return garbage > 0 && uint64(garbage) > s.threshold && garbage > s.t.live
}

// compact rewrites the log compactly, from the keydir and the values in
// the log, then moves the reads to the new file: every entry's offset, and
// the read handle, at once under the write lock. The writer lock is held.
func (s *Store) compact(c slipstream.Cursor) error {
	before := s.w.Size()
	var offs []int64
	moved, err := s.w.rewrite(c, s.emitter(&offs))
	if moved {
		if merr := s.moveReads(offs); merr != nil {
			err = errors.Join(err, merr)
		}
	}
	s.size.Store(s.w.Size())
	if err != nil {
		return err
	}
	s.log.Debug("log compacted", "bytes_before", before, "bytes_after", s.w.Size())
	return nil
}

// moveReads points the keydir at the log the writer just moved to: offs
// holds each entry's value offset there, by entry index. If the new file
// cannot be opened for reading, the writer is poisoned (no append may land
// in a file the keydir does not read) and reads stay on the old file, which
// still holds every value they point to.
func (s *Store) moveReads(offs []int64) error {
	f, err := os.Open(s.path)
	if err != nil {
		s.w.poison(fmt.Errorf("open the compacted log for reading: %w", err))
		return s.w.usable()
	}
	s.mu.Lock()
	h := &s.t.h
	for i, off := range offs {
		if off >= 0 {
			h.at(uint32(i)).off = off
		}
	}
	old := s.lf
	s.lf = newLogReader(f, s.path)
	s.mu.Unlock()
	old.release()
	return nil
}

// emitter returns a function writing the live entries in key order, their
// values read from the log. With offs set, it records there each entry's
// value offset in the written file, by entry index (-1 for free entries).
// The caller holds the writer lock, so the table and the read handle do not
// change underneath; the index view is captured under the read-write lock
// because scans refresh it. A failed read fails the write (the file is not
// used).
func (s *Store) emitter(offs *[]int64) func(*recordWriter) {
	s.mu.Lock()
	s.t.refresh()
	base, delta := s.t.idx.base, s.t.idx.delta
	lf := s.lf
	s.mu.Unlock()
	return func(rw *recordWriter) {
		h := &s.t.h
		var at []int64
		if offs != nil {
			at = make([]int64, h.used)
			for i := range at {
				at[i] = -1
			}
			*offs = at
		}
		it := newKeyIter(base, delta, "")
		const chunk = 256
		var (
			keys  [chunk]string
			fps   [chunk]uint32
			idxs  [chunk]uint32
			vals  [chunk][]byte
			locs  = make([]valueLoc, 0, chunk)
			buf   []byte
			order []int
			err   error
		)
		for {
			n := 0
			for ; n < chunk; n++ {
				k, ok := it.next()
				if !ok {
					break
				}
				keys[n] = k
			}
			if n == 0 {
				return
			}
			s.touched += h.prefetch(fps[:], n, func(i int) string { return keys[i] })
			locs = locs[:0]
			for i, k := range keys[:n] {
				if j, ok := h.indexOf(k, fps[i]); ok {
					e := h.at(j)
					idxs[len(locs)] = j
					locs = append(locs, valueLoc{key: k, off: e.off, vlen: e.vlen, ver: e.ver})
				}
			}
			if buf, order, err = lf.readValues(locs, vals[:], buf, order); err != nil {
				rw.fail(err)
				return
			}
			for i := range locs {
				off := rw.put(locs[i].key, vals[i], locs[i].ver)
				if at != nil {
					at[idxs[i]] = off
				}
			}
		}
	}
}

// closeFiles closes the writer and the read handle of a store whose open
// failed.
func (s *Store) closeFiles() {
	_ = s.w.Close()
	if s.lf != nil {
		s.lf.release()
		s.lf = nil
	}
}

func (s *Store) writable(op string) error {
	if s.closed {
		return fmt.Errorf("applog: %s %s: %w", op, s.path, slipstream.ErrClosed)
	}
	if s.readOnly {
		return fmt.Errorf("applog: %s %s: %w", op, s.path, ErrReadOnly)
	}
	return nil
}

// Get returns the live entry for key; false when absent. The entry's Value
// is read from the log into a buffer the caller owns (one pread, usually
// served by the page cache; its record's checksum is checked: a mismatch is
// a *[FormatError] wrapping [slipstream.ErrCorrupt]). It returns
// [slipstream.ErrClosed] after Close.
func (s *Store) Get(key string) (slipstream.Entry, bool, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return slipstream.Entry{}, false, fmt.Errorf("applog: get from %s: %w", s.path, slipstream.ErrClosed)
	}
	e := s.t.get(key)
	if e == nil {
		s.mu.RUnlock()
		return slipstream.Entry{}, false, nil
	}
	loc := valueLoc{key: key, off: e.off, vlen: e.vlen, ver: e.ver}
	lf := s.lf.acquire()
	s.mu.RUnlock()
	defer lf.release()
	v, err := lf.readOne(loc)
	if err != nil {
		return slipstream.Entry{}, false, fmt.Errorf("applog: get %q: %w", key, err)
	}
	return slipstream.Entry{Key: key, Value: v, Version: loc.ver}, true, nil
}

// ForEachInRange calls fn for every live entry whose key starts with prefix,
// in ascending byte order of key, reading an ordered in-memory index (no
// sort of the whole fold per call) and the values from the log, a chunk of
// keys at a time, neighbouring records in one pread. An error from fn stops
// the scan and is returned as is; a record whose checksum does not match is
// a *[FormatError] wrapping [slipstream.ErrCorrupt]. The entry's Value is a
// copy, never the fold's: fn may write into it, but it is valid only during
// the call (its memory is reused); copy it to keep it. fn may call Get,
// Cursor and other reads, but must not call Apply, ExportTo or Close. See
// [Store] for what a scan running beside Apply observes. It returns
// [slipstream.ErrClosed] after Close, including when Close happens during
// the scan.
func (s *Store) ForEachInRange(prefix string, fn func(slipstream.Entry) error) error {
	base, delta, err := s.view()
	if err != nil {
		return err
	}
	it := newKeyIter(base, delta, prefix)
	keys := make([]string, 0, scanChunk)
	locs := make([]valueLoc, 0, scanChunk)
	vals := make([][]byte, scanChunk)
	var (
		buf   []byte // the chunk's records; reused by the next chunk
		order []int
	)
	for {
		keys = keys[:0]
		for len(keys) < scanChunk {
			k, ok := it.next()
			if !ok {
				break
			}
			keys = append(keys, k)
		}
		if len(keys) == 0 {
			return nil
		}
		locs = locs[:0]
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return fmt.Errorf("applog: scan %s: %w", s.path, slipstream.ErrClosed)
		}
		for _, k := range keys {
			if e := s.t.get(k); e != nil {
				locs = append(locs, valueLoc{key: k, off: e.off, vlen: e.vlen, ver: e.ver})
			}
		}
		lf := s.lf.acquire()
		s.mu.RUnlock()
		// The log is append-only and lf keeps the file the offsets point
		// into, so the values are read outside the lock.
		buf, order, err = lf.readValues(locs, vals, buf, order)
		lf.release()
		if err != nil {
			return fmt.Errorf("applog: scan %s: %w", s.path, err)
		}
		for i := range locs {
			if err := fn(slipstream.Entry{Key: locs[i].key, Value: vals[i], Version: locs[i].ver}); err != nil {
				return err
			}
		}
	}
}

// view returns the published index slices, refreshing them first if
// needed.
func (s *Store) view() (base, delta []string, err error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, nil, fmt.Errorf("applog: scan %s: %w", s.path, slipstream.ErrClosed)
	}
	if !s.t.needsRefresh() {
		base, delta = s.t.idx.base, s.t.idx.delta
		s.mu.RUnlock()
		return base, delta, nil
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, fmt.Errorf("applog: scan %s: %w", s.path, slipstream.ErrClosed)
	}
	s.t.refresh()
	return s.t.idx.base, s.t.idx.delta, nil
}

// Cursor returns the cursor of the last successful Apply, or the one loaded
// at open (none for a fresh fold). It keeps answering after Close.
func (s *Store) Cursor() slipstream.Cursor {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cursor
}

// Len returns the number of live keys; an error wrapping
// [slipstream.ErrClosed] after Close.
func (s *Store) Len() (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, fmt.Errorf("applog: len of %s: %w", s.path, slipstream.ErrClosed)
	}
	return s.t.size(), nil
}

// count returns the number of live keys (0 after Close).
func (s *Store) count() int {
	n, _ := s.Len()
	return n
}

// Size returns the length of the log file in bytes, as last written by this
// store (as loaded, for a read-only store).
func (s *Store) Size() (int64, error) {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return 0, fmt.Errorf("applog: size of %s: %w", s.path, slipstream.ErrClosed)
	}
	return s.size.Load(), nil
}

// ExportTo writes a compact, fsynced copy of the fold to dir/[FileName] from
// memory (the live log is not read), then verifies it by replaying it: its
// cursor and entry count must match the live fold's. dir must be absent or
// an empty directory; otherwise the error wraps
// [slipstream.ErrArtifactInvalid] and nothing in dir is touched.
//
// The copy is written in a hidden directory beside dir (prefix
// [ExportStagePrefix]), which is renamed onto dir once verified (a rename
// replaces an empty directory and fails on anything else, so a destination
// that fills up meanwhile is refused, never overwritten), and dir's parent
// is fsynced. On any failure the hidden directory is removed: ExportTo never
// removes a file it did not create. [Open] on dir yields the same state and
// cursor. Concurrent reads proceed during the export.
func (s *Store) ExportTo(dir string) (slipstream.Export, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.writable("export"); err != nil {
		return slipstream.Export{}, err
	}
	if err := checkDest(dir); err != nil {
		return slipstream.Export{}, err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return slipstream.Export{}, fmt.Errorf("applog: export: create %s: %w", parent, err)
	}
	stage, err := os.MkdirTemp(parent, ExportStagePrefix+"*")
	if err != nil {
		return slipstream.Export{}, fmt.Errorf("applog: export: create stage in %s: %w", parent, err)
	}
	placed := false
	defer func() {
		if !placed {
			_ = os.RemoveAll(stage)
		}
	}()
	path := filepath.Join(stage, FileName)
	cursor := s.Cursor()
	live := s.count()
	if _, _, err := compactToFile(s.fs, path, cursor, s.emitter(nil)); err != nil {
		return slipstream.Export{}, fmt.Errorf("applog: export to %s: %w", dir, err)
	}
	if err := verifyExport(path, cursor, live); err != nil {
		return slipstream.Export{}, err
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return slipstream.Export{}, fmt.Errorf("applog: export: %w", err)
	}
	if err := movedir.Onto(stage, dir); err != nil {
		if derr := checkDest(dir); derr != nil {
			return slipstream.Export{}, fmt.Errorf("%w (rename: %w)", derr, err)
		}
		return slipstream.Export{}, fmt.Errorf("applog: export: move %s to %s: %w", stage, dir, err)
	}
	placed = true
	if err := s.fs.SyncDir(parent); err != nil {
		return slipstream.Export{}, fmt.Errorf("applog: export: sync %s after moving %s into place: %w", parent, dir, err)
	}
	return slipstream.Export{Backend: Backend, BackendVersion: BackendVersion, Cursor: cursor, Files: []string{FileName}}, nil
}

// ExportStagePrefix begins the name of the hidden directory beside an
// export's destination in which [Store.ExportTo] writes its copy.
const ExportStagePrefix = ".applog-export-"

// checkDest accepts an absent destination or an empty directory.
func checkDest(dir string) error {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("applog: export: stat %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: destination %s already exists", slipstream.ErrArtifactInvalid, dir)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("applog: export: read %s: %w", dir, err)
	}
	if len(des) > 0 {
		return fmt.Errorf("%w: destination %s exists and is not empty", slipstream.ErrArtifactInvalid, dir)
	}
	return nil
}

// countSink counts the PUTs of a compact log and checks their keys ascend.
type countSink struct {
	n       int
	last    []byte
	ordered bool
}

func (c *countSink) put(key, _ []byte, _ slipstream.Version, _ int) bool {
	if c.n > 0 && string(key) <= string(c.last) {
		c.ordered = false
	}
	c.n++
	c.last = append(c.last[:0], key...)
	return false
}

func (c *countSink) del([]byte) { c.ordered = false }

// size and emit make a countSink a fold for loadInto, which never calls
// emit without rewrite.
func (c *countSink) size() int          { return c.n }
func (c *countSink) emit(*recordWriter) {}

// verifyExport replays an exported log, streaming it through a fixed window
// (memory does not grow with the fold), and compares it with the live fold.
func verifyExport(path string, cursor slipstream.Cursor, live int) error {
	c := &countSink{ordered: true}
	st, err := loadInto(osFS{}, path, c, false, defaultSizes)
	if err != nil {
		return fmt.Errorf("%w: exported payload %s does not load: %w", slipstream.ErrArtifactInvalid, path, err)
	}
	res := st.res
	if !st.exists || res.cursor != cursor || c.n != live || !c.ordered || !res.compact {
		return fmt.Errorf("%w: exported payload disagrees with live fold: %s holds %d entries at cursor %s, live fold %d at cursor %s",
			slipstream.ErrArtifactInvalid, path, c.n, res.cursor, live, cursor)
	}
	return nil
}

// Close flushes and closes the log and releases the lock. Further calls,
// and reads, return [slipstream.ErrClosed]; Cursor keeps answering.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("applog: close %s: %w", s.path, slipstream.ErrClosed)
	}
	s.closed = true
	s.t = nil
	lf := s.lf
	s.lf = nil
	s.mu.Unlock()
	if lf != nil {
		lf.release() // reads in flight keep it open until they finish
	}
	var err error
	if s.w != nil {
		err = s.w.Close()
	}
	if s.lock != nil {
		if cerr := s.lock.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("applog: unlock %s: %w", s.dir, cerr)
		}
	}
	return err
}
