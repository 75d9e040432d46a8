package artifact

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/slipstream-kv/slipstream"
)

const (
	// ManifestName is the manifest's file name at the artifact root.
	ManifestName = "MANIFEST.json"
	// DataDir is the directory, relative to the artifact root, holding the
	// payload.
	DataDir = "data"
	// SchemaVersion is the manifest schema this package reads and writes.
	SchemaVersion = 1
)

// Manifest describes an artifact: which backend wrote it, the cursor its
// payload is complete up to, and the size and BLAKE3 digest of every payload
// file. The JSON form is docs/ARTIFACTS.md's.
type Manifest struct {
	// SchemaVersion is always [SchemaVersion].
	SchemaVersion uint32
	// Backend is the fold backend's identity ("append-log", "pebble").
	Backend string
	// BackendVersion is the backend's on-disk format generation.
	BackendVersion string
	// Cursor is the cursor the payload is complete up to.
	Cursor slipstream.Cursor
	// CreatedAtUnix is the export's wall-clock time in seconds.
	CreatedAtUnix uint64
	// Files are the payload files.
	Files []File
}

// File is one payload file of a [Manifest].
type File struct {
	// Path is relative to the artifact root, '/'-separated, under "data/".
	Path string
	// Size is the file's exact length in bytes.
	Size uint64
	// BLAKE3 is the lowercase hex BLAKE3-256 digest of the contents.
	BLAKE3 string
}

// wire forms: field order is the serialized order.
type manifestJSON struct {
	SchemaVersion  uint32     `json:"schema_version"`
	Backend        string     `json:"backend"`
	BackendVersion string     `json:"backend_version"`
	CursorHex      string     `json:"cursor_hex"`
	CreatedAtUnix  uint64     `json:"created_at_unix"`
	Files          []fileJSON `json:"files"`
}

type fileJSON struct {
	Path   string `json:"path"`
	Size   uint64 `json:"size"`
	BLAKE3 string `json:"blake3"`
}

// Marshal encodes m as the manifest file's bytes: JSON indented by two
// spaces, fields in schema order, no trailing newline, an empty file list as
// []. It validates m the way [ParseManifest] does, so what it writes reads
// back.
func (m *Manifest) Marshal() ([]byte, error) {
	w := manifestJSON{
		SchemaVersion:  m.SchemaVersion,
		Backend:        m.Backend,
		BackendVersion: m.BackendVersion,
		CursorHex:      hex.EncodeToString(m.Cursor.Version().Bytes()),
		CreatedAtUnix:  m.CreatedAtUnix,
		Files:          make([]fileJSON, len(m.Files)),
	}
	for i, f := range m.Files {
		w.Files[i] = fileJSON(f)
	}
	if err := validate(&w); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&w); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseManifest decodes a manifest strictly: unknown, missing or mistyped
// fields, trailing data, an unsupported schema version, a payload path that
// is not a normal path under "data/", and a malformed cursor are all
// rejected with an error wrapping [slipstream.ErrArtifactInvalid]. Checks run
// in that order, so the first failing one names the error. Any JSON
// formatting is accepted.
func ParseManifest(b []byte) (*Manifest, error) {
	w, err := decodeStrict(b)
	if err != nil {
		return nil, err
	}
	if err := validate(w); err != nil {
		return nil, err
	}
	cur, _ := decodeCursorHex(w.CursorHex) // validated
	m := &Manifest{
		SchemaVersion:  w.SchemaVersion,
		Backend:        w.Backend,
		BackendVersion: w.BackendVersion,
		Cursor:         cur,
		CreatedAtUnix:  w.CreatedAtUnix,
		Files:          make([]File, len(w.Files)),
	}
	for i, f := range w.Files {
		m.Files[i] = File(f)
	}
	return m, nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", slipstream.ErrArtifactInvalid, fmt.Sprintf(format, args...))
}

// decodeStrict decodes b into the wire form, refusing unknown, missing and
// mistyped fields and trailing data.
func decodeStrict(b []byte) (*manifestJSON, error) {
	var fields map[string]json.RawMessage
	if err := decodeOne(b, &fields); err != nil {
		return nil, err
	}
	if fields == nil {
		return nil, invalidf("malformed manifest: not a JSON object")
	}
	if err := requireFields(fields, "manifest", "schema_version", "backend", "backend_version", "cursor_hex", "created_at_unix", "files"); err != nil {
		return nil, err
	}
	var files []map[string]json.RawMessage
	if err := decodeOne(fields["files"], &files); err != nil {
		return nil, err
	}
	if files == nil {
		return nil, invalidf("malformed manifest: files is not an array")
	}
	for i, f := range files {
		if f == nil {
			return nil, invalidf("malformed manifest: files[%d] is not an object", i)
		}
		if err := requireFields(f, fmt.Sprintf("files[%d]", i), "path", "size", "blake3"); err != nil {
			return nil, err
		}
	}
	var w manifestJSON
	if err := decodeOne(b, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// decodeOne decodes exactly one JSON value from b into v, refusing unknown
// fields and anything but whitespace after the value.
func decodeOne(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidf("malformed manifest: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidf("malformed manifest: trailing data after the JSON object")
	}
	return nil
}

// requireFields refuses an object that lacks one of names or has another
// field, or whose fields are null.
func requireFields(obj map[string]json.RawMessage, what string, names ...string) error {
	for _, n := range names {
		v, ok := obj[n]
		if !ok {
			return invalidf("malformed manifest: %s has no %q field", what, n)
		}
		if string(bytes.TrimSpace(v)) == "null" {
			return invalidf("malformed manifest: %s field %q is null", what, n)
		}
	}
	if len(obj) != len(names) {
		for k := range obj {
			if !contains(names, k) {
				return invalidf("malformed manifest: %s has unknown field %q", what, k)
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// validate checks the decoded manifest's values, in the documented order:
// schema version, each path, the cursor.
func validate(w *manifestJSON) error {
	if w.SchemaVersion != SchemaVersion {
		return invalidf("unsupported manifest schema_version %d (want %d)", w.SchemaVersion, SchemaVersion)
	}
	for _, f := range w.Files {
		if err := CheckPath(f.Path); err != nil {
			return err
		}
	}
	if _, err := decodeCursorHex(w.CursorHex); err != nil {
		return err
	}
	return nil
}

// CheckPath validates a manifest payload path: '/'-separated, under
// "data/" and longer than it, no backslash, every segment a normal name
// (not empty, ".", or ".."). The error wraps [slipstream.ErrArtifactInvalid].
func CheckPath(p string) error {
	if strings.ContainsRune(p, '\\') {
		return invalidf("payload path %q contains a backslash", p)
	}
	if !strings.HasPrefix(p, DataDir+"/") || len(p) <= len(DataDir)+1 {
		return invalidf("payload path %q is not under %s/", p, DataDir)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return invalidf("payload path %q has a non-normal segment %q", p, seg)
		}
	}
	return nil
}

// decodeCursorHex decodes a manifest cursor: "" is none; otherwise an even
// number of lowercase or uppercase hex digits encoding 1 to 10 bytes.
func decodeCursorHex(s string) (slipstream.Cursor, error) {
	if s == "" {
		return slipstream.Cursor{}, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return slipstream.Cursor{}, invalidf("malformed cursor_hex %q: %v", s, err)
	}
	v, ok := slipstream.VersionFromBytes(b)
	if !ok {
		return slipstream.Cursor{}, invalidf("cursor_hex %q is %d bytes, more than %d", s, len(b), slipstream.MaxVersionLen)
	}
	return slipstream.CursorAt(v), nil
}
