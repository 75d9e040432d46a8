package applog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/slipstream-kv/slipstream"
)

// Snapshot is the state a log file replays to: its live entries and the
// cursor of its last CURSOR record.
type Snapshot struct {
	Cursor  slipstream.Cursor
	Entries map[string]slipstream.Entry
}

// StaleKeys returns the keys of s that are absent from live, the freshly
// listed key set of the bucket, in ascending order. A raw writer user calls
// it after a cursor-expired fallback to synthesise deletes for keys removed
// during the gap.
func (s Snapshot) StaleKeys(live []string) []string {
	set := make(map[string]struct{}, len(live))
	for _, k := range live {
		set[k] = struct{}{}
	}
	var stale []string
	for k := range s.Entries {
		if _, ok := set[k]; !ok {
			stale = append(stale, k)
		}
	}
	slices.Sort(stale)
	return stale
}

// sortedKeys returns the keys of s in ascending order.
func (s Snapshot) sortedKeys() []string {
	keys := make([]string, 0, len(s.Entries))
	for k := range s.Entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// emit writes s's entries to rw in key order.
func (s Snapshot) emit(rw *recordWriter) {
	for _, k := range s.sortedKeys() {
		e := s.Entries[k]
		rw.put(k, e.Value, e.Version)
	}
}

// snapshotSink replays into a Snapshot's map, copying keys and values.
type snapshotSink map[string]slipstream.Entry

func (m snapshotSink) put(key, value []byte, v slipstream.Version, _ int) bool {
	_, ok := m[string(key)]
	k := string(key)
	m[k] = slipstream.Entry{Key: k, Value: bytes.Clone(value), Version: v}
	return ok
}

func (m snapshotSink) del(key []byte) { delete(m, string(key)) }

// Load replays the log at path. It reports false, with no error, when there
// is nothing to resume from: the file is missing, or holds no entry and no
// cursor (a cursor-only file is a snapshot with zero entries, so the resume
// position survives).
//
// Load repairs the file as docs/FORMAT.md ("Load") says, and only then: a log
// with a torn tail or redundant records (overwrites, deletes, repeated
// cursors) is rewritten compactly through a temp file, fsync and rename; an
// empty log with bytes past the header (junk, a none cursor, a torn first
// record) is rewritten to a bare header so later appends are not stranded
// behind it. A compact file is left byte-for-byte unchanged. A file shorter
// than the header that is a prefix of it (a log torn at creation) counts as
// an empty log and is given its full header.
//
// Errors: a *[FormatError] wrapping [slipstream.ErrInvalidFormat] (bad
// header, unknown record type, oversized length field, non-UTF-8 key, a zero
// hole before valid records) or [slipstream.ErrCorrupt] (a checksum mismatch
// in the middle of the log); the file is then left untouched. Other errors
// are I/O errors.
func Load(path string) (Snapshot, bool, error) {
	return load(osFS{}, path)
}

func load(fsys fsys, path string) (Snapshot, bool, error) {
	return loadSized(fsys, path, defaultSizes)
}

func loadSized(fsys fsys, path string, sz loadSizes) (Snapshot, bool, error) {
	m := snapshotSink(make(map[string]slipstream.Entry))
	st, err := loadInto(fsys, path, m, true, sz)
	if err != nil || !st.exists || (len(m) == 0 && st.res.cursor.IsNone()) {
		return Snapshot{}, false, err
	}
	return Snapshot{Cursor: st.res.cursor, Entries: m}, true, nil
}

// fold is a replay target that can also write itself out compactly.
type fold interface {
	sink
	// size returns the number of live entries.
	size() int
	// emit writes every live entry, in ascending key order.
	emit(rw *recordWriter)
}

func (m snapshotSink) size() int { return len(m) }

func (m snapshotSink) emit(rw *recordWriter) {
	Snapshot{Entries: m}.emit(rw)
}

// readWindow is the buffer a load reads the log through. Reads of 1 MiB
// cost no more per byte than larger ones, and a smaller buffer is fewer
// fresh pages to fault in (which is most of a load's cost on some VMs).
const readWindow = 1 << 20

// loadSizes are the read sizes of a load: the window the replay reads
// through. Production uses defaultSizes; tests shrink them so that small
// logs cross the window's boundaries.
type loadSizes struct{ window int }

var defaultSizes = loadSizes{window: readWindow}

// loadState describes what loadInto found and did.
type loadState struct {
	exists  bool         // the file existed
	res     replayResult // the replay's outcome
	fileLen int          // length of the file as read
	size    int64        // length of the file after any rewrite
	rewrote bool         // the file was rewritten
}

// loadInto replays the log at path into f. With rewrite, it repairs the file
// as [Load] documents; without, it never writes (a torn tail is ignored in
// memory). A missing file is an empty log. Replay errors carry the path and
// leave the file untouched.
func loadInto(fsys fsys, path string, f fold, rewrite bool, sz loadSizes) (loadState, error) {
	var st loadState
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("applog: read %s: %w", path, err)
	}
	st, err = loadFrom(file, path, f, sz)
	// Closed before any rewrite renames a new log over path.
	if cerr := file.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("applog: close %s: %w", path, cerr)
	}
	if err != nil || !rewrite {
		return st, err
	}
	return repair(fsys, path, f, st)
}

func loadFrom(file *os.File, path string, f sink, sz loadSizes) (loadState, error) {
	var st loadState
	fi, err := file.Stat()
	if err != nil {
		return st, fmt.Errorf("applog: read %s: %w", path, err)
	}
	n := int(fi.Size())
	st.exists, st.fileLen, st.size = true, n, int64(n)
	w := &window{r: file, buf: make([]byte, 0, min(n, sz.window)), n: n}
	st.res, err = replayWindow(w, f)
	if err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) {
			return st, fmt.Errorf("applog: read %s: %w", path, err)
		}
		return st, withPath(err, path)
	}
	return st, nil
}

// repair rewrites a loaded log as [Load] documents: an empty log to a bare
// header, a log with a torn tail or redundant records compactly.
func repair(fsys fsys, path string, f fold, st loadState) (loadState, error) {
	n := st.fileLen
	if f.size() == 0 && st.res.cursor.IsNone() {
		if n != headerLen {
			size, _, err := compactToFile(fsys, path, slipstream.Cursor{}, func(*recordWriter) {})
			if err != nil {
				return st, fmt.Errorf("applog: reset empty log %s: %w", path, err)
			}
			st.size, st.rewrote = size, true
		}
		return st, nil
	}
	if !st.res.compact {
		size, _, err := compactToFile(fsys, path, st.res.cursor, f.emit)
		if err != nil {
			return st, fmt.Errorf("applog: compact %s on load: %w", path, err)
		}
		st.size, st.rewrote = size, true
	}
	return st, nil
}
