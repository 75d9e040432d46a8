package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/mem"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

// s3Fake is an in-process S3 server (gofakes3) with one bucket, "present",
// and a switch that answers every request 403 AccessDenied.
type s3Fake struct {
	url    string
	mu     sync.Mutex
	denied bool
}

// startS3Fake starts the server and points the AWS SDK's default chain (in
// this process and in the binaries it starts) at static test credentials.
func startS3Fake(t *testing.T) *s3Fake {
	t.Helper()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "SECRETTEST", "AWS_SESSION_TOKEN": "",
		"AWS_REGION": "us-east-1", "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_S3": "",
	} {
		t.Setenv(k, v)
	}
	backend := s3mem.New()
	if err := backend.CreateBucket("present"); err != nil {
		t.Fatal(err)
	}
	f := &s3Fake{}
	h := gofakes3.New(backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		denied := f.denied
		f.mu.Unlock()
		if denied {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>R1</RequestId></Error>`)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *s3Fake) deny(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denied = on
}

// flags are the -s3-* flags that reach the fake.
func (f *s3Fake) flags() []string { return []string{"-s3-endpoint", f.url, "-s3-path-style"} }

// TestStoreCommands_ProbeTheStore runs publish, fetch and prune through the
// binary against a bucket that does not exist and against one that refuses
// the credentials: each exits 1 with one short line naming the problem
// (no SDK request ids), before any other work.
func TestStoreCommands_ProbeTheStore(t *testing.T) {
	binary(t)
	f := startS3Fake(t)
	art := filepath.Join(t.TempDir(), "a3")
	objstoretest.MakeArtifact(t, art, 3, "a", "1")
	out := filepath.Join(t.TempDir(), "out")
	commands := func(url string) map[string][]string {
		return map[string][]string{
			"publish":    append([]string{"publish", "-artifact", art, "-to", url, "-key", "edge/k"}, f.flags()...),
			"fetch":      append([]string{"fetch", "-from", url, "-key", "edge/k", "-out", out}, f.flags()...),
			"fetch-peek": append([]string{"fetch", "-from", url, "-key", "edge/k", "-peek"}, f.flags()...),
			"prune":      append([]string{"prune", "-from", url, "-key", "edge/k"}, f.flags()...),
		}
	}
	check := func(t *testing.T, args []string, want string) {
		t.Helper()
		stdout, stderr, code := runBin(t, "", args...)
		if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "RequestID") ||
			strings.Count(strings.TrimSpace(stderr), "\n") != 0 || stdout != "" {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want exit 1 and one line mentioning %q", args, code, stdout, stderr, want)
		}
	}
	for name, args := range commands("s3://missing-bucket/fleet") {
		t.Run("missing bucket/"+name, func(t *testing.T) {
			check(t, args, `slipstream: `+args[0]+`: s3://missing-bucket/fleet: s3 get fleet/edge/k.manifest.json: bucket "missing-bucket" does not exist (NoSuchBucket)`)
		})
	}
	f.deny(true)
	for name, args := range commands("s3://present/fleet") {
		t.Run("access denied/"+name, func(t *testing.T) {
			check(t, args, `access to bucket "present" denied (AccessDenied)`)
		})
	}
	f.deny(false)
	// The same commands on the bucket that exists: the probe passes.
	mustBin(t, "", commands("s3://present/fleet")["publish"]...)
	if got := mustBin(t, "", commands("s3://present/fleet")["fetch-peek"]...); !strings.Contains(got, "cursor 3") {
		t.Fatalf("fetch -peek after publish: %q", got)
	}
	mustBin(t, "", commands("s3://present/fleet")["prune"]...)
}

// TestFetch_NotPublished fetches a key nothing was published under: the
// message says so, naming the key and the store, and does not call it an
// invalid artifact.
func TestFetch_NotPublished(t *testing.T) {
	binary(t)
	f := startS3Fake(t)
	want := "slipstream: no artifact published at never/k under s3://present/fleet (remote artifact object not found: fleet/never/k.manifest.json)\n"
	for _, extra := range [][]string{{"-peek"}, {"-out", filepath.Join(t.TempDir(), "out")}} {
		args := append(append([]string{"fetch", "-from", "s3://present/fleet", "-key", "never/k"}, extra...), f.flags()...)
		_, stderr, code := runBin(t, "", args...)
		if code != 1 || stderr != want {
			t.Fatalf("%v: exit %d, stderr %q; want exit 1 and %q", args, code, stderr, want)
		}
	}
}

// TestMirror_ExportToMissingBucket starts a mirror exporting to a bucket
// that does not exist: it exits 1 at startup with the clear message, instead
// of starting and failing every round.
func TestMirror_ExportToMissingBucket(t *testing.T) {
	binary(t)
	f := startS3Fake(t)
	srv := natstest.Start(t)
	for _, flag := range []string{"-export-to", "-bootstrap-from"} {
		t.Run(flag, func(t *testing.T) {
			args := []string{"mirror", "-bucket", "probe", "-create-bucket", "-fold", filepath.Join(t.TempDir(), "f"), "-nats", srv.URL(),
				flag, "s3://missing-bucket/fleet", "-s3-endpoint", f.url, "-s3-path-style"}
			if flag == "-export-to" {
				args = append(args, "-export-every", "1s")
			}
			p := startProc(t, args...)
			err := p.wait(t, 30*time.Second)
			stderr := p.stderr.String()
			want := fmt.Sprintf(`slipstream: %s: s3://missing-bucket/fleet: s3 get fleet/probe.manifest.json: bucket "missing-bucket" does not exist (NoSuchBucket)`, flag)
			if err == nil || p.cmd.ProcessState.ExitCode() != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "export round") {
				t.Fatalf("mirror %s a missing bucket: %v; stderr:\n%s\nwant exit 1 and %q", flag, err, stderr, want)
			}
		})
	}
}

// TestProbeStoreClassifies: the mirror's startup probe fails on a missing
// bucket or refused credentials (no retry fixes them), and only warns on
// any other failure (the store may be back by the first round).
func TestProbeStoreClassifies(t *testing.T) {
	injected := errors.New("injected: connection refused")
	for _, tt := range []struct {
		fail    error
		wantErr error
	}{
		{nil, nil},
		{fmt.Errorf("s3 get x: %w", objstore.ErrBucketNotFound), objstore.ErrBucketNotFound},
		{fmt.Errorf("s3 get x: %w", objstore.ErrAccessDenied), objstore.ErrAccessDenied},
		{injected, nil},
	} {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		st := &objstoretest.Faulty{Store: mem.New(), Fail: func(op, name string) error { return tt.fail }}
		err := probeStore(t.Context(), &objstore.Transport{Store: st}, "s3://b/p", "k", log)
		switch {
		case tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "s3://b/p")):
			t.Errorf("probe with %v: err = %v, want %v naming the store", tt.fail, err, tt.wantErr)
		case tt.wantErr == nil && err != nil:
			t.Errorf("probe with %v: err = %v, want nil", tt.fail, err)
		case tt.fail == injected && (!strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "injected")):
			t.Errorf("probe with a transient failure logged %q, want a warning with the error", logs.String())
		case tt.fail == nil && logs.Len() != 0:
			t.Errorf("probe of a usable store logged %q", logs.String())
		}
	}
}
