package lease

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/slipstream-kv/slipstream"
)

// Record is the value of the lease key (docs/LEASE.md): compact JSON with
// the fields in this order, optional fields omitted when absent.
//
//	{"holder_id":"node-a","acquired_at_unix":1718000000,"expires_at_unix":1718000060,
//	 "completed_cursor_hex":"000000000000002a","completed_at_unix":1718000012}
//
// Times are whole Unix seconds.
type Record struct {
	// Holder is the caller-chosen identity of the node holding the lease.
	Holder string `json:"holder_id"`
	// AcquiredAtUnix is when the holder acquired the lease.
	AcquiredAtUnix uint64 `json:"acquired_at_unix"`
	// ExpiresAtUnix is AcquiredAtUnix plus the whole seconds of the ttl
	// (saturating). The lease is free from this second on.
	ExpiresAtUnix uint64 `json:"expires_at_unix"`
	// CompletedCursorHex is the lowercase hex of the exported cursor's
	// bytes (8 bytes big-endian for a NATS revision); empty when absent.
	CompletedCursorHex string `json:"completed_cursor_hex,omitempty"`
	// CompletedAtUnix is when the holder completed its round; nil when
	// absent.
	CompletedAtUnix *uint64 `json:"completed_at_unix,omitempty"`
}

// Held reports whether the lease is still held at now (Unix seconds): a
// lease whose expiry is now or earlier is free.
func (r Record) Held(now uint64) bool { return r.ExpiresAtUnix > now }

// CompletedCursor decodes CompletedCursorHex. It returns the none cursor
// when the field is absent, and an error wrapping ErrUnparseable when it is
// not hex or longer than [slipstream.MaxVersionLen] bytes.
func (r Record) CompletedCursor() (slipstream.Cursor, error) {
	b, err := hex.DecodeString(r.CompletedCursorHex)
	if err != nil {
		return slipstream.Cursor{}, fmt.Errorf("%w: completed_cursor_hex: %w", ErrUnparseable, err)
	}
	v, ok := slipstream.VersionFromBytes(b)
	if !ok {
		return slipstream.Cursor{}, fmt.Errorf("%w: completed_cursor_hex: %d bytes, at most %d", ErrUnparseable, len(b), slipstream.MaxVersionLen)
	}
	return slipstream.CursorAt(v), nil
}

// encode renders r as the compact JSON of the lease value, without
// encoding/json's HTML escaping ("<" stays "<").
func (r Record) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode lease record: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseRecord parses a lease value. Unknown fields are ignored and an
// optional field may be absent or null; a value that is not a JSON object,
// a required field that is missing or null, or a field of the wrong type
// yields an error wrapping ErrUnparseable. Field names match exactly (not
// case-insensitively, as encoding/json would).
func ParseRecord(b []byte) (Record, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrUnparseable, err)
	}
	var r Record
	for _, f := range []struct {
		name     string
		dst      any
		required bool
	}{
		{"holder_id", &r.Holder, true},
		{"acquired_at_unix", &r.AcquiredAtUnix, true},
		{"expires_at_unix", &r.ExpiresAtUnix, true},
		{"completed_cursor_hex", &r.CompletedCursorHex, false},
		{"completed_at_unix", &r.CompletedAtUnix, false},
	} {
		raw, ok := fields[f.name]
		if !ok || bytes.Equal(raw, []byte("null")) {
			if f.required {
				return Record{}, fmt.Errorf("%w: missing required field %q", ErrUnparseable, f.name)
			}
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return Record{}, fmt.Errorf("%w: field %q: %w", ErrUnparseable, f.name, err)
		}
	}
	return r, nil
}

// UnmarshalJSON parses b as [ParseRecord] does, so json.Unmarshal into a
// Record checks the required fields too.
func (r *Record) UnmarshalJSON(b []byte) error {
	rec, err := ParseRecord(b)
	if err != nil {
		return err
	}
	*r = rec
	return nil
}
