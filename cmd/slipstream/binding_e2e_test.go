package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// The fold's binding to its bucket (binding.go) through the binary: a fold
// of one bucket is never mirrored, imported or bootstrapped into another.

// foldFiles returns every file under dir with its content.
func foldFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// hasBucket reports whether the server at url has the bucket.
func hasBucket(t *testing.T, url, name string) bool {
	t.Helper()
	_, err := natskv.Open(t.Context(), natstest.Connect(t, url), natskv.Config{Bucket: name, NoCreate: true})
	if errors.Is(err, natskv.ErrBucketNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// mirrorUntilSynced runs a mirror of bucket b into fold until it has caught
// up with the bucket, and stops it.
func mirrorUntilSynced(t *testing.T, url string, b *natskv.Bucket, fold string, args ...string) {
	t.Helper()
	m := startProc(t, append([]string{"mirror", "-bucket", b.Name(), "-fold", fold, "-nats", url,
		"-http", "127.0.0.1:0", "-batch-window", "1ms"}, args...)...)
	waitCaughtUp(t, m.httpBase(t), b)
	m.stop(t)
}

// waitExit waits for a process that must fail and returns its stderr.
func waitExit(t *testing.T, p *proc) string {
	t.Helper()
	err := p.wait(t, 60*time.Second)
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1; stderr:\n%s", err, p.stderr.String())
	}
	return p.stderr.String()
}

// Bug 1: a fold of "demo" mirrored with -bucket other (a typo) is refused
// before anything is touched: its files stay byte for byte, and "other" is
// not created even with -create-bucket. A different -prefix is refused too.
func TestBinding_FoldOfOtherBucketRefused(t *testing.T) {
	binary(t)
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			srv := natstest.Start(t)
			demo := openBucket(t, srv.URL(), natskv.Config{Bucket: "demo"})
			for i := range 20 {
				put(t, demo, fmt.Sprintf("k.%02d", i), fmt.Sprint("v", i))
			}
			fold := filepath.Join(t.TempDir(), "fold")
			mirrorUntilSynced(t, srv.URL(), demo, fold, "-backend", backend)
			before := foldFiles(t, fold)
			if _, ok := before[bindingFile]; !ok {
				t.Fatalf("no %s in the fold after a mirror: %v", bindingFile, keysOf(before))
			}

			stderr := waitExit(t, startProc(t, "mirror", "-bucket", "other", "-fold", fold, "-nats", srv.URL(), "-create-bucket"))
			if !strings.Contains(stderr, `fold `+fold+` mirrors bucket "demo" (scope: all keys)`) || !strings.Contains(stderr, "use another -fold") {
				t.Fatalf("stderr does not name the fold's bucket:\n%s", stderr)
			}
			stderr = waitExit(t, startProc(t, "mirror", "-bucket", "demo", "-prefix", "k.", "-fold", fold, "-nats", srv.URL()))
			if !strings.Contains(stderr, `not bucket "demo" (scope: prefixes k.)`) {
				t.Fatalf("a mirror of another scope: stderr\n%s", stderr)
			}
			// Neither did the refused offline audit touch it.
			if _, stderr, code := runBin(t, "", "audit", "-bucket", "other", "-fold", fold, "-nats", srv.URL()); code != 1 ||
				!strings.Contains(stderr, `mirrors bucket "demo"`) {
				t.Fatalf("audit of another bucket: exit %d\n%s", code, stderr)
			}
			after := foldFiles(t, fold)
			if len(after) != len(before) {
				t.Fatalf("fold files changed: %v → %v", keysOf(before), keysOf(after))
			}
			for name, b := range before {
				if after[name] != b {
					t.Fatalf("fold file %s changed", name)
				}
			}
			if hasBucket(t, srv.URL(), "other") {
				t.Fatal(`the refused mirror created bucket "other"`)
			}
			// The right bucket still mirrors it.
			put(t, demo, "k.new", "new")
			mirrorUntilSynced(t, srv.URL(), demo, fold)
		})
	}
}

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// A mirror given a server (-nats) never creates the bucket unless asked:
// a missing bucket is an error naming bucket and server; -create-bucket
// creates it; the bucket flags need -create-bucket.
func TestMirror_RemoteBucketCreatedOnlyWhenAsked(t *testing.T) {
	binary(t)
	srv := natstest.Start(t)
	dir := t.TempDir()
	stderr := waitExit(t, startProc(t, "mirror", "-bucket", "missing", "-fold", filepath.Join(dir, "a"), "-nats", srv.URL()))
	if !strings.Contains(stderr, `bucket "missing" on `+srv.URL()) || !strings.Contains(stderr, "-create-bucket") {
		t.Fatalf("stderr does not name bucket and server:\n%s", stderr)
	}
	if hasBucket(t, srv.URL(), "missing") {
		t.Fatal("the mirror created the bucket without -create-bucket")
	}
	if _, stderr, code := runBin(t, "", "mirror", "-bucket", "missing", "-fold", filepath.Join(dir, "b"), "-nats", srv.URL(), "-history", "5"); code != 2 ||
		!strings.Contains(stderr, "-history configures a bucket the mirror creates: add -create-bucket") {
		t.Fatalf("-history without -create-bucket: exit %d\n%s", code, stderr)
	}
	m := startProc(t, "mirror", "-bucket", "missing", "-fold", filepath.Join(dir, "c"), "-nats", srv.URL(),
		"-create-bucket", "-history", "5", "-http", "127.0.0.1:0")
	base := m.httpBase(t)
	poll.Until(t, 30*time.Second, func() (bool, string) {
		code, body, _ := httpGet(t, base+"/readyz")
		return code == 200, fmt.Sprintf("readyz %d %s", code, body)
	})
	m.stop(t)
	b := openBucket(t, srv.URL(), natskv.Config{Bucket: "missing", NoCreate: true})
	if st, err := b.Status(t.Context()); err != nil || st.History != 5 {
		t.Fatalf("created bucket: %+v %v", st, err)
	}
}

// exportDemo mirrors a bucket "demo" of n keys, stops, and exports the fold
// into an artifact; it returns the bucket and the artifact.
func exportDemo(t *testing.T, url string, n int) (*natskv.Bucket, string) {
	t.Helper()
	demo := openBucket(t, url, natskv.Config{Bucket: "demo"})
	for i := range n {
		put(t, demo, fmt.Sprintf("demo.%02d", i), fmt.Sprint("d", i))
	}
	fold := filepath.Join(t.TempDir(), "demo")
	mirrorUntilSynced(t, url, demo, fold)
	art := filepath.Join(t.TempDir(), "art")
	mustBin(t, "", "export", "-fold", fold, "-out", art)
	return demo, art
}

// Bug 2, import: an imported fold of "demo" mirrored as "other" is refused
// (its newest entries are not what "other" holds at their revisions).
func TestBinding_ImportedFoldOfOtherBucketRefused(t *testing.T) {
	binary(t)
	srv := natstest.Start(t)
	_, art := exportDemo(t, srv.URL(), 12)
	other := openBucket(t, srv.URL(), natskv.Config{Bucket: "other"})
	for i := range 30 {
		put(t, other, fmt.Sprintf("other.%02d", i), fmt.Sprint("o", i))
	}
	fold := filepath.Join(t.TempDir(), "imported")
	mustBin(t, "", "import", "-artifact", art, "-fold", fold)
	stderr := waitExit(t, startProc(t, "mirror", "-bucket", "other", "-fold", fold, "-nats", srv.URL(), "-http", "127.0.0.1:0"))
	if !strings.Contains(stderr, `(no binding) is not a fold of bucket "other"`) || !strings.Contains(stderr, "use another -fold") {
		t.Fatalf("stderr:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(fold, bindingFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused fold was bound: %v", err)
	}
}

// An imported fold of the right bucket resumes, and is reported ready only
// once the audit has verified it; the binding is written then. (That an
// unbound fold is not ready before: TestBinding_ReadyOnlyWhenBound.)
func TestBinding_ImportedFoldVerifiedThenBound(t *testing.T) {
	binary(t)
	srv := natstest.Start(t)
	demo, art := exportDemo(t, srv.URL(), 12)
	put(t, demo, "demo.after", "a")
	fold := filepath.Join(t.TempDir(), "imported")
	mustBin(t, "", "import", "-artifact", art, "-fold", fold)
	m := startProc(t, "mirror", "-bucket", "demo", "-fold", fold, "-nats", srv.URL(), "-http", "127.0.0.1:0")
	base := m.httpBase(t)
	var st statusDoc
	poll.Until(t, 60*time.Second, func() (bool, string) {
		var ok bool
		st, ok = getStatus(base)
		return ok && st.Ready, fmt.Sprintf("status %+v", st)
	})
	// Ready implies verified and bound: the binding is written before the
	// fold is reported ready.
	if !st.Verified || st.State != stateSynced || st.Verifying != "" {
		t.Fatalf("ready but status %+v", st)
	}
	b, err := readBinding(fold)
	if err != nil || b == nil || b.Bucket != "demo" {
		t.Fatalf("binding after verification: %+v %v", b, err)
	}
	out := m.stderr.String()
	adopt := strings.Index(out, "fold has no binding")
	equal := strings.Index(out, "audit: the fold equals the bucket")
	bound := strings.Index(out, "fold verified against the bucket; bound to it")
	if adopt < 0 || equal < adopt || bound < equal {
		t.Fatalf("want adoption, audit, binding in that order; log:\n%s", out)
	}
	if d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), demo)); d != "" {
		t.Fatalf("fold ≠ bucket: %s", d)
	}
	m.stop(t)
}

// A fold made before bindings existed (no sidecar) is adopted: compared,
// resumed from its cursor (not resynced), verified, then bound.
func TestBinding_OldFoldAdopted(t *testing.T) {
	binary(t)
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			srv := natstest.Start(t)
			b := openBucket(t, srv.URL(), natskv.Config{Bucket: "legacy"})
			for i := range 10 {
				put(t, b, fmt.Sprintf("k.%d", i), "v")
			}
			fold := filepath.Join(t.TempDir(), "fold")
			mirrorUntilSynced(t, srv.URL(), b, fold, "-backend", backend)
			if err := os.Remove(filepath.Join(fold, bindingFile)); err != nil {
				t.Fatal(err)
			}
			if got := mustBin(t, "", "stat", "-fold", fold); !strings.Contains(got, "bucket:   none recorded") {
				t.Fatalf("stat of a fold without a binding:\n%s", got)
			}
			cursor := lastSeq(t, b)
			put(t, b, "k.new", "new")
			m := startProc(t, "mirror", "-bucket", "legacy", "-fold", fold, "-nats", srv.URL(), "-http", "127.0.0.1:0")
			base := m.httpBase(t)
			poll.Until(t, 60*time.Second, func() (bool, string) {
				code, body, _ := httpGet(t, base+"/readyz")
				return code == 200, fmt.Sprintf("readyz %d %s", code, body)
			})
			if got := m.logValue(t, "follower resuming", "cursor"); got != fmt.Sprint(cursor) {
				t.Fatalf("resumed from %s, want the fold's cursor %d", got, cursor)
			}
			if bd, err := readBinding(fold); err != nil || bd == nil || bd.Bucket != "legacy" {
				t.Fatalf("binding: %+v %v", bd, err)
			}
			if st, _ := getStatus(base); st.Resyncs != 0 {
				t.Fatalf("the adopted fold was resynced: %+v", st)
			}
			m.stop(t)
			if got := mustBin(t, "", "stat", "-fold", fold); !strings.Contains(got, "bucket:   legacy (all keys)") {
				t.Fatalf("stat of the bound fold:\n%s", got)
			}
		})
	}
}

// Bug 2, bootstrap: a node of "other" told to bootstrap from "demo"'s
// artifact falls back to a fresh fold, says why, and ends equal to its own
// bucket.
func TestFleet_BootstrapFromOtherBucketFallsBack(t *testing.T) {
	binary(t)
	srv := natstest.Start(t)
	demo := openBucket(t, srv.URL(), natskv.Config{Bucket: "demo"})
	ptr := newFleetPointer(t, srv.URL())
	dir := t.TempDir()
	a := startProc(t, "mirror", "-bucket", "demo", "-fold", filepath.Join(dir, "a"), "-nats", srv.URL(),
		"-http", "127.0.0.1:0", "-batch-window", "1ms", "-export-to", fleetStoreURL, "-export-every", "1s")
	a.httpBase(t)
	var last uint64
	for i := range 10 {
		last = put(t, demo, fmt.Sprintf("demo.%d", i), fmt.Sprint("d", i))
	}
	cursor := ptr.waitPointer(t, "demo", last)
	a.stop(t)

	// "other" holds more revisions than the artifact's cursor, so only
	// the comparison of the content can tell the artifact is not its own.
	other := openBucket(t, srv.URL(), natskv.Config{Bucket: "other"})
	for i := range int(cursor) + 5 {
		put(t, other, fmt.Sprintf("other.%02d", i), fmt.Sprint("o", i))
	}
	foldB := filepath.Join(dir, "b")
	bp := startProc(t, "mirror", "-bucket", "other", "-fold", foldB, "-nats", srv.URL(), "-http", "127.0.0.1:0",
		"-batch-window", "1ms", "-bootstrap-from", fleetStoreURL, "-bootstrap-key", "demo")
	base := bp.httpBase(t)
	st := waitCaughtUp(t, base, other)
	if st.Fleet == nil || st.Fleet.Bootstrap == nil || st.Fleet.Bootstrap.Last == nil ||
		st.Fleet.Bootstrap.Last.Outcome != bootFallback || !strings.Contains(st.Fleet.Bootstrap.Last.Message, "not a fold of this bucket") {
		t.Fatalf("bootstrap status %+v, want a fallback naming the wrong bucket\n%s", st.Fleet, bp.stderr.String())
	}
	if d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), other)); d != "" {
		t.Fatalf("node ≠ its bucket: %s", d)
	}
	if code, _, _ := httpGet(t, base+"/v1/kv/demo.0"); code != 404 {
		t.Fatalf("demo.0 is served by the node of other (%d)", code)
	}
	if !st.Ready {
		t.Fatalf("synced but not ready: %+v", st)
	}
	if bd, err := readBinding(foldB); err != nil || bd == nil || bd.Bucket != "other" {
		t.Fatalf("binding of the fresh fold: %+v %v", bd, err)
	}
	bp.stop(t)
}
