package artifact_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
)

var update = flag.Bool("update", false, "rewrite testdata/tar seeds")

// appLogArtifact exports a small applog fold and returns the artifact.
func appLogArtifact(t *testing.T) string {
	t.Helper()
	s := openAppLog(t, t.TempDir())
	defer s.Close()
	v := slipstream.VersionFromUint64
	err := s.Apply([]slipstream.Update{
		slipstream.Put("a", []byte("1"), v(1)),
		slipstream.Put("b", bytes.Repeat([]byte("y"), 5000), v(2)),
	}, slipstream.CursorFromUint64(2))
	if err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "art")
	if _, err := artifact.ExportStore(s, art); err != nil {
		t.Fatal(err)
	}
	return art
}

func TestTarRoundTrip(t *testing.T) {
	art := appLogArtifact(t)
	var buf bytes.Buffer
	n, err := artifact.WriteTar(&buf, art)
	if err != nil {
		t.Fatal(err)
	}
	size, err := artifact.TarSize(art)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || size != n {
		t.Fatalf("WriteTar reported %d, wrote %d, TarSize said %d", n, buf.Len(), size)
	}
	// MANIFEST.json comes first.
	if hdr, err := tar.NewReader(bytes.NewReader(buf.Bytes())).Next(); err != nil || hdr.Name != artifact.ManifestName {
		t.Fatalf("first entry %+v, %v", hdr, err)
	}
	parent := t.TempDir()
	dest := filepath.Join(parent, "got")
	m, err := artifact.ReadTar(&buf, dest, applog.ArtifactBackend{})
	if err != nil {
		t.Fatalf("ReadTar: %v", err)
	}
	if m.Cursor != slipstream.CursorFromUint64(2) {
		t.Fatalf("cursor %v", m.Cursor)
	}
	for _, p := range []string{artifact.ManifestName, "data/fold.snap"} {
		a, _ := os.ReadFile(filepath.Join(art, p))
		b, err := os.ReadFile(filepath.Join(dest, p))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs after the round trip: %v", p, err)
		}
	}
	if des, _ := os.ReadDir(parent); len(des) != 1 {
		t.Fatalf("parent holds %v", des)
	}
}

// entry is one entry of a hand-made archive.
type entry struct {
	hdr  tar.Header
	body string
}

func file(name, body string) entry {
	return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: 0o600}, body}
}

func dir(name string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o700}}
}

func archive(t testing.TB, format tar.Format, ents ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		h.Format = format
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// artifactFiles reads the manifest and payload of art.
func artifactFiles(t testing.TB, art string) (manifest, snap string) {
	t.Helper()
	m, err := os.ReadFile(filepath.Join(art, artifact.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.ReadFile(filepath.Join(art, "data", "fold.snap"))
	if err != nil {
		t.Fatal(err)
	}
	return string(m), string(s)
}

// Archives as other writers make them: a "./" root entry, "./" prefixes,
// GNU headers, payload before the manifest.
func TestReadTarAcceptsOtherWriters(t *testing.T) {
	manifest, snap := artifactFiles(t, appLogArtifact(t))
	for name, b := range map[string][]byte{
		"gnu dot-slash": archive(t, tar.FormatGNU, dir("./"), dir("./data/"), file("./data/fold.snap", snap), file("./MANIFEST.json", manifest)),
		"pax no dirs":   archive(t, tar.FormatPAX, file("data/fold.snap", snap), file("MANIFEST.json", manifest)),
		"ustar":         archive(t, tar.FormatUSTAR, file("MANIFEST.json", manifest), dir("data"), file("data/fold.snap", snap)),
	} {
		t.Run(name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "got")
			if _, err := artifact.ReadTar(bytes.NewReader(b), dest, applog.ArtifactBackend{}); err != nil {
				t.Fatalf("ReadTar: %v", err)
			}
			fi, err := os.Stat(filepath.Join(dest, "data", "fold.snap"))
			if err != nil || fi.Mode().Perm() != 0o644 {
				t.Fatalf("unpacked file: %v, %v (archive modes must not apply)", fi, err)
			}
		})
	}
}

func unsafeArchives(t testing.TB, manifest, snap string) map[string][]byte {
	m := file("MANIFEST.json", manifest)
	f := file("data/fold.snap", snap)
	link := func(typ byte, name, target string) entry {
		return entry{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: target, Mode: 0o644}}
	}
	return map[string][]byte{
		"absolute":          archive(t, tar.FormatPAX, m, file("/data/x", "x"), f),
		"dotdot":            archive(t, tar.FormatPAX, m, file("data/../../escape", "x"), f),
		"leading dotdot":    archive(t, tar.FormatPAX, m, file("../escape", "x"), f),
		"backslash":         archive(t, tar.FormatPAX, m, file(`data\x`, "x"), f),
		"outside data":      archive(t, tar.FormatPAX, m, file("etc/passwd", "x"), f),
		"symlink":           archive(t, tar.FormatPAX, m, f, link(tar.TypeSymlink, "data/escape", "/etc/passwd")),
		"hard link":         archive(t, tar.FormatPAX, m, f, link(tar.TypeLink, "data/escape", "data/fold.snap")),
		"char device":       archive(t, tar.FormatPAX, m, f, link(tar.TypeChar, "data/tty", "")),
		"fifo":              archive(t, tar.FormatPAX, m, f, link(tar.TypeFifo, "data/fifo", "")),
		"duplicate":         archive(t, tar.FormatPAX, m, f, f),
		"data is a file":    archive(t, tar.FormatPAX, m, file("data", "x")),
		"file then dir":     archive(t, tar.FormatPAX, m, f, dir("data/fold.snap/")),
		"no manifest":       archive(t, tar.FormatPAX, f),
		"manifest is a dir": archive(t, tar.FormatPAX, dir("MANIFEST.json/"), f),
		"bad manifest":      archive(t, tar.FormatPAX, file("MANIFEST.json", `{"schema_version":1}`), f),
		"tampered payload":  archive(t, tar.FormatPAX, m, file("data/fold.snap", strings.ToUpper(snap))),
		"extra payload":     archive(t, tar.FormatPAX, m, f, file("data/smuggled", "x")),
	}
}

// Unsafe or invalid archives are refused with ErrArtifactInvalid, and
// nothing is left at the destination or beside it.
func TestReadTarRefusesUnsafeArchives(t *testing.T) {
	manifest, snap := artifactFiles(t, appLogArtifact(t))
	for name, b := range unsafeArchives(t, manifest, snap) {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			_, err := artifact.ReadTar(bytes.NewReader(b), filepath.Join(parent, "got"), applog.ArtifactBackend{})
			if !errors.Is(err, slipstream.ErrArtifactInvalid) {
				t.Fatalf("ReadTar = %v; want ErrArtifactInvalid", err)
			}
			if des, _ := os.ReadDir(parent); len(des) != 0 {
				t.Fatalf("parent holds %v after a refusal", des)
			}
		})
	}
}

// A cut stream (the connection dropped) fails and leaves nothing.
func TestReadTarTruncated(t *testing.T) {
	art := appLogArtifact(t)
	var buf bytes.Buffer
	if _, err := artifact.WriteTar(&buf, art); err != nil {
		t.Fatal(err)
	}
	manifest, _ := artifactFiles(t, art)
	afterManifest := 512 + (len(manifest)+511)/512*512 // a cut between entries
	for _, cut := range []int{100, 512 + 200, afterManifest, buf.Len() / 2, buf.Len() - 1024 - 300} {
		parent := t.TempDir()
		_, err := artifact.ReadTar(bytes.NewReader(buf.Bytes()[:cut]), filepath.Join(parent, "got"), applog.ArtifactBackend{})
		if err == nil {
			t.Fatalf("ReadTar of %d of %d bytes succeeded", cut, buf.Len())
		}
		if des, _ := os.ReadDir(parent); len(des) != 0 {
			t.Fatalf("parent holds %v after a cut stream", des)
		}
	}
}

// The fuzz seeds in testdata/tar: good*.tar unpack and verify, the others
// are refused. -update rewrites them.
func TestTarSeeds(t *testing.T) {
	seedDir := filepath.Join("testdata", "tar")
	if *update {
		art := appLogArtifact(t)
		manifest, snap := artifactFiles(t, art)
		var good bytes.Buffer
		if _, err := artifact.WriteTar(&good, art); err != nil {
			t.Fatal(err)
		}
		seeds := map[string][]byte{
			"good.tar":     good.Bytes(),
			"good-gnu.tar": archive(t, tar.FormatGNU, dir("./"), dir("./data/"), file("./data/fold.snap", snap), file("./MANIFEST.json", manifest)),
		}
		for name, b := range unsafeArchives(t, manifest, snap) {
			seeds["bad-"+strings.ReplaceAll(name, " ", "-")+".tar"] = b
		}
		if err := os.MkdirAll(seedDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			if err := os.WriteFile(filepath.Join(seedDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	paths, err := filepath.Glob(filepath.Join(seedDir, "*.tar"))
	if err != nil || len(paths) < 3 {
		t.Fatalf("seeds %v, %v", paths, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = artifact.ReadTar(bytes.NewReader(b), filepath.Join(t.TempDir(), "got"), applog.ArtifactBackend{})
		if good := strings.HasPrefix(filepath.Base(p), "good"); good != (err == nil) {
			t.Errorf("%s: ReadTar = %v", p, err)
		}
	}
}
