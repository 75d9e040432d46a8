package applog

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"sync/atomic"

	"github.com/slipstream-kv/slipstream"
)

// logReader is a read handle on the log that the table's offsets point into,
// shared by the store and the reads in flight: whoever lets go last closes
// it. A compaction gives the store a handle on the new file and moves every
// entry's offset there at once (under the store's write lock); a read that
// located its values before finishes reading them from the old file, which
// its handle keeps alive.
//
// Where the platform allows, the reader maps the file read-only (see
// mapLog): reading a value is then a copy out of the page cache, not a
// system call. The mapping reaches past the end of the file so appends
// stay readable through it; only written records are ever touched. A fault
// on the mapping (the file truncated under it by someone else) is returned
// as an error, not a crash.
type logReader struct {
	f    *os.File
	data []byte // the mapping; nil: pread only
	path string
	refs atomic.Int32
}

// newLogReader takes over f, a read handle on the log at path.
func newLogReader(f *os.File, path string) *logReader {
	l := &logReader{f: f, path: path}
	if fi, err := f.Stat(); err == nil {
		l.data = mapLog(f, fi.Size())
	}
	l.refs.Store(1)
	return l
}

// acquire takes a reference for a read; the caller holds the store's lock
// (so the store's own reference is not being released).
func (l *logReader) acquire() *logReader {
	l.refs.Add(1)
	return l
}

// release drops a reference, closing the file with the last one.
func (l *logReader) release() {
	if l.refs.Add(-1) == 0 {
		unmapLog(l.data)
		_ = l.f.Close()
	}
}

// valueLoc is a value's place in the log, as the table recorded it, with
// the key and version its PUT record carries.
type valueLoc struct {
	key  string
	off  int64 // the value's offset
	vlen uint32
	ver  slipstream.Version
}

// record returns the offset and length of the PUT record holding the value.
func (v *valueLoc) record() (start, n int64) {
	return v.off - putHeaderLen - int64(len(v.key)), putLen(v.key, int(v.vlen), v.ver)
}

// Reads of several values gather records no further apart than readGap into
// one pread of at most readSpan bytes.
const (
	readGap  = 4 << 10
	readSpan = 1 << 20
)

// readOne returns a copy of the value at loc, in a buffer of its own.
func (l *logReader) readOne(loc valueLoc) ([]byte, error) {
	start, n := loc.record()
	rec := make([]byte, n)
	if err := l.readAt(rec, start); err != nil {
		return nil, err
	}
	return l.value(rec, &loc, start)
}

// readValues sets vals[i] to the value at locs[i], read into buf (grown as
// needed and returned, with the order scratch): records are read in file
// order, neighbours in one pread. Each value is capped to its length.
func (l *logReader) readValues(locs []valueLoc, vals [][]byte, buf []byte, order []int) ([]byte, []int, error) {
	order = order[:0]
	for i := range locs {
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(locs[a].off, locs[b].off) })
	// Lay the spans out in buf as they are read: pos[i] is where record i
	// lands. First pass sizes buf; the second reads.
	type span struct{ start, end, at int64 }
	var spans []span
	total := int64(0)
	for _, i := range order {
		start, n := locs[i].record()
		if k := len(spans) - 1; k >= 0 && start >= spans[k].end && start-spans[k].end <= readGap && start+n-spans[k].start <= readSpan {
			total += start + n - spans[k].end
			spans[k].end = start + n
			continue
		}
		spans = append(spans, span{start: start, end: start + n, at: total})
		total += n
	}
	buf = slices.Grow(buf[:0], int(total))[:total]
	for _, sp := range spans {
		if err := l.readAt(buf[sp.at:sp.at+sp.end-sp.start], sp.start); err != nil {
			return buf, order, err
		}
	}
	k := 0
	for _, i := range order {
		start, n := locs[i].record()
		for start >= spans[k].end {
			k++
		}
		at := spans[k].at + start - spans[k].start
		v, err := l.value(buf[at:at+n], &locs[i], start)
		if err != nil {
			return buf, order, err
		}
		vals[i] = v
	}
	return buf, order, nil
}

func (l *logReader) readAt(b []byte, off int64) (err error) {
	if end := off + int64(len(b)); off >= 0 && end <= int64(len(l.data)) {
		// A page past the end of the file faults: someone truncated it.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("applog: read %s at %d: %w: the file is shorter than the records it held (%v)", l.path, off, io.ErrUnexpectedEOF, r)
			}
		}()
		copy(b, l.data[off:end])
		return nil
	}
	if _, err := l.f.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("applog: read %s at %d: %w", l.path, off, err)
	}
	return nil
}

// value checks that rec, read from offset start, is the PUT record loc
// describes, CRC included, and returns its value.
func (l *logReader) value(rec []byte, loc *valueLoc, start int64) ([]byte, error) {
	klen := len(loc.key)
	ok := len(rec) >= putHeaderLen+klen && rec[4] == recPut &&
		crc32.ChecksumIEEE(rec[4:]) == binary.LittleEndian.Uint32(rec) &&
		int(binary.LittleEndian.Uint16(rec[5:])) == klen && string(rec[7:7+klen]) == loc.key &&
		binary.LittleEndian.Uint32(rec[7+klen:]) == loc.vlen
	if !ok {
		return nil, &FormatError{Path: l.path, Offset: start, Err: slipstream.ErrCorrupt,
			Reason: fmt.Sprintf("the record of key %q no longer matches its checksum or its place", loc.key)}
	}
	v := rec[putHeaderLen+klen : putHeaderLen+klen+int(loc.vlen)]
	return v[:len(v):len(v)], nil
}
