package applog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf8"

	"github.com/slipstream-kv/slipstream"
)

// sink receives the records of a replay in file order. key and value alias
// the log's bytes: a sink that keeps them copies them.
type sink interface {
	// put inserts or overwrites key, whose value starts at offset off of
	// the file, and reports whether key was live.
	put(key, value []byte, v slipstream.Version, off int) (overwrote bool)
	// del removes key.
	del(key []byte)
}

// replayResult is what a successful replay found besides the entries.
type replayResult struct {
	cursor slipstream.Cursor
	// compact is true when the file holds no redundant record and ends
	// cleanly: rewriting it would produce the same bytes' state and loading
	// it again needs no repair.
	compact bool
	// cleanEOF is false when a torn tail (or trailing NUL slack) was dropped.
	cleanEOF bool
	// end is the length of the valid prefix: the end of the last good record.
	end int
	// records counts the good records.
	records int
}

// replay parses a whole log file (header included) into s, following the
// rules of docs/FORMAT.md, "Replay". A returned error is a *FormatError without Path.
func replay(data []byte, s sink) (replayResult, error) {
	return replayWindow(&window{buf: data, n: len(data)}, s)
}

// window holds the part of a log the replay is reading: bytes
// [base, base+len(buf)) of a file of n bytes. A window over a whole buffer
// (r nil) never moves; a window over a reader reads the file in large chunks
// into one reused buffer and slides forward, so a load parses bytes that
// were just read, while they are in cache, and never holds the whole file
// (nor pays for faulting in a buffer the size of the file).
type window struct {
	r    io.Reader // nil: buf is the whole file
	buf  []byte
	base int
	n    int
	// beforeSlide, when set, runs before bytes of the window are
	// overwritten (a sink holding slices of them must let go).
	beforeSlide func()
}

// bufferedSink is a sink that may hold the key and value slices of PUTs
// after put returns, until flush; its put reports no overwrites, flush
// reports whether any PUT since the last flush overwrote a live key. The
// replay calls finish once, when it ends (also on error).
type bufferedSink interface {
	sink
	flush() (overwrote bool)
	finish()
}

// need makes the window cover [pos, end) (end ≤ n), dropping the bytes
// before pos if it must slide. Slices of the old window stay intact until
// the next need with a larger pos.
func (w *window) need(pos, end int) error {
	if end <= w.base+len(w.buf) {
		return nil
	}
	return w.fill(pos, end)
}

// fill is need's slow path: slide the window to pos and read.
func (w *window) fill(pos, end int) error {
	if w.r == nil {
		panic("applog: replay window beyond a complete buffer")
	}
	if pos > w.base {
		if w.beforeSlide != nil {
			w.beforeSlide()
		}
		k := copy(w.buf[:cap(w.buf)], w.buf[pos-w.base:])
		w.buf, w.base = w.buf[:k], pos
	}
	if end-w.base > cap(w.buf) {
		nb := make([]byte, len(w.buf), max(end-w.base, 2*cap(w.buf)))
		copy(nb, w.buf)
		w.buf = nb
	}
	to := min(cap(w.buf), w.n-w.base)
	k, err := io.ReadAtLeast(w.r, w.buf[len(w.buf):to], end-w.base-len(w.buf))
	w.buf = w.buf[:len(w.buf)+k]
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return fmt.Errorf("file shrank to %d bytes while being read (was %d)", w.base+len(w.buf), w.n)
	}
	return err
}

// allZeroFrom reports whether bytes [pos, n) are all zero.
func (w *window) allZeroFrom(pos int) (bool, error) {
	for pos < w.n {
		if err := w.need(pos, pos+1); err != nil {
			return false, err
		}
		end := w.base + len(w.buf)
		if !allZero(w.buf[pos-w.base:]) {
			return false, nil
		}
		pos = end
	}
	return true, nil
}

// replayWindow is replay over a window. Errors other than *FormatError are
// read errors.
func replayWindow(w *window, s sink) (replayResult, error) {
	res := replayResult{cleanEOF: true}
	n := w.n
	if err := w.need(0, min(n, headerLen)); err != nil {
		return res, err
	}
	if err := checkHeader(w.buf[:min(n, headerLen)]); err != nil {
		return res, err
	}
	if n < headerLen {
		// Torn at creation: an empty log whose header must be rewritten.
		res.cleanEOF = false
		return res, nil
	}
	pos := headerLen
	redundant := false
	bs, _ := s.(bufferedSink)
	if bs != nil {
		defer bs.finish()
		w.beforeSlide = func() {
			if bs.flush() {
				redundant = true
			}
		}
		defer func() { w.beforeSlide = nil }()
	}
	for pos < n {
		// The window is extended field by field, each time to the end of
		// the next length field (or of the record), never past n: a record
		// may straddle any window boundary.
		if err := w.need(pos, min(n, pos+7)); err != nil {
			return res, err
		}
		data, b := w.buf, w.base // data[x-b] is byte x of the file
		rem := n - pos
		if rem < 5 {
			res.cleanEOF = false
			break
		}
		crc := binary.LittleEndian.Uint32(data[pos-b:])
		typ := data[pos+4-b]
		var end, keyStart, keyEnd, valStart, valEnd, verStart int
		torn := false
		switch typ {
		case recPut, recDelete:
			if rem < 7 {
				torn = true
				break
			}
			klen := int(binary.LittleEndian.Uint16(data[pos+5-b:]))
			keyStart, keyEnd = pos+7, pos+7+klen
			p := keyEnd
			if typ == recPut {
				if n < p+4 {
					torn = true
					break
				}
				if err := w.need(pos, p+4); err != nil {
					return res, err
				}
				data, b = w.buf, w.base
				vlen := binary.LittleEndian.Uint32(data[p-b:])
				if vlen > MaxValueLen {
					// A bit-flipped length would otherwise look like a record
					// running past EOF and silently drop every later record:
					// treat it as a checksum mismatch (docs/FORMAT.md, replay rules).
					if tornCRC(n, pos, p+4-pos) {
						torn = true
						break
					}
					return res, corruptAt(pos, "value length %d exceeds %d (checksum mismatch class)", vlen, MaxValueLen)
				}
				valStart, valEnd = p+4, p+4+int(vlen)
				p = valEnd
			}
			if n < p+1 {
				torn = true
				break
			}
			if err := w.need(pos, p+1); err != nil {
				return res, err
			}
			data, b = w.buf, w.base
			vl := int(data[p-b])
			if vl > maxTokenLen {
				return res, invalidAt(pos, "version length %d exceeds %d", vl, maxTokenLen)
			}
			verStart, end = p+1, p+1+vl
			if end > n {
				torn = true
			}
		case recCursor:
			if rem < 6 {
				torn = true
				break
			}
			cl := int(data[pos+5-b])
			if cl > maxTokenLen {
				return res, invalidAt(pos, "cursor length %d exceeds %d", cl, maxTokenLen)
			}
			verStart, end = pos+6, pos+6+cl
			if end > n {
				torn = true
			}
		default:
			if crc == 0 && typ == 0 {
				zero, err := w.allZeroFrom(pos)
				if err != nil {
					return res, err
				}
				if zero {
					// NUL slack from preallocation or a torn copy.
					torn = true
					break
				}
				return res, invalidAt(pos, "mid-file zero hole before a non-zero suffix")
			}
			return res, invalidAt(pos, "unknown record type 0x%02x", typ)
		}
		if torn {
			res.cleanEOF = false
			break
		}
		if err := w.need(pos, end); err != nil {
			return res, err
		}
		data, b = w.buf, w.base
		if crc32.ChecksumIEEE(data[pos+4-b:end-b]) != crc {
			if tornCRC(n, pos, end-pos) {
				res.cleanEOF = false
				break
			}
			return res, corruptAt(pos, "checksum mismatch")
		}
		switch typ {
		case recPut, recDelete:
			key := data[keyStart-b : keyEnd-b]
			if !utf8.Valid(key) {
				return res, invalidAt(pos, "key is not valid UTF-8")
			}
			if typ == recPut {
				v, _ := slipstream.VersionFromBytes(data[verStart-b : end-b])
				if s.put(key, data[valStart-b:valEnd-b], v, valStart) {
					redundant = true
				}
			} else {
				s.del(key)
				redundant = true
			}
		case recCursor:
			if !res.cursor.IsNone() {
				redundant = true
			}
			v, _ := slipstream.VersionFromBytes(data[verStart-b : end-b])
			res.cursor = slipstream.CursorAt(v)
		}
		res.records++
		pos = end
	}
	if bs != nil && bs.flush() {
		redundant = true
	}
	res.end = pos
	res.compact = !redundant && res.cleanEOF
	return res, nil
}

// tornCRC reports whether a checksum mismatch of a record of consumed bytes at
// pos is a torn tail: the record reaches EOF or fewer bytes than the smallest
// record follow it. Otherwise it is corruption.
func tornCRC(n, pos, consumed int) bool {
	return pos+consumed >= n || n-(pos+consumed) < minRecordLen
}

// checkHeader validates the 6-byte header. A file that is a strict prefix of
// the header (including an empty file) is a log torn at creation; replay
// treats it as an empty log with a torn tail, see [isHeaderPrefix].
func checkHeader(data []byte) error {
	if len(data) < headerLen {
		if isHeaderPrefix(data) {
			return nil
		}
		return invalidAt(0, "file too short (%d bytes) and not a prefix of the header", len(data))
	}
	if !bytes.Equal(data[:4], header[:4]) {
		return invalidAt(0, "bad magic %q", data[:4])
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != FormatVersion {
		return invalidAt(0, "unsupported format version %d (want %d)", v, FormatVersion)
	}
	return nil
}

// isHeaderPrefix reports whether data is shorter than the header and a
// prefix of it.
func isHeaderPrefix(data []byte) bool {
	return len(data) < headerLen && bytes.Equal(data, header[:len(data)])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func corruptAt(off int, format string, args ...any) error {
	return &FormatError{Offset: int64(off), Reason: fmt.Sprintf(format, args...), Err: slipstream.ErrCorrupt}
}

func invalidAt(off int, format string, args ...any) error {
	return &FormatError{Offset: int64(off), Reason: fmt.Sprintf(format, args...), Err: slipstream.ErrInvalidFormat}
}

// withPath sets the path of a *FormatError (other errors pass through).
func withPath(err error, path string) error {
	if fe, ok := err.(*FormatError); ok {
		fe.Path = path
	}
	return err
}
