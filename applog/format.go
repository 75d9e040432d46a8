package applog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"unicode/utf8"

	"github.com/slipstream-kv/slipstream"
)

const (
	// FileName is the log file inside a fold directory.
	FileName = "fold.snap"
	// LockName is the lock file inside a fold directory. [Open] holds an
	// exclusive flock on it for the life of the [Store].
	LockName = "LOCK"
	// DefaultCompactThreshold is the number of bytes appended since the last
	// compaction after which [Store.Apply] considers compacting (10 MiB).
	DefaultCompactThreshold = 10 << 20
	// FormatVersion is the log format version this package reads and
	// writes. Version 1 files (fixed 8-byte versions) are refused.
	FormatVersion = 2
	// MaxKeyLen is the longest key, in bytes, a record can hold.
	MaxKeyLen = 1<<16 - 1
	// MaxValueLen is the largest value, in bytes, the log accepts. Readers
	// classify a longer value length as corruption, so writers refuse such
	// values instead of writing a file nobody can load.
	MaxValueLen = 16 << 20
)

const (
	headerLen = 6

	recPut    = 0x01
	recDelete = 0x02
	recCursor = 0x03

	// minRecordLen is the size of the smallest record, a none CURSOR.
	minRecordLen = 6
	// putHeaderLen is the framing of a PUT before its value, besides the
	// key: crc, type, key_len and value_len. A PUT's value starts
	// putHeaderLen+len(key) bytes into the record.
	putHeaderLen = 4 + 1 + 2 + 4
	// maxTokenLen is the largest version or cursor length a record may declare.
	maxTokenLen = slipstream.MaxVersionLen
)

// header is the 6-byte file header: the magic "PGSS" and the version as a
// little-endian uint16.
var header = [headerLen]byte{'P', 'G', 'S', 'S', FormatVersion, 0}

// appendHeader appends the file header to dst.
func appendHeader(dst []byte) []byte { return append(dst, header[:]...) }

// appendPut appends a PUT record to dst. The caller has validated the sizes
// with checkUpdate.
func appendPut(dst []byte, key string, value []byte, v slipstream.Version) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, recPut)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(key)))
	dst = append(dst, key...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(value)))
	dst = append(dst, value...)
	dst = append(dst, byte(v.Len()))
	dst = v.AppendBytes(dst)
	return sealRecord(dst, start)
}

// appendDelete appends a DELETE record to dst. Purges are written as deletes.
func appendDelete(dst []byte, key string, v slipstream.Version) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, recDelete)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(key)))
	dst = append(dst, key...)
	dst = append(dst, byte(v.Len()))
	dst = v.AppendBytes(dst)
	return sealRecord(dst, start)
}

// appendCursor appends a CURSOR record to dst. A none cursor is a 0-length
// cursor record.
func appendCursor(dst []byte, c slipstream.Cursor) []byte {
	start := len(dst)
	v := c.Version()
	dst = append(dst, 0, 0, 0, 0, recCursor, byte(v.Len()))
	dst = v.AppendBytes(dst)
	return sealRecord(dst, start)
}

// sealRecord writes the CRC of the record starting at start: CRC-32/IEEE over
// the type byte through the end of the record.
func sealRecord(dst []byte, start int) []byte {
	binary.LittleEndian.PutUint32(dst[start:], crc32.ChecksumIEEE(dst[start+4:]))
	return dst
}

// recordLen returns the encoded size of u's record.
func recordLen(u slipstream.Update) int {
	if u.Op == slipstream.OpPut {
		return 4 + 1 + 2 + len(u.Key) + 4 + len(u.Value) + 1 + u.Version.Len()
	}
	return 4 + 1 + 2 + len(u.Key) + 1 + u.Version.Len()
}

// checkUpdate reports an error wrapping [slipstream.ErrInvalidFormat] for an
// update the log cannot hold faithfully: an unknown op, a key that is longer
// than MaxKeyLen or not UTF-8, or a value longer than MaxValueLen. Nothing is
// ever truncated.
func checkUpdate(u slipstream.Update) error {
	switch u.Op {
	case slipstream.OpPut, slipstream.OpDelete, slipstream.OpPurge:
	default:
		return fmt.Errorf("%w: update for key %q has unknown op %d", slipstream.ErrInvalidFormat, u.Key, uint8(u.Op))
	}
	if len(u.Key) > MaxKeyLen {
		return fmt.Errorf("%w: key of %d bytes exceeds the %d-byte limit", slipstream.ErrInvalidFormat, len(u.Key), MaxKeyLen)
	}
	if !utf8.ValidString(u.Key) {
		return fmt.Errorf("%w: key %q is not valid UTF-8", slipstream.ErrInvalidFormat, u.Key)
	}
	if u.Op == slipstream.OpPut && len(u.Value) > MaxValueLen {
		return fmt.Errorf("%w: value of key %q is %d bytes, exceeds the %d-byte limit", slipstream.ErrInvalidFormat, u.Key, len(u.Value), MaxValueLen)
	}
	return nil
}
