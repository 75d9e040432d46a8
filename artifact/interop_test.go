package artifact_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"lukechampine.com/blake3"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
)

// The reference implementation's interchange format, assembled by hand from
// the byte layout in the applog package doc (header "PGSS" ‖ u16le 2;
// records crc:u32le ‖ type ‖ payload, the CRC-32/IEEE covering type through
// the last byte), with no help from package applog.

func record(typ byte, payload []byte) []byte {
	body := append([]byte{typ}, payload...)
	return append(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(body)), body...)
}

func putRecord(key, value string, ver []byte) []byte {
	p := binary.LittleEndian.AppendUint16(nil, uint16(len(key)))
	p = append(p, key...)
	p = binary.LittleEndian.AppendUint32(p, uint32(len(value)))
	p = append(p, value...)
	p = append(p, byte(len(ver)))
	return record(0x01, append(p, ver...))
}

func cursorRecord(cur []byte) []byte {
	return record(0x03, append([]byte{byte(len(cur))}, cur...))
}

func rev8(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

var snapHeader = []byte{'P', 'G', 'S', 'S', 2, 0}

// The assembler reproduces the golden vectors of the format documentation.
func TestInteropGoldenVectors(t *testing.T) {
	for _, g := range []struct {
		name string
		got  []byte
		hex  string
	}{
		{"header", snapHeader, "504753530200"},
		{"put a=x@1", putRecord("a", "x", rev8(1)), "709a6440010100610100000078080000000000000001"},
		{"cursor 1", cursorRecord(rev8(1)), "fb4162c403080000000000000001"},
		{"cursor none", cursorRecord(nil), "3c41f46a0300"},
	} {
		if h := hex.EncodeToString(g.got); h != g.hex {
			t.Errorf("%s: %s, want %s", g.name, h, g.hex)
		}
	}
}

type refEntry struct {
	key, value string
	ver        []byte
}

// referenceArtifact writes, in dir, an artifact as the reference writes it:
// a compacted fold.snap (one PUT per key in key order, then the cursor) and
// a MANIFEST.json pretty-printed by its serializer, BLAKE3 from the library.
func referenceArtifact(t *testing.T, dir string, entries []refEntry, cursor []byte) []byte {
	t.Helper()
	snap := bytes.Clone(snapHeader)
	for _, e := range entries {
		snap = append(snap, putRecord(e.key, e.value, e.ver)...)
	}
	if cursor != nil {
		snap = append(snap, cursorRecord(cursor)...)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "fold.snap"), snap, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := blake3.Sum256(snap)
	manifest := fmt.Sprintf(`{
  "schema_version": 1,
  "backend": "append-log",
  "backend_version": "2",
  "cursor_hex": "%s",
  "created_at_unix": 1765400000,
  "files": [
    {
      "path": "data/fold.snap",
      "size": %d,
      "blake3": "%s"
    }
  ]
}`, hex.EncodeToString(cursor), len(snap), hex.EncodeToString(sum[:]))
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST.json"), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	return snap
}

// An artifact assembled by hand in the reference format imports, verifies
// and opens with its state; exporting the imported fold writes the very
// same fold.snap bytes, so artifacts move both ways.
func TestInteropReferenceArtifactImports(t *testing.T) {
	ten := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	entries := []refEntry{ // ascending byte order of key
		{"lock", "", rev8(8)},
		{"node.a", "v1b", rev8(4)},
		{"node.c", "v3", rev8(6)},
		{"svc.x", "sx", ten},
		{"svc.y", string(bytes.Repeat([]byte{0xab}, 1000)), rev8(7)},
		{"zoë", "ünïcode", rev8(41)},
	}
	art := filepath.Join(t.TempDir(), "ref")
	snap := referenceArtifact(t, art, entries, rev8(42))

	m, err := artifact.Verify(art, applog.ArtifactBackend{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if m.Cursor != slipstream.CursorFromUint64(42) || m.Backend != "append-log" || m.BackendVersion != "2" {
		t.Fatalf("manifest %+v", m)
	}
	fold := filepath.Join(t.TempDir(), "fold")
	if _, err := artifact.Import(art, fold, applog.ArtifactBackend{}); err != nil {
		t.Fatalf("Import: %v", err)
	}
	s := openAppLog(t, fold)
	defer s.Close()
	if s.Cursor() != slipstream.CursorFromUint64(42) {
		t.Fatalf("cursor %v, want 42", s.Cursor())
	}
	var got []refEntry
	err = s.ForEachInRange("", func(e slipstream.Entry) error {
		got = append(got, refEntry{e.Key, string(e.Value), e.Version.Bytes()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("imported %d entries, want %d: %q", len(got), len(entries), got)
	}
	for i := range entries {
		if got[i].key != entries[i].key || got[i].value != entries[i].value || !bytes.Equal(got[i].ver, entries[i].ver) {
			t.Errorf("entry %d = %q, want %q", i, got[i], entries[i])
		}
	}

	// The other way: our export of the same state is the reference's bytes.
	out := filepath.Join(t.TempDir(), "out")
	em, err := artifact.ExportStore(s, out)
	if err != nil {
		t.Fatal(err)
	}
	exported, err := os.ReadFile(filepath.Join(out, "data", "fold.snap"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(exported, snap) {
		t.Fatalf("exported fold.snap differs from the reference bytes:\n%x\nwant\n%x", exported, snap)
	}
	if len(em.Files) != 1 || em.Files[0] != m.Files[0] || em.Cursor != m.Cursor || em.Backend != m.Backend || em.BackendVersion != m.BackendVersion {
		t.Fatalf("exported manifest %+v, reference %+v", em, m)
	}
}

// The golden 42-byte fold ({a: x@1} at cursor 1) and a never-applied fold
// (header only, cursor none) import.
func TestInteropSmallestArtifacts(t *testing.T) {
	for _, tt := range []struct {
		name    string
		entries []refEntry
		cursor  []byte
		size    int
	}{
		{"golden", []refEntry{{"a", "x", rev8(1)}}, rev8(1), 42},
		{"empty", nil, nil, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			art := filepath.Join(t.TempDir(), "ref")
			if snap := referenceArtifact(t, art, tt.entries, tt.cursor); len(snap) != tt.size {
				t.Fatalf("fold.snap is %d bytes, want %d", len(snap), tt.size)
			}
			fold := filepath.Join(t.TempDir(), "fold")
			m, err := artifact.Import(art, fold, applog.ArtifactBackend{})
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			s := openAppLog(t, fold)
			defer s.Close()
			if n, err := s.Len(); err != nil || s.Cursor() != m.Cursor || n != len(tt.entries) {
				t.Fatalf("fold at %v with %d keys (%v); manifest cursor %v", s.Cursor(), n, err, m.Cursor)
			}
		})
	}
}
