package main

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
)

// The handler answers 503 while no follower runs, 500 when the export
// fails, a tar of the artifact otherwise; its scratch directory beside the
// fold is removed on every path.
func TestArtifactHandler(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := applog.Open(filepath.Join(t.TempDir(), "fold"), &applog.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Apply([]slipstream.Update{slipstream.Put("a", []byte("1"), slipstream.VersionFromUint64(1))}, slipstream.CursorFromUint64(1)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		export func(ctx context.Context, dir string) (*artifact.Manifest, error)
		code   int
		body   string // the error page mentions it
	}{
		{"no follower", func(context.Context, string) (*artifact.Manifest, error) { return nil, errNoFollower }, http.StatusServiceUnavailable, "retry"},
		{"not running", func(context.Context, string) (*artifact.Manifest, error) { return nil, slipstream.ErrNotRunning }, http.StatusServiceUnavailable, "retry"},
		{"export fails", func(_ context.Context, dir string) (*artifact.Manifest, error) {
			if err := os.MkdirAll(filepath.Join(dir, "partial"), 0o755); err != nil {
				return nil, err
			}
			return nil, errors.New("disk full")
		}, http.StatusInternalServerError, "disk full"},
		{"ok", func(_ context.Context, dir string) (*artifact.Manifest, error) {
			return artifact.ExportStore(store, dir)
		}, http.StatusOK, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			scratch := t.TempDir()
			api := &httpAPI{artifacts: &artifactHandler{export: tt.export, scratch: scratch, log: quiet}, log: quiet}
			srv := httptest.NewServer(api.handler())
			defer srv.Close()
			resp, err := http.Get(srv.URL + artifactPath)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.code {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d %q, want %d", resp.StatusCode, b, tt.code)
			}
			if tt.code == http.StatusOK {
				if resp.Header.Get(CursorHeader) != "1" || resp.Header.Get("Content-Type") != "application/x-tar" {
					t.Fatalf("headers %v", resp.Header)
				}
				dest := filepath.Join(t.TempDir(), "art")
				m, err := artifact.ReadTar(resp.Body, dest, applog.ArtifactBackend{})
				if err != nil || m.Cursor != slipstream.CursorFromUint64(1) {
					t.Fatalf("ReadTar: %+v, %v", m, err)
				}
			} else if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), tt.body) {
				t.Fatalf("error page %q does not mention %q", b, tt.body)
			}
			if des, _ := os.ReadDir(scratch); len(des) != 0 {
				t.Fatalf("scratch holds %v after the request", des)
			}
		})
	}
}

// export -from reaches a mirror served over HTTPS with a bearer token, given
// -cacert and -token-file; without the token it fails with the 401.
func TestExportFromTLSWithToken(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := applog.Open(filepath.Join(t.TempDir(), "fold"), &applog.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Apply([]slipstream.Update{slipstream.Put("a", []byte("1"), slipstream.VersionFromUint64(1))}, slipstream.CursorFromUint64(7)); err != nil {
		t.Fatal(err)
	}
	api := &httpAPI{
		artifacts: &artifactHandler{
			export: func(_ context.Context, dir string) (*artifact.Manifest, error) {
				return artifact.ExportStore(store, dir)
			},
			scratch: t.TempDir(),
			log:     quiet,
		},
		token: []byte("s3cret"),
		log:   quiet,
	}
	srv := httptest.NewTLSServer(api.handler())
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "art")
	if _, _, err := runMain(t, "", "export", "-from", srv.URL, "-out", out, "-cacert", ca); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("export without the token = %v, want the 401", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused download left %s: %v", out, err)
	}
	if _, _, err := runMain(t, "", "export", "-from", srv.URL, "-out", out, "-token-file", tok); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("export without -cacert = %v, want a certificate error", err)
	}
	stdout, _, err := runMain(t, "", "export", "-from", srv.URL, "-out", out, "-cacert", ca, "-token-file", tok, "-json")
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if s := parseSummary(t, stdout); s.Cursor != 7 || s.Backend != applog.Backend {
		t.Fatalf("summary %+v", s)
	}
	if _, err := artifact.Verify(out, applog.ArtifactBackend{}); err != nil {
		t.Fatal(err)
	}
}
