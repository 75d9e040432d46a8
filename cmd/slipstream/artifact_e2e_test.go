package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// metricValue scrapes one unlabelled metric from /metrics.
func metricValue(t testing.TB, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func parseSummary(t testing.TB, out string) artifactSummary {
	t.Helper()
	var s artifactSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	return s
}

// A mirror under churn serves /v1/artifact; export --from downloads and
// verifies it; verify and import take it; a second mirror on the imported
// fold resumes from the artifact's cursor, receives exactly the updates
// after it, and ends equal to the bucket.
func TestE2E_ArtifactExportImportResume(t *testing.T) {
	for _, backend := range []string{backendAppLog, backendPebble} {
		t.Run(backend, func(t *testing.T) { artifactScenario(t, backend) })
	}
}

func artifactScenario(t *testing.T, backend string) {
	ctx := t.Context()
	srv := natstest.Start(t)
	nc := srv.Conn(t)
	// History 64 keeps every revision of the churn below (each key is
	// written fewer than 64 times), so a resume after the artifact's
	// cursor receives exactly last-seq minus cursor updates.
	bucket, err := natskv.Open(ctx, nc, natskv.Config{Bucket: "art", History: 64})
	if err != nil {
		t.Fatal(err)
	}
	const keys = 200
	for i := range keys {
		if _, err := bucket.Put(ctx, fmt.Sprintf("k.%03d", i), []byte("seed")); err != nil {
			t.Fatal(err)
		}
	}
	dirA := t.TempDir()
	foldA := filepath.Join(dirA, "fold")
	mA := startProc(t, "mirror", "-bucket", "art", "-fold", foldA, "-nats", srv.URL(), "-http", "127.0.0.1:0",
		"-backend", backend, "-batch-max", "50")
	baseA := mA.httpBase(t)
	waitCaughtUp(t, baseA, bucket)

	// Churn: round-robin puts with a delete every seventh write, until
	// stopped (at most 40 writes per key).
	var writes atomic.Int64
	churnCtx, stopChurn := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; churnCtx.Err() == nil && i < 40*keys; i++ {
			key := fmt.Sprintf("k.%03d", i%keys)
			var err error
			if i%7 == 6 {
				_, err = bucket.Delete(churnCtx, key)
			} else {
				_, err = bucket.Put(churnCtx, key, []byte(fmt.Sprintf("v%d", i)))
			}
			if err != nil && churnCtx.Err() == nil {
				t.Errorf("churn: %v", err)
				return
			}
			writes.Add(1)
		}
	})
	poll.Until(t, 30*time.Second, func() (bool, string) { return writes.Load() > 300, "churn has not started" })

	art := filepath.Join(t.TempDir(), "artifact")
	exported := parseSummary(t, mustBin(t, "", "export", "-from", baseA, "-out", art, "-json"))
	atExport := writes.Load()
	if exported.Cursor < keys || exported.Backend == "" || exported.Files == 0 || exported.Bytes == 0 {
		t.Fatalf("exported %+v", exported)
	}
	// The request's scratch directory beside the fold is gone.
	if des, _ := os.ReadDir(dirA); len(des) != 1 || des[0].Name() != "fold" {
		t.Fatalf("the fold's parent holds %v after the download", des)
	}
	verified := parseSummary(t, mustBin(t, "", "verify", "-json", art))
	if verified.Cursor != exported.Cursor || verified.Backend != exported.Backend || verified.Bytes != exported.Bytes {
		t.Fatalf("verify %+v, export %+v", verified, exported)
	}
	foldB := filepath.Join(t.TempDir(), "fold")
	imported := parseSummary(t, mustBin(t, "", "import", "-artifact", art, "-fold", foldB, "-json"))
	if imported.Cursor != exported.Cursor || imported.Fold != foldB {
		t.Fatalf("import %+v", imported)
	}

	// Keep churning after the export, then stop.
	poll.Until(t, 30*time.Second, func() (bool, string) { return writes.Load() > atExport+300, "churn stalled" })
	stopChurn()
	wg.Wait()
	// A write cut by the cancellation may still land; a last write on the
	// same connection is stored after it, so its revision is the last.
	last, err := bucket.Put(ctx, "end", []byte("end"))
	if err != nil {
		t.Fatal(err)
	}
	if last <= exported.Cursor {
		t.Fatalf("no update after the artifact's cursor %d (last %d)", exported.Cursor, last)
	}
	waitCaughtUp(t, baseA, bucket)
	mA.stop(t)

	// The second node starts from the artifact.
	mB := startProc(t, "mirror", "-bucket", "art", "-fold", foldB, "-nats", srv.URL(), "-http", "127.0.0.1:0")
	if c := mB.logValue(t, "mirror starting", "cursor"); c != strconv.FormatUint(exported.Cursor, 10) {
		t.Fatalf("second mirror starts at cursor %s, want the artifact's %d", c, exported.Cursor)
	}
	baseB := mB.httpBase(t)
	waitCaughtUp(t, baseB, bucket)
	if got, want := uint64(metricValue(t, baseB, "slipstream_updates_total")), last-exported.Cursor; got != want {
		t.Fatalf("second mirror folded %d updates, want exactly the %d after the artifact's cursor %d (store failures %v, restarts %v, resyncs %v, repaired %v)\n%s",
			got, want, exported.Cursor, metricValue(t, baseB, "slipstream_store_failures_total"),
			metricValue(t, baseB, "slipstream_follower_restarts_total"), metricValue(t, baseB, "slipstream_resyncs_total"),
			metricValue(t, baseB, "slipstream_audit_repaired_keys_total"), mB.stderr.String())
	}
	t.Logf("%s: artifact at cursor %d (%d files, %d bytes), bucket last %d; the second mirror folded %d updates",
		backend, exported.Cursor, exported.Files, exported.Bytes, last, last-exported.Cursor)
	if d := diffLines(httpRange(t, baseB, ""), bucketLines(t, ctx, bucket)); d != "" {
		t.Fatalf("second mirror differs from the bucket: %s", d)
	}
	if final := mB.stop(t); final != last {
		t.Fatalf("second mirror stopped at %d, want %d", final, last)
	}

	// A closed fold exports offline too, and a tampered artifact fails
	// verify with the reason.
	art2 := filepath.Join(t.TempDir(), "artifact")
	offline := parseSummary(t, mustBin(t, "", "export", "-fold", foldB, "-out", art2, "-json"))
	if offline.Cursor != last {
		t.Fatalf("offline export %+v, want cursor %d", offline, last)
	}
	m, err := os.ReadFile(filepath.Join(art2, "MANIFEST.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(art2, "MANIFEST.json"), []byte(strings.Replace(string(m), `"cursor_hex": "`, `"cursor_hex": "ff`, 1)), 0o644)
	if _, stderr, code := runBin(t, "", "verify", art2); code != 1 || !strings.Contains(stderr, "invalid artifact") {
		t.Fatalf("verify of a doctored artifact: exit %d %q", code, stderr)
	}
}

// The artifact commands' usage errors exit 2, -h exits 0, failures exit 1,
// each with one line.
func TestE2E_ArtifactCommandExitCodes(t *testing.T) {
	dir := t.TempDir()
	checkExitCodes(t, []exitCase{
		{[]string{"export", "-h"}, 0, ""},
		{[]string{"import", "-h"}, 0, ""},
		{[]string{"verify", "-h"}, 0, ""},
		{[]string{"export", "-fold", dir}, 2, "-out is required"},
		{[]string{"export", "-out", dir}, 2, "exactly one of -fold and -from"},
		{[]string{"export", "-fold", dir, "-from", "http://x", "-out", dir}, 2, "exactly one of -fold and -from"},
		{[]string{"export", "-from", "ftp://x", "-out", filepath.Join(dir, "a")}, 2, "invalid -from"},
		{[]string{"export", "-fold", dir, "-out", filepath.Join(dir, "a"), "-token-file", "t"}, 2, "go with -from"},
		{[]string{"import", "-fold", dir}, 2, "-artifact is required"},
		{[]string{"import", "-artifact", dir}, 2, "-fold is required"},
		{[]string{"verify"}, 2, "want exactly one ARTIFACT"},
		{[]string{"verify", dir}, 1, "no MANIFEST.json"},
		{[]string{"export", "-fold", filepath.Join(dir, "none"), "-out", filepath.Join(dir, "a")}, 1, "no fold at"},
		{[]string{"export", "-from", "http://127.0.0.1:1", "-out", filepath.Join(dir, "a")}, 1, "connection refused"},
		{[]string{"import", "-artifact", dir, "-fold", filepath.Join(dir, "f")}, 1, "no MANIFEST.json"},
	})
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Errorf("failed commands left %v", des)
	}
}
