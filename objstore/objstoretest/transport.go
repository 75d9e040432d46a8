package objstoretest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/objstore"
	"lukechampine.com/blake3"
)

// Prefix is the transport prefix the transport suite uses.
const Prefix = "fleet/prod"

// Key is the logical key most transport tests publish under.
const Key = "edge/us-east/latest"

// RunTransport runs the transport checks (and the pointer-swap
// sequence on a CAS store) through an objstore.Transport on stores from newStore.
func RunTransport(t *testing.T, newStore NewStore, opts Options) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newStore(t)) })
	t.Run("DoctoredPointer", func(t *testing.T) { testDoctoredPointer(t, newStore(t)) })
	t.Run("MissingRemote", func(t *testing.T) { testMissingRemote(t, newStore(t)) })
	t.Run("OversizedPointer", func(t *testing.T) { testOversizedPointer(t, newStore(t)) })
	t.Run("DestChecksBeforeRemoteIO", func(t *testing.T) { testDestChecks(t, newStore(t)) })
	t.Run("UploadRefusals", func(t *testing.T) { testUploadRefusals(t, newStore(t)) })
	t.Run("TamperedPayloadShipsImportRefuses", func(t *testing.T) { testTampered(t, newStore(t)) })
	t.Run("FailsClosedWithoutOptIn", func(t *testing.T) {
		s := newStore(t)
		if !opts.NoReplace {
			s = NoReplace(s)
		}
		testFailClosed(t, s)
	})
	t.Run("PruneCollectsUnreferencedPayloads", func(t *testing.T) { testPrune(t, newStore(t)) })
	t.Run("PruneKeepsWhatItCannotProve", func(t *testing.T) { testPruneKeeps(t, newStore(t), opts) })
	if opts.NoReplace {
		return
	}
	t.Run("PointerSwapRefusesRegression", func(t *testing.T) { testRegression(t, newStore(t)) })
	t.Run("CorruptPointerIsReplaceable", func(t *testing.T) { testCorruptPointer(t, newStore(t)) })
	t.Run("PointerSwapSequence", func(t *testing.T) { testSwapSequence(t, newStore(t)) })
	t.Run("ConcurrentPublishers", func(t *testing.T) { testConcurrentPublishers(t, newStore(t)) })
}

// quiet discards the transport's warnings (the fallback's, prune's).
var quiet = slog.New(slog.DiscardHandler)

func newTransport(s objstore.Store) *objstore.Transport {
	return &objstore.Transport{Store: s, Prefix: Prefix, Logger: quiet}
}

// PointerName is the name of key's pointer under [Prefix].
func PointerName(key string) string { return Prefix + "/" + key + objstore.PointerSuffix }

// PayloadsPrefix is the list prefix of key's payloads under [Prefix].
func PayloadsPrefix(key string) string { return Prefix + "/" + key + objstore.PayloadsSuffix + "/" }

// PayloadName is the content address of the payload whose manifest bytes
// are pointer, computed independently of the transport.
func PayloadName(key string, rank uint64, pointer []byte) string {
	sum := blake3.Sum256(pointer)
	return fmt.Sprintf("%s%016x-%s.tar", PayloadsPrefix(key), rank, hex.EncodeToString(sum[:8]))
}

// Upload publishes dir under key and fails the test on error.
func Upload(t testing.TB, tr *objstore.Transport, key, dir string) *objstore.UploadResult {
	t.Helper()
	res, err := tr.Upload(context.Background(), key, dir)
	if err != nil {
		t.Fatalf("Upload %s: %v", dir, err)
	}
	return res
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pointerBytes returns the stored pointer of key.
func pointerBytes(t testing.TB, s objstore.Store, key string) []byte {
	t.Helper()
	b, _ := mustGet(t, s, PointerName(key))
	return b
}

// AssertClean fails the test if dir holds anything but want: no temp file
// or stage may survive a transport call.
func AssertClean(t testing.TB, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds %v, want exactly %v", dir, got, want)
	}
}

func assertAbsent(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists (err %v), want nothing there", path, err)
	}
}

func wantInvalid(t testing.TB, err error, substr string) {
	t.Helper()
	if !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), substr) {
		t.Fatalf("err = %v, want ErrArtifactInvalid mentioning %q", err, substr)
	}
}

// testRoundTrip: upload a 3-entry append-log artifact, peek, download,
// verify as an import would.
func testRoundTrip(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	tr := newTransport(s)
	src := t.TempDir()
	art := filepath.Join(src, "artifact")
	MakeArtifact(t, art, 3, "a", "1", "b", "2", "c", "3")
	res := Upload(t, tr, Key, art)
	pointer := readFile(t, filepath.Join(art, artifact.ManifestName))
	if res.Outcome != objstore.Published || res.Manifest.Cursor.Rank() != 3 {
		t.Fatalf("Upload = %v at %v, want published at 3", res.Outcome, res.Manifest.Cursor)
	}
	AssertClean(t, src, "artifact")

	// The layout: the pointer is the manifest's bytes; the payload sits at
	// its content address.
	if got := pointerBytes(t, s, Key); !bytes.Equal(got, pointer) {
		t.Fatalf("stored pointer differs from the artifact's MANIFEST.json")
	}
	wantPayload := PayloadName(Key, 3, pointer)
	if res.Payload != wantPayload {
		t.Fatalf("payload %s, want %s", res.Payload, wantPayload)
	}
	listed := names(mustList(t, s, Prefix+"/"))
	if want := []string{PointerName(Key), wantPayload}; !slices.Equal(listed, want) {
		t.Fatalf("objects %v, want %v", listed, want)
	}

	m, err := tr.Manifest(ctx, Key)
	if err != nil {
		t.Fatalf("Manifest: %v", err)
	}
	if m.Cursor.Rank() != 3 || m.Backend != "append-log" {
		t.Fatalf("peek: cursor %v backend %s, want 3 append-log", m.Cursor, m.Backend)
	}

	dst := t.TempDir()
	out := filepath.Join(dst, "out")
	dm, err := tr.Download(ctx, Key, out)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	if dm.Cursor.Rank() != 3 {
		t.Fatalf("Download manifest cursor %v, want 3", dm.Cursor)
	}
	AssertClean(t, dst, "out")
	cur, state := CheckArtifact(t, out)
	if cur.Rank() != 3 || state["b"] != "2" || len(state) != 3 {
		t.Fatalf("downloaded artifact: cursor %v state %v, want 3 with b=2", cur, state)
	}
	if got := readFile(t, filepath.Join(out, artifact.ManifestName)); !bytes.Equal(got, pointer) {
		t.Fatal("downloaded MANIFEST.json differs from the uploaded one")
	}

	// An existing empty directory is an acceptable destination.
	empty := filepath.Join(dst, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Download(ctx, Key, empty); err != nil {
		t.Fatalf("Download into an empty directory: %v", err)
	}
	CheckArtifact(t, empty)
}

// testDoctoredPointer: a pointer rewritten to name cursor 999 names no
// payload, so the download finds nothing and leaves nothing.
func testDoctoredPointer(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	tr := newTransport(s)
	art := filepath.Join(t.TempDir(), "artifact")
	MakeArtifact(t, art, 3, "a", "1")
	Upload(t, tr, Key, art)

	pointer := pointerBytes(t, s, Key)
	doctored := bytes.Replace(pointer, []byte(`"0000000000000003"`), []byte(`"00000000000003e7"`), 1)
	if bytes.Equal(doctored, pointer) {
		t.Fatal("could not find the cursor in the pointer")
	}
	if err := s.Delete(ctx, PointerName(Key)); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, PointerName(Key), doctored); err != nil {
		t.Fatal(err)
	}
	m, err := tr.Manifest(ctx, Key)
	if err != nil || m.Cursor.Rank() != 999 {
		t.Fatalf("peek of the doctored pointer: %v, %v; want cursor 999", m, err)
	}
	dst := t.TempDir()
	_, err = tr.Download(ctx, Key, filepath.Join(dst, "out"))
	wantInvalid(t, err, "not found")
	if errors.Is(err, objstore.ErrNotPublished) {
		t.Fatalf("Download of a doctored pointer: err = %v; a missing payload is not 'nothing published'", err)
	}
	AssertClean(t, dst)
}

// wantNotPublished checks the error of a read of a key without a pointer:
// ErrNotPublished and ErrNotExist, and a message saying nothing was
// published rather than that an artifact is invalid.
func wantNotPublished(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, objstore.ErrNotPublished) || !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotPublished and ErrNotExist", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "no artifact published at never/uploaded") || strings.Contains(msg, "invalid") {
		t.Fatalf("message %q, want \"no artifact published at never/uploaded\" and no \"invalid\"", msg)
	}
}

func testMissingRemote(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	tr := newTransport(s)
	if err := tr.Check(ctx, "never/uploaded"); err != nil {
		t.Fatalf("Check of a key never published: %v; want nil (the store is usable)", err)
	}
	_, err := tr.Manifest(ctx, "never/uploaded")
	wantInvalid(t, err, "not found")
	wantNotPublished(t, err)
	dst := t.TempDir()
	_, err = tr.Download(ctx, "never/uploaded", filepath.Join(dst, "out"))
	wantInvalid(t, err, "not found")
	wantNotPublished(t, err)
	AssertClean(t, dst)
	if n, err := tr.Prune(ctx, "never/uploaded", 0); n != 0 || err != nil {
		t.Fatalf("Prune without a pointer = %d, %v; want 0, nil", n, err)
	}
}

func testOversizedPointer(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	tr := newTransport(s)
	big := bytes.Repeat([]byte(" "), objstore.MaxPointerSize+1)
	if err := s.Create(ctx, PointerName(Key), big); err != nil {
		t.Fatalf("Create oversized pointer: %v", err)
	}
	_, err := tr.Manifest(ctx, Key)
	wantInvalid(t, err, "exceeds")
	dst := t.TempDir()
	_, err = tr.Download(ctx, Key, filepath.Join(dst, "out"))
	wantInvalid(t, err, "exceeds")
	AssertClean(t, dst)

	art := filepath.Join(t.TempDir(), "artifact")
	MakeArtifact(t, art, 3, "a", "1")
	_, err = tr.Upload(ctx, Key, art)
	wantInvalid(t, err, "exceeds")
	if n, err := tr.Prune(ctx, Key, 0); n != 0 || err != nil {
		t.Fatalf("Prune with an oversized pointer = %d, %v; want 0, nil", n, err)
	}
	if got := pointerBytes(t, s, Key); !bytes.Equal(got, big) {
		t.Fatal("the oversized pointer was replaced")
	}
}

// testDestChecks: destination problems are reported before any remote I/O.
func testDestChecks(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	var rec Recorder
	tr := newTransport(rec.Wrap(s))
	dst := t.TempDir()
	full := filepath.Join(dst, "full")
	if err := os.MkdirAll(filepath.Join(full, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dst, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dest, want string }{
		{"artifact-out", "no parent"},
		{full, "not empty"},
		{file, "already exists"},
	} {
		_, err := tr.Download(ctx, Key, c.dest)
		wantInvalid(t, err, c.want)
	}
	if ops := rec.Ops(); len(ops) != 0 {
		t.Fatalf("refused downloads touched the store: %v", ops)
	}
	AssertClean(t, dst, "full", "file")
	if b := readFile(t, file); string(b) != "x" {
		t.Fatal("the destination file was changed")
	}
}

func testUploadRefusals(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	tr := newTransport(s)
	src := t.TempDir()

	_, err := tr.Upload(ctx, Key, filepath.Join(src, "missing"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Upload of a missing artifact: err = %v, want ErrNotExist", err)
	}

	bad := filepath.Join(src, "bad")
	MakeArtifact(t, bad, 3, "a", "1")
	m := readFile(t, filepath.Join(bad, artifact.ManifestName))
	if err := os.WriteFile(filepath.Join(bad, artifact.ManifestName), append(m, []byte(` {"x":1}`)...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = tr.Upload(ctx, Key, bad)
	wantInvalid(t, err, "manifest")

	link := filepath.Join(src, "link")
	MakeArtifact(t, link, 3, "a", "1")
	if err := os.Symlink("/etc/passwd", filepath.Join(link, "data", "evil")); err != nil {
		t.Fatal(err)
	}
	_, err = tr.Upload(ctx, Key, link)
	wantInvalid(t, err, "non-regular")

	good := filepath.Join(src, "good")
	MakeArtifact(t, good, 3, "a", "1")
	for _, key := range []string{"", "/", "../x", "a/./b", "a b", "ключ"} {
		if _, err := tr.Upload(ctx, key, good); !errors.Is(err, slipstream.ErrInvalidKey) {
			t.Errorf("Upload with key %q: err = %v, want ErrInvalidKey", key, err)
		}
	}
	if got := mustList(t, s, ""); len(got) != 0 {
		t.Fatalf("refused uploads left objects: %v", names(got))
	}
	AssertClean(t, src, "bad", "link", "good")
}

// testTampered: upload checks only the manifest, so a payload file changed
// after export ships and downloads; import (the trust boundary) refuses it.
func testTampered(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	tr := newTransport(s)
	art := filepath.Join(t.TempDir(), "a3")
	MakeArtifact(t, art, 3, "a", "1", "b", "2")
	snap := filepath.Join(art, artifact.DataDir, applog.FileName)
	b := readFile(t, snap)
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(snap, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := Upload(t, tr, Key, art); res.Outcome != objstore.Published {
		t.Fatalf("upload of a tampered artifact = %v, want published", res.Outcome)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := tr.Download(ctx, Key, out); err != nil {
		t.Fatalf("download of a tampered artifact: %v", err)
	}
	parent := t.TempDir()
	_, err := artifact.Import(out, filepath.Join(parent, "fold"), applog.ArtifactBackend{})
	wantInvalid(t, err, "")
	AssertClean(t, parent)
}

// testFailClosed runs on a store whose Replace is not implemented.
func testFailClosed(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	tr := newTransport(s)
	src := t.TempDir()
	a3, a5 := filepath.Join(src, "a3"), filepath.Join(src, "a5")
	MakeArtifact(t, a3, 3, "a", "1")
	MakeArtifact(t, a5, 5, "a", "1", "b", "2")

	if res := Upload(t, tr, Key, a3); res.Outcome != objstore.Published {
		t.Fatalf("first publish = %v, want published (create-only suffices)", res.Outcome)
	}
	_, err := tr.Upload(ctx, Key, a5)
	if !errors.Is(err, slipstream.ErrOperationFailed) || !errors.Is(err, objstore.ErrNotImplemented) ||
		!strings.Contains(err.Error(), "NonAtomicPointerFallback") {
		t.Fatalf("forward publish without CAS: err = %v, want a backend error naming NonAtomicPointerFallback", err)
	}
	if got := pointerBytes(t, s, Key); !bytes.Equal(got, readFile(t, filepath.Join(a3, artifact.ManifestName))) {
		t.Fatal("the failed publish changed the pointer")
	}

	tr.NonAtomicPointerFallback = true
	if res := Upload(t, tr, Key, a5); res.Outcome != objstore.Published {
		t.Fatalf("publish with the opt-in = %v, want published", res.Outcome)
	}
	if got := pointerBytes(t, s, Key); !bytes.Equal(got, readFile(t, filepath.Join(a5, artifact.ManifestName))) {
		t.Fatal("the opt-in publish did not move the pointer")
	}
	res := Upload(t, tr, Key, a3)
	if res.Outcome != objstore.Superseded || res.Remote.Rank() != 5 {
		t.Fatalf("older publish with the opt-in = %v (remote %v), want superseded by 5", res.Outcome, res.Remote)
	}
}

// testPrune: with the opt-in (so it also runs on stores without CAS), two
// payloads; a grace of an hour keeps both, no grace deletes the old one.
func testPrune(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	tr := newTransport(s)
	tr.NonAtomicPointerFallback = true
	src := t.TempDir()
	a3, a5 := filepath.Join(src, "a3"), filepath.Join(src, "a5")
	MakeArtifact(t, a3, 3, "a", "1")
	MakeArtifact(t, a5, 5, "a", "1", "b", "2")
	Upload(t, tr, Key, a3)
	Upload(t, tr, Key, a5)
	if got := mustList(t, s, PayloadsPrefix(Key)); len(got) != 2 {
		t.Fatalf("payloads %v, want 2", names(got))
	}
	if n, err := tr.Prune(ctx, Key, time.Hour); n != 0 || err != nil {
		t.Fatalf("Prune(1h) = %d, %v; want 0, nil", n, err)
	}
	if n, err := tr.Prune(ctx, Key, 0); n != 1 || err != nil {
		t.Fatalf("Prune(0) = %d, %v; want 1, nil", n, err)
	}
	keep := PayloadName(Key, 5, readFile(t, filepath.Join(a5, artifact.ManifestName)))
	if got := names(mustList(t, s, PayloadsPrefix(Key))); !slices.Equal(got, []string{keep}) {
		t.Fatalf("after prune payloads %v, want [%s]", got, keep)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := tr.Download(ctx, Key, out); err != nil {
		t.Fatalf("Download after prune: %v", err)
	}
	if cur, state := CheckArtifact(t, out); cur.Rank() != 5 || state["b"] != "2" {
		t.Fatalf("after prune downloaded cursor %v state %v", cur, state)
	}
}

// testPruneKeeps: prune keeps higher-ranked payloads, objects whose names do
// not parse, other keys' payloads (even of a key that extends this key's
// payload directory name), and everything when the pointer is unreadable.
func testPruneKeeps(t *testing.T, s objstore.Store, opts Options) {
	ctx := t.Context()
	tr := newTransport(s)
	tr.NonAtomicPointerFallback = true
	src := t.TempDir()
	a3, a5, a9 := filepath.Join(src, "a3"), filepath.Join(src, "a5"), filepath.Join(src, "a9")
	MakeArtifact(t, a3, 3, "a", "1")
	MakeArtifact(t, a5, 5, "a", "1", "b", "2")
	MakeArtifact(t, a9, 9, "a", "1", "b", "2", "c", "3")

	const other = Key + ".payloads.x" // its payloads share a name prefix with Key's directory
	Upload(t, tr, other, a3)
	Upload(t, tr, Key, a3)
	Upload(t, tr, Key, a5)
	// A payload of rank 9 whose pointer write failed.
	failing := &objstore.Transport{Store: &Faulty{Store: s, Fail: failPointerWrites}, Prefix: Prefix, Logger: quiet}
	if _, err := failing.Upload(ctx, Key, a9); err == nil {
		t.Fatal("upload with a failing pointer write succeeded")
	}
	junk := PayloadsPrefix(Key) + "not-a-rank.tar"
	mustPut(t, s, junk, []byte("junk"))

	if n, err := tr.Prune(ctx, Key, 0); n != 1 || err != nil {
		t.Fatalf("Prune(0) = %d, %v; want 1 (the rank-3 payload), nil", n, err)
	}
	want := []string{
		PayloadName(Key, 5, readFile(t, filepath.Join(a5, artifact.ManifestName))),
		PayloadName(Key, 9, readFile(t, filepath.Join(a9, artifact.ManifestName))),
		junk,
	}
	slices.Sort(want)
	if got := names(mustList(t, s, PayloadsPrefix(Key))); !slices.Equal(got, want) {
		t.Fatalf("after prune payloads %v, want %v", got, want)
	}
	if _, err := tr.Download(ctx, other, filepath.Join(t.TempDir(), "out")); err != nil {
		t.Fatalf("the other key's artifact is gone: %v", err)
	}

	// An unreadable pointer proves nothing stale.
	if err := s.Delete(ctx, PointerName(Key)); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, PointerName(Key), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	before := names(mustList(t, s, PayloadsPrefix(Key)))
	if n, err := tr.Prune(ctx, Key, 0); n != 0 || err != nil {
		t.Fatalf("Prune with a corrupt pointer = %d, %v; want 0, nil", n, err)
	}
	if got := names(mustList(t, s, PayloadsPrefix(Key))); !slices.Equal(got, before) {
		t.Fatalf("Prune with a corrupt pointer deleted: %v → %v", before, got)
	}
}

// failPointerWrites fails every conditional or unconditional write of a
// pointer object.
func failPointerWrites(op, name string) error {
	if (op == "create" || op == "replace" || op == "put") && strings.HasSuffix(name, objstore.PointerSuffix) {
		return errors.New("injected pointer write failure")
	}
	return nil
}

// testRegression: publish 5, then 3 is superseded and the pointer stays 5;
// republishing 5 is allowed.
func testRegression(t *testing.T, s objstore.Store) {
	tr := newTransport(s)
	src := t.TempDir()
	a3, a5 := filepath.Join(src, "a3"), filepath.Join(src, "a5")
	MakeArtifact(t, a3, 3, "a", "1")
	MakeArtifact(t, a5, 5, "a", "1", "b", "2")
	p5 := readFile(t, filepath.Join(a5, artifact.ManifestName))

	if res := Upload(t, tr, Key, a5); res.Outcome != objstore.Published {
		t.Fatalf("publish 5 = %v", res.Outcome)
	}
	res := Upload(t, tr, Key, a3)
	if res.Outcome != objstore.Superseded || res.Remote.Rank() != 5 || res.Manifest.Cursor.Rank() != 3 {
		t.Fatalf("publish 3 = %v remote %v local %v, want superseded by 5", res.Outcome, res.Remote, res.Manifest.Cursor)
	}
	if got := pointerBytes(t, s, Key); !bytes.Equal(got, p5) {
		t.Fatal("the superseded publish moved the pointer")
	}
	if res := Upload(t, tr, Key, a5); res.Outcome != objstore.Published {
		t.Fatalf("republish 5 = %v, want published", res.Outcome)
	}
	if got := pointerBytes(t, s, Key); !bytes.Equal(got, p5) {
		t.Fatal("republishing 5 changed the pointer's bytes")
	}
}

func testCorruptPointer(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	tr := newTransport(s)
	if err := s.Create(ctx, PointerName(Key), []byte(`{"schema_version": 99}`)); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "a3")
	MakeArtifact(t, art, 3, "a", "1")
	if res := Upload(t, tr, Key, art); res.Outcome != objstore.Published {
		t.Fatalf("publish over a corrupt pointer = %v, want published", res.Outcome)
	}
	if got := pointerBytes(t, s, Key); !bytes.Equal(got, readFile(t, filepath.Join(art, artifact.ManifestName))) {
		t.Fatal("the corrupt pointer was not replaced")
	}
}

// FoldArtifacts writes artifacts at cursors 3, 5, 7, 9 of one fold that puts
// route.<rev> at every odd revision from 3, so the artifact at 9 holds 4
// entries, into dir/a3 … dir/a9, and returns their paths by cursor.
func FoldArtifacts(t testing.TB, dir string) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	var batch []slipstream.Update
	for rev := uint64(3); rev <= 9; rev += 2 {
		batch = append(batch, slipstream.Put(fmt.Sprintf("route.%d", rev), fmt.Appendf(nil, "v%d", rev), slipstream.VersionFromUint64(rev)))
		p := filepath.Join(dir, fmt.Sprintf("a%d", rev))
		MakeArtifactFrom(t, p, batch, slipstream.CursorFromUint64(rev))
		out[rev] = p
	}
	return out
}

// testSwapSequence is the pointer swap on a real CAS store (docs/TRANSPORT.md):
// 5 creates, 3 is superseded, 7 replaces, 9 fails at its pointer write
// (pointer unchanged, the old artifact still downloads), 9 again publishes,
// prune(0) deletes 3, 5 and 7, and 9 downloads with its 4 entries.
func testSwapSequence(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	tr := newTransport(s)
	arts := FoldArtifacts(t, t.TempDir())

	if res := Upload(t, tr, Key, arts[5]); res.Outcome != objstore.Published {
		t.Fatalf("publish 5 = %v", res.Outcome)
	}
	if res := Upload(t, tr, Key, arts[3]); res.Outcome != objstore.Superseded || res.Remote.Rank() != 5 {
		t.Fatalf("publish 3 = %v remote %v, want superseded by 5", res.Outcome, res.Remote)
	}
	if res := Upload(t, tr, Key, arts[7]); res.Outcome != objstore.Published {
		t.Fatalf("publish 7 = %v", res.Outcome)
	}

	var failed sync.Once
	failOnce := &objstore.Transport{Prefix: Prefix, Logger: quiet, Store: &Faulty{Store: s, Fail: func(op, name string) error {
		var err error
		if failPointerWrites(op, name) != nil {
			failed.Do(func() { err = errors.New("injected failure of the next pointer PUT") })
		}
		return err
	}}}
	if _, err := failOnce.Upload(ctx, Key, arts[9]); err == nil {
		t.Fatal("upload of 9 with a failing pointer PUT succeeded")
	}
	p7 := readFile(t, filepath.Join(arts[7], artifact.ManifestName))
	if got := pointerBytes(t, s, Key); !bytes.Equal(got, p7) {
		t.Fatal("the failed pointer PUT changed the pointer")
	}
	window := filepath.Join(t.TempDir(), "window")
	if _, err := tr.Download(ctx, Key, window); err != nil {
		t.Fatalf("download in the window: %v", err)
	}
	if cur, state := CheckArtifact(t, window); cur.Rank() != 7 || len(state) != 3 {
		t.Fatalf("download in the window: cursor %v, %d entries; want 7 and 3", cur, len(state))
	}

	if res, err := failOnce.Upload(ctx, Key, arts[9]); err != nil || res.Outcome != objstore.Published {
		t.Fatalf("re-upload of 9 = %v, %v; want published", res, err)
	}
	if n, err := tr.Prune(ctx, Key, 0); n != 3 || err != nil {
		t.Fatalf("Prune(0) = %d, %v; want 3 (payloads 3, 5 and 7)", n, err)
	}
	p9 := readFile(t, filepath.Join(arts[9], artifact.ManifestName))
	if got := names(mustList(t, s, PayloadsPrefix(Key))); !slices.Equal(got, []string{PayloadName(Key, 9, p9)}) {
		t.Fatalf("after prune payloads %v, want only 9's", got)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := tr.Download(ctx, Key, out); err != nil {
		t.Fatalf("download 9: %v", err)
	}
	if cur, state := CheckArtifact(t, out); cur.Rank() != 9 || len(state) != 4 {
		t.Fatalf("download 9: cursor %v, %d entries; want 9 and 4", cur, len(state))
	}
}

// testConcurrentPublishers: 8 publishers of ranks 1..8 race; the pointer ends
// at 8, every loser saw a strictly newer pointer, nobody errs.
func testConcurrentPublishers(t *testing.T, s objstore.Store) {
	const n = 8
	src := t.TempDir()
	dirs := make([]string, n+1)
	for r := 1; r <= n; r++ {
		dirs[r] = filepath.Join(src, fmt.Sprintf("a%d", r))
		MakeArtifact(t, dirs[r], uint64(r), "k", fmt.Sprint(r))
	}
	results := make([]*objstore.UploadResult, n+1)
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for r := 1; r <= n; r++ {
		wg.Go(func() {
			<-start
			results[r], errs[r] = newTransport(s).Upload(context.Background(), Key, dirs[r])
		})
	}
	close(start)
	wg.Wait()
	for r := 1; r <= n; r++ {
		if errs[r] != nil {
			t.Fatalf("publisher %d: %v", r, errs[r])
		}
		if res := results[r]; res.Outcome == objstore.Superseded && res.Remote.Rank() <= uint64(r) {
			t.Fatalf("publisher %d superseded by %v, which is not newer", r, res.Remote)
		}
	}
	if results[n].Outcome != objstore.Published {
		t.Fatalf("the newest publisher was %v", results[n].Outcome)
	}
	if got := pointerBytes(t, s, Key); !bytes.Equal(got, readFile(t, filepath.Join(dirs[n], artifact.ManifestName))) {
		t.Fatal("the pointer does not name the newest artifact")
	}
}
