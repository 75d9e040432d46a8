package objstore_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/mem"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

var update = flag.Bool("update", false, "rewrite the untar fuzz seeds in ../artifact/testdata/tar")

// testPointer is a valid manifest used as the pointer of hand-made payloads.
func testPointer(t testing.TB) []byte {
	t.Helper()
	m := &artifact.Manifest{
		SchemaVersion:  artifact.SchemaVersion,
		Backend:        "append-log",
		BackendVersion: "2",
		Cursor:         slipstream.CursorFromUint64(3),
		Files:          []artifact.File{{Path: "data/fold.snap", Size: 4, BLAKE3: "0000000000000000000000000000000000000000000000000000000000000000"}},
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entry is one tar entry of a hand-made archive.
type entry struct {
	name     string
	typ      byte
	body     string
	linkname string
}

func makeTar(t testing.TB, format tar.Format, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o777, Linkname: e.linkname, Format: format}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if e.body != "" {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hostile returns the refused archives, each with a valid embedded manifest
// first, so only the hostile entry can be the reason for the refusal.
func hostile(t testing.TB, pointer []byte) map[string][]byte {
	man := entry{name: "MANIFEST.json", typ: tar.TypeReg, body: string(pointer)}
	dir := entry{name: "data/", typ: tar.TypeDir}
	reg := func(name string) entry { return entry{name: name, typ: tar.TypeReg, body: "evil"} }
	cases := map[string][]byte{
		"dotdot":          makeTar(t, tar.FormatPAX, man, dir, reg("../evil")),
		"dotdot-nested":   makeTar(t, tar.FormatPAX, man, dir, reg("data/../../evil")),
		"dotdot-dir":      makeTar(t, tar.FormatPAX, man, entry{name: "../evil/", typ: tar.TypeDir}),
		"absolute":        makeTar(t, tar.FormatPAX, man, dir, reg("/tmp/slipstream-evil")),
		"backslash":       makeTar(t, tar.FormatPAX, man, dir, reg(`data\..\..\evil`)),
		"symlink":         makeTar(t, tar.FormatPAX, man, dir, entry{name: "data/link", typ: tar.TypeSymlink, linkname: "/etc"}),
		"symlink-through": makeTar(t, tar.FormatPAX, man, dir, entry{name: "data/link", typ: tar.TypeSymlink, linkname: ".."}, reg("data/link/evil")),
		"hardlink":        makeTar(t, tar.FormatPAX, man, dir, entry{name: "data/hl", typ: tar.TypeLink, linkname: "/etc/passwd"}),
		"char-device":     makeTar(t, tar.FormatPAX, man, dir, entry{name: "data/null", typ: tar.TypeChar}),
		"block-device":    makeTar(t, tar.FormatPAX, man, dir, entry{name: "data/sda", typ: tar.TypeBlock}),
		"fifo":            makeTar(t, tar.FormatPAX, man, dir, entry{name: "data/fifo", typ: tar.TypeFifo}),
		"duplicate":       makeTar(t, tar.FormatPAX, man, dir, reg("data/fold.snap"), reg("data/fold.snap")),
		"file-over-dir":   makeTar(t, tar.FormatPAX, man, reg("data"), reg("data/fold.snap")),
		"no-manifest":     makeTar(t, tar.FormatPAX, dir, reg("data/fold.snap")),
		"other-manifest":  makeTar(t, tar.FormatPAX, entry{name: "MANIFEST.json", typ: tar.TypeReg, body: string(pointer) + " "}, dir, reg("data/fold.snap")),
		"manifest-dir":    makeTar(t, tar.FormatPAX, entry{name: "MANIFEST.json/", typ: tar.TypeDir}, dir),
		"garbage":         []byte("this is not a tar archive, not even close; it is just text padded out to a block" + string(make([]byte, 512))),
	}
	whole := makeTar(t, tar.FormatPAX, man, dir, entry{name: "data/fold.snap", typ: tar.TypeReg, body: string(make([]byte, 3000))})
	cases["truncated"] = whole[:len(whole)-1024-2000] // inside fold.snap's body
	return cases
}

// accepted returns archives shaped like the reference (Rust) writer's: a
// "./" root entry, "./"-prefixed names, GNU headers, files before their
// directories.
func accepted(t testing.TB, pointer []byte) map[string][]byte {
	man := entry{name: "MANIFEST.json", typ: tar.TypeReg, body: string(pointer)}
	return map[string][]byte{
		"reference-gnu": makeTar(t, tar.FormatGNU,
			entry{name: "./", typ: tar.TypeDir},
			entry{name: "./data/fold.snap", typ: tar.TypeReg, body: "snap"},
			entry{name: "./data/", typ: tar.TypeDir},
			entry{name: "./MANIFEST.json", typ: tar.TypeReg, body: string(pointer)}),
		"plain-ustar": makeTar(t, tar.FormatUSTAR, man, entry{name: "data/", typ: tar.TypeDir},
			entry{name: "data/fold.snap", typ: tar.TypeReg, body: "snap"}),
	}
}

// publish stores pointer as key's pointer and payload at its content address.
func publish(t testing.TB, s objstore.Store, key string, pointer, payload []byte) {
	t.Helper()
	ctx := context.Background()
	name := objstoretest.PayloadName(key, 3, pointer)
	if err := s.Put(ctx, name, bytes.NewReader(payload), int64(len(payload))); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, objstoretest.PointerName(key), pointer); err != nil {
		t.Fatal(err)
	}
}

func TestDownloadRefusesHostileArchives(t *testing.T) {
	pointer := testPointer(t)
	for name, payload := range hostile(t, pointer) {
		t.Run(name, func(t *testing.T) {
			s := mem.New()
			publish(t, s, objstoretest.Key, pointer, payload)
			tr := &objstore.Transport{Store: s, Prefix: objstoretest.Prefix}
			// outer/parent/out: a "../" escape from the stage would land in
			// parent, a "../../" one in outer.
			outer := t.TempDir()
			parent := filepath.Join(outer, "parent")
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := tr.Download(t.Context(), objstoretest.Key, filepath.Join(parent, "out"))
			if !errors.Is(err, slipstream.ErrArtifactInvalid) {
				t.Fatalf("Download: err = %v, want ErrArtifactInvalid", err)
			}
			objstoretest.AssertClean(t, parent)
			objstoretest.AssertClean(t, outer, "parent")
		})
	}
}

func TestDownloadAcceptsReferenceArchives(t *testing.T) {
	pointer := testPointer(t)
	for name, payload := range accepted(t, pointer) {
		t.Run(name, func(t *testing.T) {
			s := mem.New()
			publish(t, s, objstoretest.Key, pointer, payload)
			tr := &objstore.Transport{Store: s, Prefix: objstoretest.Prefix}
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			if _, err := tr.Download(t.Context(), objstoretest.Key, out); err != nil {
				t.Fatalf("Download: %v", err)
			}
			objstoretest.AssertClean(t, parent, "out")
			got, err := os.ReadFile(filepath.Join(out, "data", "fold.snap"))
			if err != nil || string(got) != "snap" {
				t.Fatalf("data/fold.snap = %q, %v", got, err)
			}
			for _, p := range []string{"data/fold.snap", "MANIFEST.json"} {
				fi, err := os.Lstat(filepath.Join(out, p))
				if err != nil || fi.Mode() != 0o644 && fi.Mode()&^0o022 != 0o644 {
					t.Errorf("%s: mode %v, %v; want a regular 0644 file (the archive said 0777)", p, fi.Mode(), err)
				}
			}
		})
	}
}

// TestUntarSeeds keeps the untar-*.tar seeds of artifact's FuzzReadTar (the
// one fuzz target of the untar path Download uses) in step with the cases
// above; run with -update to rewrite them.
func TestUntarSeeds(t *testing.T) {
	pointer := testPointer(t)
	all := hostile(t, pointer)
	for k, v := range accepted(t, pointer) {
		all[k] = v
	}
	dir := filepath.Join("..", "artifact", "testdata", "tar")
	for name, b := range all {
		path := filepath.Join(dir, "untar-"+name+".tar")
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s is stale or missing (%v); run go test ./objstore -run TestUntarSeeds -update", path, err)
		}
	}
}
