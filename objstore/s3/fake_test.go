package s3_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/slipstream-kv/slipstream/objstore/s3"
)

// fake is an in-process S3 server (gofakes3 on its in-memory backend, whose
// conditional writes are evaluated under the backend's lock) behind a hook
// that lets a test answer or observe requests first.
type fake struct {
	url     string
	backend *s3mem.Backend

	mu      sync.Mutex
	hook    func(w http.ResponseWriter, r *http.Request) bool // true: handled
	buckets int
}

func startFake(t testing.TB) *fake {
	t.Helper()
	f := &fake{backend: s3mem.New()}
	h := gofakes3.New(f.backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		hook := f.hook
		f.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// setHook installs (or, with nil, removes) the request hook.
func (f *fake) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

// bucket creates a fresh bucket and returns its name.
func (f *fake) bucket(t testing.TB) string {
	t.Helper()
	f.mu.Lock()
	f.buckets++
	name := fmt.Sprintf("bucket-%d", f.buckets)
	f.mu.Unlock()
	if err := f.backend.CreateBucket(name); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return name
}

// client returns a raw SDK client for the fake server.
func (f *fake) client() *awss3.Client {
	return awss3.New(awss3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.url),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
	})
}

// store returns a Store on a fresh bucket, built the way production builds
// it (default configuration chain, custom endpoint, path style), with the
// credentials from the environment.
func (f *fake) store(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	cfg.Bucket = f.bucket(t)
	cfg.Endpoint = f.url
	cfg.PathStyle = true
	s, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("s3.New: %v", err)
	}
	return s
}

// fakeCredentials points the SDK's default chain at static test
// credentials and away from any shared configuration on the machine.
func fakeCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRETTEST")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
}
