package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
)

// runBin runs the built binary to completion.
func runBin(t testing.TB, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = binEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// mustBin runs the binary and requires exit 0.
func mustBin(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	stdout, stderr, code := runBin(t, stdin, args...)
	if code != 0 {
		t.Fatalf("slipstream %v: exit %d\n%s", args, code, stderr)
	}
	return stdout
}

func httpGet(t testing.TB, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// e2eScenario writes with `slipstream kv` against natsURL while the mirror
// runs, reads back over HTTP, stops the mirror, and reads back with `range`,
// `get` and `stat`.
func e2eScenario(t *testing.T, m *proc, natsURL, bucket, fold string) {
	base := m.httpBase(t)
	poll.Until(t, 30*time.Second, func() (bool, string) {
		code, body, _ := httpGet(t, base+"/readyz")
		return code == 200, fmt.Sprintf("readyz %d %s", code, body)
	})
	kv := func(args ...string) string {
		return mustBin(t, "", append([]string{"kv", args[0], "-bucket", bucket, "-nats", natsURL}, args[1:]...)...)
	}
	rev1 := strings.TrimSpace(kv("put", "greeting", "hello"))
	mustBin(t, "value from stdin", "kv", "put", "-bucket", bucket, "-nats", natsURL, "piped")
	kv("put", "doomed", "x")
	kv("put", "purged", "x")
	kv("del", "doomed")
	kv("purge", "purged")
	if got := kv("get", "greeting"); got != "hello" {
		t.Fatalf("kv get = %q", got)
	}
	if got := kv("ls"); got != "greeting\npiped\n" {
		t.Fatalf("kv ls = %q", got)
	}
	if _, stderr, code := runBin(t, "", "kv", "get", "-bucket", bucket, "-nats", natsURL, "doomed"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("kv get of a deleted key: exit %d %q", code, stderr)
	}

	poll.Until(t, 30*time.Second, func() (bool, string) {
		code, body, _ := httpGet(t, base+"/v1/kv/piped")
		return code == 200 && body == "value from stdin", fmt.Sprintf("GET piped: %d %q", code, body)
	})
	poll.Until(t, 30*time.Second, func() (bool, string) {
		code, _, _ := httpGet(t, base+"/v1/kv/purged")
		return code == 404, fmt.Sprintf("GET purged: %d", code)
	})
	code, body, hdr := httpGet(t, base+"/v1/kv/greeting")
	if code != 200 || body != "hello" || hdr.Get(RevisionHeader) != rev1 {
		t.Fatalf("GET greeting: %d %q rev %q, want rev %s", code, body, hdr.Get(RevisionHeader), rev1)
	}
	if code, _, _ := httpGet(t, base+"/v1/kv/doomed"); code != 404 {
		t.Fatalf("GET doomed: %d, want 404", code)
	}
	lines := httpRange(t, base, "")
	if len(lines) != 2 || lines[0].Key != "greeting" || lines[1].Key != "piped" {
		t.Fatalf("GET /v1/kv: %+v", lines)
	}
	st, ok := getStatus(base)
	if !ok || st.State != stateSynced || st.Keys != 2 || st.Cursor != 6 || !st.Connected || st.Lag != 0 {
		t.Fatalf("status %+v", st)
	}
	if code, body, _ := httpGet(t, base+"/metrics"); code != 200 || !strings.Contains(body, "slipstream_applied_cursor 6") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}

	if final := m.stop(t); final != 6 {
		t.Fatalf("final cursor %d, want 6", final)
	}
	out := mustBin(t, "", "range", "-fold", fold)
	want := `{"key":"greeting","value":"aGVsbG8=","revision":1}` + "\n" +
		`{"key":"piped","value":"dmFsdWUgZnJvbSBzdGRpbg==","revision":2}` + "\n"
	if out != want {
		t.Fatalf("range after stop:\n%s\nwant:\n%s", out, want)
	}
	if got := mustBin(t, "", "get", "-fold", fold, "greeting"); got != "hello" {
		t.Fatalf("get after stop = %q", got)
	}
	if got := mustBin(t, "", "stat", "-fold", fold); !strings.Contains(got, "cursor:   6") || !strings.Contains(got, "keys:     2") {
		t.Fatalf("stat after stop:\n%s", got)
	}
}

func TestE2E_ExternalServer(t *testing.T) {
	srv := natstest.Start(t)
	fold := filepath.Join(t.TempDir(), "fold")
	m := startProc(t, "mirror", "-bucket", "e2e", "-fold", fold, "-nats", srv.URL(), "-create-bucket", "-http", "127.0.0.1:0")
	e2eScenario(t, m, srv.URL(), "e2e", fold)
}

// The zero-setup default: no -nats, the mirror embeds the server.
func TestE2E_EmbeddedServer(t *testing.T) {
	dir := t.TempDir()
	fold := filepath.Join(dir, "fold")
	m := startProc(t, "mirror", "-bucket", "demo", "-fold", fold, "-listen", "127.0.0.1:0", "-http", "127.0.0.1:0", "-backend", "pebble")
	natsURL := m.logValue(t, "embedded NATS server started", "url")
	e2eScenario(t, m, natsURL, "demo", fold)
	if got := mustBin(t, "", "stat", "-fold", fold); !strings.Contains(got, "backend:  pebble") {
		t.Fatalf("stat: %s", got)
	}

	// The embedded server keeps its data next to the fold: a restarted
	// mirror resumes with nothing to do, and the bucket is still there.
	m = startProc(t, "mirror", "-bucket", "demo", "-fold", fold, "-listen", "127.0.0.1:0", "-http", "127.0.0.1:0")
	natsURL = m.logValue(t, "embedded NATS server started", "url")
	if store := m.logValue(t, "embedded NATS server started", "store"); store != fold+".nats" {
		t.Errorf("embedded store %s, want %s", store, fold+".nats")
	}
	base := m.httpBase(t)
	poll.Until(t, 30*time.Second, func() (bool, string) {
		st, ok := getStatus(base)
		return ok && st.Ready && st.Cursor == 6 && st.ServerHead == 6, fmt.Sprintf("status %+v", st)
	})
	mustBin(t, "", "kv", "put", "-bucket", "demo", "-nats", natsURL, "later", "v")
	poll.Until(t, 30*time.Second, func() (bool, string) {
		code, body, _ := httpGet(t, base+"/v1/kv/later")
		return code == 200 && body == "v", fmt.Sprintf("GET later: %d", code)
	})
	if final := m.stop(t); final != 7 {
		t.Fatalf("final cursor %d, want 7", final)
	}
}

// Usage errors and failures reach the process's exit status with one line.
func TestE2E_ExitCodes(t *testing.T) {
	dir := t.TempDir()
	checkExitCodes(t, []exitCase{
		{[]string{"version"}, 0, ""},
		{[]string{"mirror", "-h"}, 0, ""},
		{[]string{"mirror", "-nope"}, 2, "flag provided but not defined: -nope"},
		{[]string{"get", "-fold", dir}, 2, "want exactly one KEY"},
		{[]string{"kv", "get", "-bucket", "b", "-nats", "nats://127.0.0.1:1", "k"}, 1, "connection failed"},
		{[]string{"get", "-fold", filepath.Join(dir, "none"), "k"}, 1, "no fold at"},
	})
}

// exitCase is a command line and the exit status and stderr line it must
// give ("" for no stderr at all).
type exitCase struct {
	args []string
	code int
	want string
}

// checkExitCodes runs each case through the built binary.
func checkExitCodes(t *testing.T, cases []exitCase) {
	t.Helper()
	for _, tt := range cases {
		_, stderr, code := runBin(t, "", tt.args...)
		if code != tt.code {
			t.Errorf("%v: exit %d, want %d (%q)", tt.args, code, tt.code, stderr)
		}
		if tt.want == "" {
			if stderr != "" {
				t.Errorf("%v: stderr %q, want none", tt.args, stderr)
			}
			continue
		}
		if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.want) || !strings.HasPrefix(stderr, "slipstream: ") {
			t.Errorf("%v: stderr %q, want one line containing %q", tt.args, stderr, tt.want)
		}
	}
}
