package main

// Fixes found by trying the command as an operator would
// (scripts/operator-*.sh): each test fails if its problem comes back.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/fleet"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

// The sentinels carry their own "slipstream: " prefix; a wrapped chain
// printed them once per level ("publish x: slipstream: operation failed:
// upload: slipstream: operation failed: …"). The line names the program once.
func TestErrorLineNamesTheProgramOnce(t *testing.T) {
	inner := fmt.Errorf("%w: s3 put p/k.tar: api error NoSuchBucket", slipstream.ErrOperationFailed)
	err := fmt.Errorf("publish art to s3://b/p: %w", fmt.Errorf("%w: upload payload p/k.tar: %w", slipstream.ErrOperationFailed, inner))
	got := errorLine(err)
	want := "slipstream: publish art to s3://b/p: operation failed: upload payload p/k.tar: operation failed: s3 put p/k.tar: api error NoSuchBucket"
	if got != want {
		t.Fatalf("errorLine = %q\nwant        %q", got, want)
	}
	if got := errorLine(fmt.Errorf("%w: %q", slipstream.ErrNotFound, "k")); got != `slipstream: key not found: "k"` {
		t.Fatalf("errorLine of a bare sentinel = %q", got)
	}
}

// tamper flips one byte of the artifact's payload file.
func tamper(t *testing.T, art string) {
	t.Helper()
	p := filepath.Join(art, "data", "fold.snap")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// publish used to upload a damaged artifact and move the pointer to it: every
// node bootstrapping from the key then failed at import. It verifies first.
func TestPublishRefusesDamagedArtifact(t *testing.T) {
	root := t.TempDir()
	art, objects := filepath.Join(root, "art"), filepath.Join(root, "objects")
	objstoretest.MakeArtifact(t, art, 4, "a", "1", "b", "2")
	tamper(t, art)

	_, _, err := runMain(t, "", "publish", "-artifact", art, "-to", "file://"+objects, "-key", "edge/latest")
	if !errors.Is(err, slipstream.ErrArtifactInvalid) || exitCode(err) != 1 {
		t.Fatalf("publish of a tampered artifact: %v (exit %d), want an invalid-artifact error, exit 1", err, exitCode(err))
	}
	if line := errorLine(err); !strings.Contains(line, "not published") || !strings.Contains(line, "checksum mismatch") {
		t.Fatalf("error line %q: want it to say the artifact was not published and why", line)
	}
	var files []string
	_ = filepath.WalkDir(objects, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Fatalf("the store holds %v after a refused publish", files)
	}
	if _, _, err := runMain(t, "", "fetch", "-from", "file://"+objects, "-key", "edge/latest", "-peek"); err == nil {
		t.Fatal("a pointer was published for the tampered artifact")
	}
}

// The first answer to a second publish to file:// named a library field
// (Transport.NonAtomicPointerFallback); the operator needs the flag.
func TestPublishFileReplaceNamesTheFlag(t *testing.T) {
	root := t.TempDir()
	a3, a5 := filepath.Join(root, "a3"), filepath.Join(root, "a5")
	objstoretest.MakeArtifact(t, a3, 3, "a", "1")
	objstoretest.MakeArtifact(t, a5, 5, "a", "2")
	store := "file://" + filepath.Join(root, "objects")
	if _, _, err := runMain(t, "", "publish", "-artifact", a3, "-to", store, "-key", "k"); err != nil {
		t.Fatal(err)
	}
	_, _, err := runMain(t, "", "publish", "-artifact", a5, "-to", store, "-key", "k")
	line := errorLine(err)
	if exitCode(err) != 1 || !strings.Contains(line, "rerun with -non-atomic-pointer-fallback") || strings.Contains(line, "Transport.") {
		t.Fatalf("second publish to file://: %q (exit %d), want the flag named, not the library field", line, exitCode(err))
	}
}

// kv get, ls, del and purge created a missing bucket (a 1 GiB one, on
// whatever server -nats named) before answering: a typo left a bucket behind.
func TestKVReadsDoNotCreateTheBucket(t *testing.T) {
	srv := natstest.Start(t)
	for _, args := range [][]string{{"get", "k"}, {"ls"}, {"del", "k"}, {"purge", "k"}} {
		full := append([]string{"kv", args[0], "-bucket", "nosuch", "-nats", srv.URL()}, args[1:]...)
		_, _, err := runMain(t, "", full...)
		if exitCode(err) != 1 || !strings.Contains(errorLine(err), "bucket nosuch does not exist") {
			t.Fatalf("kv %v on a missing bucket: %v (exit %d)", args, err, exitCode(err))
		}
	}
	js, err := jetstream.New(srv.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(t.Context(), "nosuch"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("bucket lookup after the reads: %v, want not found", err)
	}
	// put still creates it (the embedded-server walkthrough relies on it).
	if _, _, err := runMain(t, "", "kv", "put", "-bucket", "nosuch", "-nats", srv.URL(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runMain(t, "", "kv", "get", "-bucket", "nosuch", "-nats", srv.URL(), "k"); err != nil || out != "v" {
		t.Fatalf("kv get after put: %q, %v", out, err)
	}
}

// export --from sent the request (the mirror flushed and exported its whole
// fold) before finding -out occupied.
func TestExportFromRefusesOccupiedOutBeforeTheRequest(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "unexpected", http.StatusInternalServerError)
	}))
	defer srv.Close()
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{out, file} {
		_, _, err := runMain(t, "", "export", "-from", srv.URL, "-out", dst)
		if !errors.Is(err, slipstream.ErrArtifactInvalid) || exitCode(err) != 1 || !strings.Contains(err.Error(), dst) {
			t.Fatalf("export -out %s: %v (exit %d)", dst, err, exitCode(err))
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("the mirror got %d requests for a download that could not land", n)
	}
}

// On a terminal, export --from said nothing while the mirror exported (the
// response starts only then, seconds for a large fold): it now says what it
// waits for, and clears that line.
func TestExportFromTerminalSaysItWaits(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	var stderr bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: new(bytes.Buffer), Stderr: &stderr, StderrIsTerminal: func() bool { return true }}
	err := m.Run(t.Context(), []string{"export", "-from", srv.URL, "-out", filepath.Join(t.TempDir(), "art")})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("export from a 503: %v", err)
	}
	got := stderr.String()
	if !strings.Contains(got, "waiting for "+srv.URL+" to flush and export its fold") || !strings.HasSuffix(got, "\r\033[K") {
		t.Fatalf("terminal output %q: want the waiting line, then cleared", got)
	}
	// Not on a terminal: nothing but the error.
	stderr.Reset()
	m.StderrIsTerminal = nil
	_ = m.Run(t.Context(), []string{"export", "-from", srv.URL, "-out", filepath.Join(t.TempDir(), "art")})
	if stderr.Len() != 0 {
		t.Fatalf("non-terminal output %q, want none", stderr.String())
	}
}

// mirror -export-to file:// without -non-atomic-pointer-fallback published
// once, then failed every later round (a local directory cannot replace the
// pointer conditionally) with a message naming a library field. It is now a
// usage error at start.
func TestMirrorExportToFileNeedsTheFallback(t *testing.T) {
	_, _, err := runMain(t, "", "mirror", "-bucket", "b", "-fold", t.TempDir(), "-export-to", "file:///srv/art", "-export-every", "1m")
	if !errors.As(err, new(*usageError)) || !strings.Contains(errorLine(err), "-export-to file:// needs -non-atomic-pointer-fallback") {
		t.Fatalf("err = %v, want a usage error naming the flag", err)
	}
	set := map[string]bool{"export-to": true, "export-every": true}
	ok := fleetFlags{exportTo: "file:///srv/art", exportEvery: time.Minute, nonAtomic: true}
	if err := ok.validate("b", slipstream.AllKeys(), set); err != nil {
		t.Fatalf("with the fallback: %v", err)
	}
	s3 := fleetFlags{exportTo: "s3://b/p", exportEvery: time.Minute}
	if err := s3.validate("b", slipstream.AllKeys(), set); err != nil {
		t.Fatalf("s3:// needs no fallback: %v", err)
	}
}

// On a terminal the bootstrap announced "import    verifying and installing
// … …" and never closed it: at -log-level warn that stayed the last line on
// screen while the mirror ran, as if the import had hung.
func TestBootProgressClosesTheImportLine(t *testing.T) {
	var term bytes.Buffer
	p := newBootProgress(&term, discardLogger())
	p.update(fleet.Progress{Phase: fleet.PhaseImport, Total: 3 << 20})
	p.update(fleet.Progress{Phase: fleet.PhaseImport, Done: 3 << 20, Total: 3 << 20, Finished: true})
	lines := strings.Split(strings.TrimSuffix(term.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "import    verifying and installing 3.0 MiB") ||
		!strings.HasPrefix(lines[1], "import done: 3.0 MiB in ") {
		t.Fatalf("terminal output %q", term.String())
	}
}

// `slipstream --version` was an unknown command (exit 2).
func TestDashDashVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version"} {
		out, _, err := runMain(t, "", arg)
		if err != nil || !strings.HasPrefix(out, "slipstream ") {
			t.Fatalf("%s: %q, %v", arg, out, err)
		}
	}
}
