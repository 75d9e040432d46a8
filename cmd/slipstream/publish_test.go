package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

func TestPublishFetchPruneUsageErrors(t *testing.T) {
	art := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"publish without artifact", []string{"publish", "-to", "file:///x", "-key", "k"}, "-artifact is required"},
		{"publish without to", []string{"publish", "-artifact", art, "-key", "k"}, "-to is required"},
		{"publish without key", []string{"publish", "-artifact", art, "-to", "file:///x"}, "-key is required"},
		{"publish not a url", []string{"publish", "-artifact", art, "-to", "not a url", "-key", "k"}, "invalid store URL"},
		{"publish bogus scheme", []string{"publish", "-artifact", art, "-to", "bogus://bucket/prefix", "-key", "k"}, `unknown scheme "bogus"`},
		{"fetch without out", []string{"fetch", "-from", "file:///x", "-key", "k"}, "-out is required"},
		{"fetch out and peek", []string{"fetch", "-from", "file:///x", "-key", "k", "-out", "o", "-peek"}, "do not go together"},
		{"fetch bad url", []string{"fetch", "-from", "s3://", "-key", "k", "-out", "o"}, "no bucket"},
		{"prune negative grace", []string{"prune", "-from", "file:///x", "-key", "k", "-grace", "-1s"}, "-grace must be >= 0"},
		{"prune argument", []string{"prune", "-from", "file:///x", "-key", "k", "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runMain(t, "", tt.args...)
			if !errors.As(err, new(*usageError)) || exitCode(err) != 2 {
				t.Fatalf("err = %v (exit %d), want a usage error", err, exitCode(err))
			}
			if line := errorLine(err); !strings.Contains(line, tt.want) {
				t.Fatalf("error line %q, want it to mention %q", line, tt.want)
			}
		})
	}
}

func TestPublishFetchPruneFile(t *testing.T) {
	store := "file://" + filepath.Join(t.TempDir(), "objects")
	src := t.TempDir()
	a3, a5 := filepath.Join(src, "a3"), filepath.Join(src, "a5")
	objstoretest.MakeArtifact(t, a3, 3, "a", "1")
	objstoretest.MakeArtifact(t, a5, 5, "a", "1", "b", "2")

	out, _, err := runMain(t, "", "publish", "-artifact", a3, "-to", store, "-key", "edge/latest")
	if err != nil || !strings.HasPrefix(out, "published edge/latest: artifact cursor 3, remote cursor 3") {
		t.Fatalf("publish 3: %q, %v", out, err)
	}
	// A local directory cannot replace the pointer atomically: fail closed.
	_, _, err = runMain(t, "", "publish", "-artifact", a5, "-to", store, "-key", "edge/latest")
	if err == nil || exitCode(err) != 1 || !strings.Contains(errorLine(err), "rerun with -non-atomic-pointer-fallback") {
		t.Fatalf("publish 5 without the opt-in: %v (exit %d)", err, exitCode(err))
	}
	out, _, err = runMain(t, "", "publish", "-artifact", a5, "-to", store, "-key", "edge/latest", "-non-atomic-pointer-fallback", "-log-level", "error")
	if err != nil || !strings.HasPrefix(out, "published edge/latest: artifact cursor 5") {
		t.Fatalf("publish 5 with the opt-in: %q, %v", out, err)
	}
	out, _, err = runMain(t, "", "publish", "-artifact", a3, "-to", store, "-key", "edge/latest", "-non-atomic-pointer-fallback", "-json")
	var res publishResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Outcome != "superseded" || res.Cursor != 3 || res.RemoteCursor != 5 {
		t.Fatalf("publish 3 again: %q, %v; want superseded 3 by 5", out, err)
	}

	out, _, err = runMain(t, "", "fetch", "-from", store, "-key", "edge/latest", "-peek")
	if err != nil || !strings.Contains(out, "cursor 5, backend append-log") {
		t.Fatalf("fetch -peek: %q, %v", out, err)
	}
	// A relative -out works: the command resolves it.
	t.Chdir(t.TempDir())
	out, _, err = runMain(t, "", "fetch", "-from", store, "-key", "edge/latest", "-out", "art")
	if err != nil || !strings.Contains(out, "cursor 5") {
		t.Fatalf("fetch: %q, %v", out, err)
	}
	if cur, state := objstoretest.CheckArtifact(t, "art"); cur.Rank() != 5 || state["b"] != "2" {
		t.Fatalf("fetched cursor %v state %v", cur, state)
	}
	_, _, err = runMain(t, "", "fetch", "-from", store, "-key", "edge/latest", "-out", "art")
	if !errors.Is(err, slipstream.ErrArtifactInvalid) || exitCode(err) != 1 {
		t.Fatalf("fetch into a non-empty directory: %v", err)
	}
	_, _, err = runMain(t, "", "fetch", "-from", store, "-key", "never/published", "-out", "other")
	if !errors.Is(err, slipstream.ErrArtifactInvalid) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("fetch of a missing key: %v", err)
	}
	if _, err := os.Stat("other"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed fetch left %q: %v", "other", err)
	}

	out, _, err = runMain(t, "", "prune", "-from", store, "-key", "edge/latest")
	if err != nil || out != "pruned edge/latest: deleted 0 payloads\n" {
		t.Fatalf("prune with the default grace: %q, %v", out, err)
	}
	out, _, err = runMain(t, "", "prune", "-from", store, "-key", "edge/latest", "-grace", "0s")
	if err != nil || out != "pruned edge/latest: deleted 1 payloads\n" {
		t.Fatalf("prune -grace 0: %q, %v", out, err)
	}
}

func TestPublishFetchNATSObject(t *testing.T) {
	srv := natstest.Start(t)
	art := filepath.Join(t.TempDir(), "a7")
	objstoretest.MakeArtifact(t, art, 7, "k", "v")
	out, _, err := runMain(t, "", "publish", "-artifact", art, "-to", "nats-object://artifacts/fleet", "-nats", srv.URL(), "-key", "k")
	if err != nil || !strings.HasPrefix(out, "published k: artifact cursor 7") {
		t.Fatalf("publish: %q, %v", out, err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if _, _, err := runMain(t, "", "fetch", "-from", "nats-object://artifacts/fleet", "-nats", srv.URL(), "-key", "k", "-out", dst); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if cur, state := objstoretest.CheckArtifact(t, dst); cur.Rank() != 7 || state["k"] != "v" {
		t.Fatalf("fetched cursor %v state %v", cur, state)
	}
}
