package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/fsync"
	"github.com/slipstream-kv/slipstream/internal/movedir"
)

// Backend identifies pebble exports. Their BackendVersion is the database's
// format major version, in decimal.
const Backend = "pebble"

const (
	// DefaultCacheSize is the block cache size when Options.CacheSize is 0
	// and the machine's memory is unknown, and the least a cache sized from
	// the machine gets.
	DefaultCacheSize = 64 << 20
	// Memtables are charged to the block cache: each is a quarter of the
	// cache, within these bounds, so blocks keep most of it.
	minMemTableSize = 4 << 20
	maxMemTableSize = 64 << 20
)

// Options tunes a [Store]. The zero value is ready to use.
type Options struct {
	// Sync fsyncs the write-ahead log on every Apply. By default
	// (pebble.NoSync) commits are not synced: pebble buffers WAL records in
	// the process and writes them asynchronously, so a process crash, not
	// only a power loss, can lose the most recent applies. Each apply is one
	// atomic batch with its cursor, so what survives is always consistent:
	// the fold reopens at an older cursor and the watch resumes from it.
	Sync bool
	// CacheSize is the block cache size in bytes; 0 sizes it from the
	// machine: an eighth of the memory the process may use (the smallest
	// of GOMEMLIMIT, the cgroup's limit and the physical memory, as far as
	// they are known), within 64 MiB and 1 GiB, or DefaultCacheSize when
	// none is known. Pebble charges its memtables to this budget: each
	// memtable is a quarter of it (4 to 64 MiB), and up to four may be in
	// memory while flushes catch up.
	CacheSize int64
	// CompactionConcurrency bounds the compactions pebble runs at once:
	// it runs one, and more, up to this bound, when level 0 or the
	// compaction debt grows (a bulk hydration). 0 means GOMAXPROCS (pebble's
	// own default is one).
	CompactionConcurrency int
	// MemTableSize is the size of each memtable in bytes; 0 derives it
	// from CacheSize (a quarter, within 4 and 64 MiB). Smaller memtables
	// are flushed sooner and their memory is reused (pebble recycles a
	// flushed memtable's arena for the next one of the same size) when the
	// flushes keep up with the applies; larger ones defer the flush work
	// but fill never-touched memory. docs/OPERATIONS.md has the trade-off
	// measured.
	MemTableSize int64
	// Logger receives pebble's own events (its informational chatter at
	// Debug); nil means slog.Default().
	Logger *slog.Logger
}

// Store is a fold in a pebble database: one directory, data under the key
// prefix 0x01, the cursor at 0x00‖"cursor", both written by one atomic batch
// per Apply.
//
// # Concurrency
//
// Apply, ExportTo, Settle and Close are serialised (one writer). Get,
// ForEachInRange, Cursor and Len may run concurrently with them and with
// each other: pebble reads are safe beside writes. Each read sees a
// consistent snapshot of the database: a Get or a whole ForEachInRange scan
// observes every Apply entirely or not at all. The cursor is published after
// its batch commits, so a reader may see data ahead of Cursor, never the
// reverse. Close waits for reads in progress to finish.
type Store struct {
	dir  string
	db   *pebble.DB
	lock *pebble.Lock
	wopt *pebble.WriteOptions
	log  *slog.Logger

	cacheSize   int64 // the block cache, as sized at open
	memTable    int64 // the memtable size, as sized at open
	compactions int   // the compaction concurrency bound

	wmu     sync.Mutex     // the single writer
	curBuf  []byte         // writer scratch: the cursor's bytes
	readers sync.WaitGroup // reads in flight; Close waits for them

	mu     sync.Mutex // guards the fields below
	cursor slipstream.Cursor
	closed bool
}

var _ slipstream.Store = (*Store)(nil)

// Open opens the fold in dir, creating dir and the database if missing, and
// reads the cursor.
//
// Errors: one wrapping [slipstream.ErrLocked] and naming dir when another
// process (or another Store in this one) has the database open; one wrapping
// [slipstream.ErrInvalidFormat] when the stored cursor exceeds 10 bytes,
// when dir holds an append-log fold, or when dir is a non-empty directory
// that is not a pebble database (left as it was); pebble's own errors
// otherwise.
func Open(dir string, opts *Options) (*Store, error) {
	return open(dir, opts, vfs.Default, nil)
}

// open is Open on filesystem fs (tests inject faults through it); tune, if
// set, adjusts pebble's options last (tests observe events through it).
func open(dir string, opts *Options, fs vfs.FS, tune func(*pebble.Options)) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.CacheSize == 0 {
		o.CacheSize = autoCacheSize(processMemory())
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = min(max(o.CacheSize/4, minMemTableSize), maxMemTableSize)
	}
	if o.CompactionConcurrency <= 0 {
		o.CompactionConcurrency = autoCompactionConcurrency()
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With(slipstream.LogKeyComponent, "pebblestore", slipstream.LogKeyDir, dir)
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pebblestore: create %s: %w", dir, err)
	}
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		if isLockHeld(err) {
			return nil, fmt.Errorf("pebblestore: open %s: %w (%v)", dir, slipstream.ErrLocked, err)
		}
		return nil, fmt.Errorf("pebblestore: lock %s: %w", dir, err)
	}
	cache := pebble.NewCache(o.CacheSize)
	defer cache.Unref()
	popts := &pebble.Options{
		FS:                          fs,
		Cache:                       cache,
		Lock:                        lock,
		FormatMajorVersion:          pebble.FormatNewest,
		MemTableSize:                uint64(o.MemTableSize),
		MemTableStopWritesThreshold: 4,
		BytesPerSync:                1 << 20,
		Logger:                      pebbleLogger{log},
		CompactionConcurrencyRange:  func() (int, int) { return 1, o.CompactionConcurrency },
	}
	for i := range popts.Levels {
		popts.Levels[i].BlockSize = 16 << 10
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	popts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionBalanced })
	if tune != nil {
		tune(popts)
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	c, err := readCursor(db)
	if err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	wopt := pebble.NoSync
	if o.Sync {
		wopt = pebble.Sync
	}
	return &Store{dir: dir, db: db, lock: lock, wopt: wopt, log: log, cursor: c,
		cacheSize: o.CacheSize, memTable: o.MemTableSize, compactions: o.CompactionConcurrency}, nil
}

// checkDir refuses a path that is not a directory, an append-log fold, and
// a non-empty directory holding nothing that looks like pebble's.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pebblestore: open %s: %w: not a directory", dir, slipstream.ErrInvalidFormat)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	pebbleLike := false
	for _, de := range des {
		n := de.Name()
		if n == "fold.snap" {
			return fmt.Errorf("pebblestore: open %s: %w: directory holds an append-log fold", dir, slipstream.ErrInvalidFormat)
		}
		if n == "LOCK" || strings.HasPrefix(n, "MANIFEST-") || strings.HasPrefix(n, "OPTIONS-") ||
			strings.HasPrefix(n, "marker.") || strings.HasSuffix(n, ".sst") || strings.HasSuffix(n, ".log") {
			pebbleLike = true
		}
	}
	if len(des) > 0 && !pebbleLike {
		return fmt.Errorf("pebblestore: open %s: %w: directory is not empty and is not a pebble database (found %q)",
			dir, slipstream.ErrInvalidFormat, des[0].Name())
	}
	return nil
}

// isLockHeld reports whether a LockDirectory error means another holder.
func isLockHeld(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "lock held by current process")
}

func readCursor(db *pebble.DB) (slipstream.Cursor, error) {
	v, closer, err := db.Get(cursorKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return slipstream.Cursor{}, nil
	}
	if err != nil {
		return slipstream.Cursor{}, fmt.Errorf("read cursor: %w", err)
	}
	defer closer.Close()
	return decodeCursor(v)
}

// acquire registers a read; false once the store is closed.
func (s *Store) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.readers.Add(1)
	return true
}

func (s *Store) errClosed(op string) error {
	return fmt.Errorf("pebblestore: %s %s: %w", op, s.dir, slipstream.ErrClosed)
}

// Apply writes the batch's puts and deletes (purges are deletes) and the
// cursor in one atomic pebble batch, committed with Sync or NoSync per
// Options.Sync. An empty batch still writes the cursor. A key that is not
// UTF-8 or an update with an unknown op refuses the whole batch with an
// error wrapping [slipstream.ErrInvalidFormat]. It returns
// [slipstream.ErrClosed] after Close. Apply does not retain batch.
func (s *Store) Apply(batch []slipstream.Update, cursor slipstream.Cursor) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.acquire() {
		return s.errClosed("apply to")
	}
	defer s.readers.Done()
	for i := range batch {
		u := &batch[i]
		switch u.Op {
		case slipstream.OpPut, slipstream.OpDelete, slipstream.OpPurge:
		default:
			return fmt.Errorf("pebblestore: apply to %s: %w: update for key %q has unknown op %d", s.dir, slipstream.ErrInvalidFormat, u.Key, uint8(u.Op))
		}
		if !utf8.ValidString(u.Key) {
			return fmt.Errorf("pebblestore: apply to %s: %w: key %q is not valid UTF-8", s.dir, slipstream.ErrInvalidFormat, u.Key)
		}
	}
	b := s.db.NewBatch()
	defer b.Close()
	for i := range batch {
		u := &batch[i]
		// Encode keys and values straight into the batch: no scratch copy.
		var op *pebble.DeferredBatchOp
		if u.Op == slipstream.OpPut {
			op = b.SetDeferred(1+len(u.Key), 1+u.Version.Len()+len(u.Value))
			putValue(op.Value, u.Version, u.Value)
		} else {
			op = b.DeleteDeferred(1 + len(u.Key))
		}
		putDataKey(op.Key, u.Key)
		if err := op.Finish(); err != nil {
			return fmt.Errorf("pebblestore: apply to %s: %w", s.dir, err)
		}
	}
	cur := cursor.Version()
	s.curBuf = cur.AppendBytes(s.curBuf[:0])
	if err := b.Set(cursorKey, s.curBuf, nil); err != nil {
		return fmt.Errorf("pebblestore: apply to %s: %w", s.dir, err)
	}
	if err := b.Commit(s.wopt); err != nil {
		return fmt.Errorf("pebblestore: apply to %s: %w", s.dir, err)
	}
	s.mu.Lock()
	s.cursor = cursor
	s.mu.Unlock()
	return nil
}

// Get returns the live entry for key; false when absent. The entry's Value
// is a copy the caller owns. A stored value that does not decode is an error
// wrapping [slipstream.ErrInvalidFormat]. It returns [slipstream.ErrClosed]
// after Close.
func (s *Store) Get(key string) (slipstream.Entry, bool, error) {
	if !s.acquire() {
		return slipstream.Entry{}, false, s.errClosed("get from")
	}
	defer s.readers.Done()
	v, closer, err := s.db.Get(appendDataKey(nil, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return slipstream.Entry{}, false, nil
	}
	if err != nil {
		return slipstream.Entry{}, false, fmt.Errorf("pebblestore: get %q from %s: %w", key, s.dir, err)
	}
	defer closer.Close()
	ver, val, err := decodeValue(v)
	if err != nil {
		return slipstream.Entry{}, false, fmt.Errorf("pebblestore: get %q from %s: %w", key, s.dir, err)
	}
	return slipstream.Entry{Key: key, Value: append(make([]byte, 0, len(val)), val...), Version: ver}, true, nil
}

// ForEachInRange streams every live entry whose key starts with prefix, in
// ascending byte order, from a pebble iterator bounded to the prefix: the
// range is never buffered, and the scan sees one consistent snapshot. The
// entry's Value is a copy (never the iterator's memory, which may be the
// memtable's): fn may write into it, but it is valid only during the call
// (the copy's memory is reused for the next entry); copy it to keep it. An error from fn stops the scan and is returned
// as is; a stored key that is not UTF-8 or a value that does not decode is
// an error wrapping [slipstream.ErrInvalidFormat]. fn may call the store's
// reads but not Close (Close waits for the scan). A long scan pins the
// memtables and files of its snapshot until it ends. A full scan (empty
// prefix) passes through pebble's block cache and may evict the working
// set. It returns [slipstream.ErrClosed] after Close.
func (s *Store) ForEachInRange(prefix string, fn func(slipstream.Entry) error) error {
	if !s.acquire() {
		return s.errClosed("scan")
	}
	defer s.readers.Done()
	lower := appendDataKey(nil, prefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: successor(lower)})
	if err != nil {
		return fmt.Errorf("pebblestore: scan %s: %w", s.dir, err)
	}
	defer it.Close()
	// Values are copied into buf, reused from entry to entry: the
	// iterator's memory may be the memtable's or the block cache's, and a
	// caller writing into it would change the fold.
	var buf []byte
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()[1:]
		if !utf8.Valid(k) {
			return fmt.Errorf("pebblestore: scan %s: %w: stored key %q is not valid UTF-8", s.dir, slipstream.ErrInvalidFormat, k)
		}
		raw, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: scan %s: %w", s.dir, err)
		}
		ver, val, err := decodeValue(raw)
		if err != nil {
			return fmt.Errorf("pebblestore: scan %s: key %q: %w", s.dir, k, err)
		}
		buf = append(buf[:0], val...)
		if err := fn(slipstream.Entry{Key: string(k), Value: buf[:len(buf):len(buf)], Version: ver}); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: scan %s: %w", s.dir, err)
	}
	return nil
}

// Cursor returns the cursor of the last successful Apply, or the one read at
// open (none for a fresh fold). It keeps answering after Close.
func (s *Store) Cursor() slipstream.Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor
}

// Len counts the live keys by iterating the data namespace (O(n); meant for
// stats, not hot paths).
func (s *Store) Len() (int, error) {
	n := 0
	err := s.ForEachInRange("", func(slipstream.Entry) error { n++; return nil })
	return n, err
}

// Size returns the bytes the database uses on disk (tables, write-ahead
// log, manifests), from pebble's own metrics; an error wrapping
// [slipstream.ErrClosed] after Close.
func (s *Store) Size() (int64, error) {
	if !s.acquire() {
		return 0, s.errClosed("size")
	}
	defer s.readers.Done()
	return int64(s.db.Metrics().DiskSpaceUsage()), nil
}

// Settle makes the tree read-optimal after a bulk hydration: it flushes the
// memtables and compacts the whole key space, which can take long and
// transiently needs up to twice the disk. The state is unchanged. Reads may
// run meanwhile; Apply waits.
func (s *Store) Settle() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.acquire() {
		return s.errClosed("settle")
	}
	defer s.readers.Done()
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("pebblestore: settle %s: flush: %w", s.dir, err)
	}
	if err := s.db.Compact(context.Background(), []byte{nsMeta}, []byte{nsData + 1}, true); err != nil {
		return fmt.Errorf("pebblestore: settle %s: compact: %w", s.dir, err)
	}
	return nil
}

// ExportTo writes a checkpoint of the database to dir, which must be
// absent or an empty directory (else an error wrapping
// [slipstream.ErrArtifactInvalid], and dir is not touched), and verifies it
// by opening it read-only: it must recover exactly the live cursor. The
// WAL is flushed into the checkpoint, so commits made without sync are
// included. Sstables are hard-linked where possible (copied only when a
// link fails): the export pins disk space until it is deleted.
//
// The checkpoint is written in a hidden directory beside dir (prefix
// [ExportStagePrefix]) and renamed onto dir once verified (a rename
// replaces an empty directory and fails on anything else, so a destination
// that fills up meanwhile is refused, never overwritten); dir's parent is
// then fsynced. On any failure the hidden directory is removed: ExportTo
// never removes a file it did not create. Reads may run meanwhile; Apply
// waits.
func (s *Store) ExportTo(dir string) (slipstream.Export, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.acquire() {
		return slipstream.Export{}, s.errClosed("export")
	}
	defer s.readers.Done()
	if err := checkDest(dir); err != nil {
		return slipstream.Export{}, err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return slipstream.Export{}, fmt.Errorf("pebblestore: export: create %s: %w", parent, err)
	}
	stage, err := os.MkdirTemp(parent, ExportStagePrefix+"*")
	if err != nil {
		return slipstream.Export{}, fmt.Errorf("pebblestore: export: create stage in %s: %w", parent, err)
	}
	placed := false
	defer func() {
		if !placed {
			_ = os.RemoveAll(stage)
		}
	}()
	ck := filepath.Join(stage, "checkpoint") // pebble creates it
	cursor := s.Cursor()
	if err := s.db.Checkpoint(ck, pebble.WithFlushedWAL()); err != nil {
		return slipstream.Export{}, fmt.Errorf("pebblestore: export %s to %s: %w", s.dir, dir, err)
	}
	if err := verifyCopy(ck, cursor, s.log); err != nil {
		return slipstream.Export{}, err
	}
	files, err := listFiles(ck)
	if err != nil {
		return slipstream.Export{}, err
	}
	if err := movedir.Onto(ck, dir); err != nil {
		if derr := checkDest(dir); derr != nil {
			return slipstream.Export{}, fmt.Errorf("%w (rename: %w)", derr, err)
		}
		return slipstream.Export{}, fmt.Errorf("pebblestore: export: move %s to %s: %w", ck, dir, err)
	}
	placed = true
	_ = os.RemoveAll(stage) // now empty
	if err := fsync.Dir(parent); err != nil {
		return slipstream.Export{}, fmt.Errorf("pebblestore: export: sync %s after moving %s into place: %w", parent, dir, err)
	}
	return slipstream.Export{
		Backend:        Backend,
		BackendVersion: strconv.Itoa(int(s.db.FormatMajorVersion())),
		Cursor:         cursor,
		Files:          files,
	}, nil
}

// ExportStagePrefix begins the name of the hidden directory beside an
// export's destination in which [Store.ExportTo] writes its checkpoint.
const ExportStagePrefix = ".pebble-export-"

// checkDest accepts an absent destination or an empty directory.
func checkDest(dir string) error {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("pebblestore: export: stat %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: destination %s already exists", slipstream.ErrArtifactInvalid, dir)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pebblestore: export: read %s: %w", dir, err)
	}
	if len(des) > 0 {
		return fmt.Errorf("%w: destination %s exists and is not empty", slipstream.ErrArtifactInvalid, dir)
	}
	return nil
}

// verifyCopy opens a checkpoint read-only and without a lock file (WAL
// replay stays in memory, nothing is added to the copy) and checks it
// recovers exactly the live cursor: each Apply commits its cursor with its
// data, so an equal cursor proves the copy lost no tail.
func verifyCopy(dir string, want slipstream.Cursor, log *slog.Logger) error {
	got, err := recoverCursor(dir, log)
	if err != nil {
		return fmt.Errorf("%w: exported copy %s: %w", slipstream.ErrArtifactInvalid, dir, err)
	}
	if got != want {
		return fmt.Errorf("%w: exported copy %s recovered cursor %s, live fold is at %s", slipstream.ErrArtifactInvalid, dir, got, want)
	}
	return nil
}

// listFiles returns the regular files under dir, relative, with forward
// slashes, sorted; any other kind of entry is an error wrapping
// [slipstream.ErrArtifactInvalid].
func listFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%w: export contains a non-regular file %s", slipstream.ErrArtifactInvalid, p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: list export %s: %w", dir, err)
	}
	slices.Sort(files)
	return files, nil
}

// Close waits for reads in flight, flushes the memtables (so the next open
// replays no write-ahead log: a clean restart costs the open, not the
// fold's recent writes), closes the database and releases the lock. A
// failed flush is returned, the data stays in the WAL. Further calls return
// [slipstream.ErrClosed]; Cursor keeps answering.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.errClosed("close")
	}
	s.closed = true
	s.mu.Unlock()
	s.readers.Wait()
	// Flush the memtables, so the next open replays no WAL: a clean
	// restart then costs the open, not the fold's recent writes (up to four
	// memtables of them). A crash leaves the WAL to replay, as ever.
	err := s.db.Flush()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("pebblestore: close %s: %w", s.dir, err)
	}
	return nil
}

// pebbleLogger routes pebble's logging to slog: its routine events at
// Debug, errors at Error. Fatalf logs and panics (pebble expects it not to
// return).
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...))
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic("pebblestore: pebble fatal: " + msg)
}
