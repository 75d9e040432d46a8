package slipstream

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// MaxVersionLen is the largest version token, in bytes, that a [Version] holds.
const MaxVersionLen = 10

// Version is an opaque per-record version token of up to [MaxVersionLen]
// bytes, stored inline. A NATS revision is 8 bytes, big-endian.
//
// The zero Version is the unknown version: it never moves a cursor. Versions
// are comparable with ==, and usable as map keys.
type Version struct {
	n uint8
	b [MaxVersionLen]byte
}

// VersionFromUint64 returns the 8-byte big-endian token for rev. Note that
// VersionFromUint64(0) is a known version, distinct from the zero Version.
func VersionFromUint64(rev uint64) Version {
	var v Version
	v.n = 8
	binary.BigEndian.PutUint64(v.b[:8], rev)
	return v
}

// VersionFromBytes returns a token holding a copy of b. It reports false,
// and never truncates, when b is longer than [MaxVersionLen]. An empty b is
// the unknown version.
func VersionFromBytes(b []byte) (Version, bool) {
	if len(b) > MaxVersionLen {
		return Version{}, false
	}
	var v Version
	v.n = uint8(len(b))
	copy(v.b[:], b)
	return v, true
}

// IsUnknown reports whether v is the unknown (empty) version.
func (v Version) IsUnknown() bool { return v.n == 0 }

// Uint64 returns the revision held by an 8-byte token. It reports false for
// tokens of any other length, including the unknown version.
func (v Version) Uint64() (uint64, bool) {
	if v.n != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v.b[:8]), true
}

// Len returns the token's length in bytes.
func (v Version) Len() int { return int(v.n) }

// Bytes returns a copy of the token's bytes (empty for the unknown version).
func (v Version) Bytes() []byte { return append([]byte(nil), v.b[:v.n]...) }

// AppendBytes appends the token's bytes to dst and returns the result.
func (v Version) AppendBytes(dst []byte) []byte { return append(dst, v.b[:v.n]...) }

// String renders v for logs: the revision for 8-byte tokens, "unknown" for
// the empty token, hex bytes otherwise.
func (v Version) String() string {
	if rev, ok := v.Uint64(); ok {
		return fmt.Sprintf("%d", rev)
	}
	if v.n == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%x", v.b[:v.n])
}

// Cursor is an opaque resume position: every update at or before it has been
// applied. The zero Cursor is "none" (start fresh).
type Cursor struct {
	v Version
}

// CursorAt returns the cursor positioned at version v.
func CursorAt(v Version) Cursor { return Cursor{v: v} }

// CursorFromUint64 returns the cursor positioned at the NATS revision rev.
func CursorFromUint64(rev uint64) Cursor { return Cursor{v: VersionFromUint64(rev)} }

// IsNone reports whether c is the "no position" cursor.
func (c Cursor) IsNone() bool { return c.v.IsUnknown() }

// Version returns the token c is positioned at.
func (c Cursor) Version() Version { return c.v }

// Uint64 returns the revision of an 8-byte cursor; false otherwise.
func (c Cursor) Uint64() (uint64, bool) { return c.v.Uint64() }

// Rank orders cursors for guards: the revision of an 8-byte cursor, else 0.
func (c Cursor) Rank() uint64 {
	r, _ := c.v.Uint64()
	return r
}

// String renders c for logs ("none" when c is none).
func (c Cursor) String() string {
	if c.IsNone() {
		return "none"
	}
	return c.v.String()
}

// Entry is one key's current value, as read from a bucket or a fold.
// An empty Value is a present entry (the shape of a CAS tombstone).
type Entry struct {
	Key     string
	Value   []byte
	Version Version
}

// Op is the kind of an [Update].
type Op uint8

const (
	// OpPut writes Value at Key.
	OpPut Op = iota + 1
	// OpDelete is a delete marker for Key.
	OpDelete
	// OpPurge removes Key and its history; folds treat it exactly like OpDelete.
	OpPurge
)

// String returns "put", "delete" or "purge".
func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpPurge:
		return "purge"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Update is one change delivered by a watch. Value is empty for deletes and
// purges. An update with an unknown Version is applied and folded but never
// moves a cursor.
type Update struct {
	Op      Op
	Key     string
	Value   []byte
	Version Version
}

// Put returns a put update.
func Put(key string, value []byte, v Version) Update {
	return Update{Op: OpPut, Key: key, Value: value, Version: v}
}

// Delete returns a delete update.
func Delete(key string, v Version) Update { return Update{Op: OpDelete, Key: key, Version: v} }

// Scope selects which keys a watch covers: all keys, one prefix, or the union
// of several prefixes served by one consumer. The zero Scope is all keys.
//
// Prefixes must be token-aligned: empty, or ending in ".". A prefix such as
// "node" would match nothing on a NATS server but every "node…" key in a fold,
// so [Scope.Validate] rejects it.
type Scope struct {
	prefixes []string
	limited  bool
}

// AllKeys returns the scope of every key in the bucket.
func AllKeys() Scope { return Scope{} }

// Prefix returns the scope of the keys starting with p.
func Prefix(p string) Scope { return Scope{prefixes: []string{p}, limited: true} }

// Prefixes returns the scope of the union of the keys under ps, watched on
// one consumer. An empty list watches nothing.
func Prefixes(ps ...string) Scope {
	return Scope{prefixes: append([]string(nil), ps...), limited: true}
}

// IsAll reports whether s covers every key.
func (s Scope) IsAll() bool { return !s.limited }

// List returns the prefixes s covers: [""] for all keys.
func (s Scope) List() []string {
	if !s.limited {
		return []string{""}
	}
	return append([]string(nil), s.prefixes...)
}

// Contains reports whether key is in scope.
func (s Scope) Contains(key string) bool {
	if !s.limited {
		return true
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// Validate reports an error wrapping [ErrInvalidScope] for a prefix that is
// not token-aligned (not empty and not ending in ".").
func (s Scope) Validate() error {
	for _, p := range s.prefixes {
		if p != "" && !strings.HasSuffix(p, ".") {
			return fmt.Errorf("%w: prefix %q does not end in \".\" (a NATS subject prefix must be a whole token)", ErrInvalidScope, p)
		}
	}
	return nil
}

// String renders s for logs.
func (s Scope) String() string {
	if !s.limited {
		return "all"
	}
	return "prefixes[" + strings.Join(s.prefixes, ",") + "]"
}
