package storeurl_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/natskv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
	"github.com/slipstream-kv/slipstream/objstore/storeurl"
)

func TestParse(t *testing.T) {
	good := []struct {
		raw  string
		want storeurl.Location
	}{
		{"s3://my-bucket/fleet/prod", storeurl.Location{Scheme: "s3", Bucket: "my-bucket", Prefix: "fleet/prod"}},
		{"s3://my-bucket", storeurl.Location{Scheme: "s3", Bucket: "my-bucket"}},
		{"s3://my-bucket/", storeurl.Location{Scheme: "s3", Bucket: "my-bucket"}},
		{"s3://my.bucket/a/", storeurl.Location{Scheme: "s3", Bucket: "my.bucket", Prefix: "a"}},
		{"file:///var/lib/slipstream/artifacts", storeurl.Location{Scheme: "file", Dir: "/var/lib/slipstream/artifacts"}},
		{"file://localhost/srv/a", storeurl.Location{Scheme: "file", Dir: "/srv/a"}},
		{"nats-object://artifacts/fleet", storeurl.Location{Scheme: "nats-object", Bucket: "artifacts", Prefix: "fleet"}},
		{"nats-object://ARTIFACTS_1", storeurl.Location{Scheme: "nats-object", Bucket: "ARTIFACTS_1"}},
	}
	for _, c := range good {
		got, err := storeurl.Parse(c.raw)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.raw, got, err, c.want)
		}
	}
	bad := []string{
		"not a url",
		"bogus://bucket/prefix",
		"",
		"/just/a/path",
		"s3://",
		"s3:///prefix",
		"s3://bucket:9000/p",
		"s3://user:pw@bucket/p",
		"s3://bucket/p?x=1",
		"s3://bucket/p#frag",
		"s3://bucket/../p",
		"s3://bucket/a b",
		"s3://bucket/%2e%2e/x",
		"nats-object://bad.bucket/p",
		"nats-object:///p",
		"file://relative/dir",
		"file:relative",
		"file:///",
		"http://example.com/x",
		"s3:bucket",
		"::",
		"%zz",
	}
	for _, raw := range bad {
		if _, err := storeurl.Parse(raw); !errors.Is(err, objstore.ErrInvalidURL) {
			t.Errorf("Parse(%q): err = %v, want ErrInvalidURL", raw, err)
		}
		if _, err := storeurl.Open(t.Context(), raw, storeurl.Config{}); !errors.Is(err, objstore.ErrInvalidURL) {
			t.Errorf("Open(%q): err = %v, want ErrInvalidURL", raw, err)
		}
	}
}

// FuzzParse: Parse never panics, refuses only with ErrInvalidURL, and what
// it accepts renders back to a URL that parses to the same location.
func FuzzParse(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "urls.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := storeurl.Parse(raw)
		if err != nil {
			if !errors.Is(err, objstore.ErrInvalidURL) {
				t.Fatalf("Parse(%q): %v, not ErrInvalidURL", raw, err)
			}
			return
		}
		again, err := storeurl.Parse(loc.String())
		if err != nil || again != loc {
			t.Fatalf("Parse(%q) = %+v renders as %q, which parses to %+v, %v", raw, loc, loc.String(), again, err)
		}
	})
}

func TestOpenFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "objects")
	tg, err := storeurl.Open(t.Context(), "file://"+dir, storeurl.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	art := filepath.Join(t.TempDir(), "a3")
	objstoretest.MakeArtifact(t, art, 3, "a", "1")
	objstoretest.Upload(t, tg.Transport(), "k", art)
	if _, err := os.Stat(filepath.Join(dir, "k.manifest.json")); err != nil {
		t.Fatalf("pointer not at the directory's root: %v", err)
	}
}

func TestOpenS3SendsNothing(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	tg, err := storeurl.Open(t.Context(), "s3://bucket/fleet", storeurl.Config{S3Endpoint: "http://127.0.0.1:1", S3Region: "eu-west-1", S3PathStyle: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer tg.Close()
	if tr := tg.Transport(); tr.Prefix != "fleet" || tr.Store == nil {
		t.Fatalf("Transport = %+v", tr)
	}
}

func TestOpenNATSObject(t *testing.T) {
	srv := natstest.Start(t)
	tg, err := storeurl.Open(t.Context(), "nats-object://artifacts/fleet", storeurl.Config{NATS: natskv.DialConfig{URL: srv.URL()}})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer tg.Close()
	art := filepath.Join(t.TempDir(), "a3")
	objstoretest.MakeArtifact(t, art, 3, "a", "1")
	tr := tg.Transport()
	objstoretest.Upload(t, tr, "k", art)
	m, err := tr.Manifest(t.Context(), "k")
	if err != nil || m.Cursor.Rank() != 3 {
		t.Fatalf("Manifest = %v, %v", m, err)
	}

	if _, err := storeurl.Open(t.Context(), "nats-object://artifacts/fleet", storeurl.Config{NATS: natskv.DialConfig{URL: "nats://127.0.0.1:1"}}); !errors.Is(err, natskv.ErrConnectionFailed) {
		t.Fatalf("Open with an unreachable server: err = %v, want ErrConnectionFailed", err)
	}
}
