package pebblestore

import (
	"fmt"

	"github.com/slipstream-kv/slipstream"
)

// Key namespaces: one database, a one-byte prefix per namespace, so the data
// and the cursor commit in one atomic batch.
const (
	nsMeta = 0x00
	nsData = 0x01
)

// cursorKey is the meta key holding the raw cursor bytes (no length prefix).
var cursorKey = []byte{nsMeta, 'c', 'u', 'r', 's', 'o', 'r'}

// appendDataKey appends the data key of key: nsData ‖ key.
func appendDataKey(dst []byte, key string) []byte {
	return append(append(dst, nsData), key...)
}

// putDataKey writes the data key of key into dst, which is exactly
// 1+len(key) bytes long.
func putDataKey(dst []byte, key string) {
	dst[0] = nsData
	copy(dst[1:], key)
}

// putValue writes the value record of v and value (see appendValue) into
// dst, which is exactly 1+v.Len()+len(value) bytes long.
func putValue(dst []byte, v slipstream.Version, value []byte) {
	dst[0] = byte(v.Len())
	n := copy(dst[1:], v.AppendBytes(dst[1:1]))
	copy(dst[1+n:], value)
}

// appendValue appends the value record of docs/FORMAT.md ("Pebble"):
// ver_len:u8 ‖ version ‖ value (the value runs to the end). Versions hold at
// most 10 bytes, so the 255-byte limit of the length byte cannot be reached.
func appendValue(dst []byte, v slipstream.Version, value []byte) []byte {
	dst = append(dst, byte(v.Len()))
	dst = v.AppendBytes(dst)
	return append(dst, value...)
}

// decodeValue splits a value record. The returned value aliases rec. An
// empty record, a version length over 10 or past the end of the record is
// an error wrapping [slipstream.ErrInvalidFormat]. An empty value decodes
// to a present, empty entry.
func decodeValue(rec []byte) (slipstream.Version, []byte, error) {
	if len(rec) == 0 {
		return slipstream.Version{}, nil, fmt.Errorf("%w: empty value record", slipstream.ErrInvalidFormat)
	}
	n := int(rec[0])
	if n > slipstream.MaxVersionLen {
		return slipstream.Version{}, nil, fmt.Errorf("%w: value record version length %d exceeds %d", slipstream.ErrInvalidFormat, n, slipstream.MaxVersionLen)
	}
	if 1+n > len(rec) {
		return slipstream.Version{}, nil, fmt.Errorf("%w: value record truncated: version of %d bytes in a %d-byte record", slipstream.ErrInvalidFormat, n, len(rec))
	}
	v, _ := slipstream.VersionFromBytes(rec[1 : 1+n])
	return v, rec[1+n:], nil
}

// decodeCursor validates stored cursor bytes.
func decodeCursor(b []byte) (slipstream.Cursor, error) {
	v, ok := slipstream.VersionFromBytes(b)
	if !ok {
		return slipstream.Cursor{}, fmt.Errorf("%w: stored cursor of %d bytes exceeds version token capacity (%d)", slipstream.ErrInvalidFormat, len(b), slipstream.MaxVersionLen)
	}
	return slipstream.CursorAt(v), nil
}

// successor returns the smallest key greater than every key with prefix b:
// b with its last non-0xFF byte incremented and the rest dropped. nil means
// no upper bound.
func successor(b []byte) []byte {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0xFF {
			s := append([]byte(nil), b[:i+1]...)
			s[i]++
			return s
		}
	}
	return nil
}
