package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
	"github.com/slipstream-kv/slipstream/objstore/s3"
)

// TestFakeServerHonorsConditionalWrites proves, with raw SDK calls, that the
// test server refuses If-None-Match: * on an existing key and a stale
// If-Match (412), and accepts the current ETag: a server that accepted both
// would make every pointer test meaningless.
func TestFakeServerHonorsConditionalWrites(t *testing.T) {
	f := startFake(t)
	c := f.client()
	ctx := t.Context()
	bucket := f.bucket(t)
	put := func(body string, mod func(*awss3.PutObjectInput)) (*awss3.PutObjectOutput, error) {
		in := &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k.manifest.json"), Body: strings.NewReader(body)}
		if mod != nil {
			mod(in)
		}
		return c.PutObject(ctx, in)
	}
	status := func(err error) int {
		var re *awshttp.ResponseError
		if errors.As(err, &re) {
			return re.HTTPStatusCode()
		}
		return 0
	}

	if _, err := put("one", func(in *awss3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }); err != nil {
		t.Fatalf("If-None-Match: * on a new key: %v", err)
	}
	_, err := put("two", func(in *awss3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })
	if status(err) != http.StatusPreconditionFailed {
		t.Fatalf("If-None-Match: * on an existing key: err = %v, want 412", err)
	}
	got, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k.manifest.json")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	etag := aws.ToString(got.ETag)
	if string(body) != "one" || etag == "" {
		t.Fatalf("GetObject = %q etag %q, want one with an ETag", body, etag)
	}
	if _, err := put("three", func(in *awss3.PutObjectInput) { in.IfMatch = aws.String(etag) }); err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
	_, err = put("four", func(in *awss3.PutObjectInput) { in.IfMatch = aws.String(etag) })
	if status(err) != http.StatusPreconditionFailed {
		t.Fatalf("If-Match with a stale ETag: err = %v, want 412", err)
	}
	_, err = put("five", func(in *awss3.PutObjectInput) {
		in.Key = aws.String("missing.manifest.json")
		in.IfMatch = aws.String(etag)
	})
	if s := status(err); s != http.StatusPreconditionFailed && s != http.StatusNotFound {
		t.Fatalf("If-Match on a missing key: err = %v, want 412 or 404", err)
	}
}

func TestConformance(t *testing.T) {
	fakeCredentials(t)
	f := startFake(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Store { return f.store(t, s3.Config{}) }, objstoretest.Options{})
}

func TestTransport(t *testing.T) {
	fakeCredentials(t)
	f := startFake(t)
	objstoretest.RunTransport(t, func(t *testing.T) objstore.Store { return f.store(t, s3.Config{}) }, objstoretest.Options{})
}

// TestErrorTranslation answers conditional PUTs the way other servers do
// and checks what the store makes of each answer.
func TestErrorTranslation(t *testing.T) {
	fakeCredentials(t)
	f := startFake(t)
	s := f.store(t, s3.Config{})
	ctx := t.Context()
	cases := []struct {
		status int
		code   string
		want   error
	}{
		{http.StatusNotFound, "NoSuchKey", objstore.ErrNotExist},
		{http.StatusConflict, "ConditionalRequestConflict", objstore.ErrPreconditionFailed},
		{http.StatusPreconditionFailed, "PreconditionFailed", objstore.ErrPreconditionFailed},
		{http.StatusNotImplemented, "NotImplemented", objstore.ErrNotImplemented},
		{http.StatusForbidden, "AccessDenied", objstore.ErrAccessDenied},
		{http.StatusForbidden, "AccessDenied", slipstream.ErrOperationFailed},
		{http.StatusForbidden, "InvalidAccessKeyId", objstore.ErrAccessDenied},
	}
	for _, c := range cases {
		f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodPut || r.Header.Get("If-Match") == "" {
				return false
			}
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(c.status)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+c.code+`</Code><Message>injected</Message></Error>`)
			return true
		})
		err := s.Replace(ctx, "k.manifest.json", []byte("x"), `"etag"`)
		if !errors.Is(err, c.want) {
			t.Errorf("%d %s: Replace err = %v, want %v", c.status, c.code, err, c.want)
		}
	}
	f.setHook(nil)
}

// TestMissingBucket runs every operation against a bucket that does not
// exist: each fails with ErrBucketNotFound (still a backend failure) and a
// short message naming the bucket, without the SDK's request ids.
func TestMissingBucket(t *testing.T) {
	fakeCredentials(t)
	f := startFake(t)
	s, err := s3.New(t.Context(), s3.Config{Bucket: "missing-bucket", Endpoint: f.url, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ops := map[string]func() error{
		"get":     func() error { _, _, err := s.Get(ctx, "k.manifest.json"); return err },
		"put":     func() error { return s.Put(ctx, "k.payloads/x.tar", strings.NewReader("x"), 1) },
		"create":  func() error { return s.Create(ctx, "k.manifest.json", []byte("x")) },
		"replace": func() error { return s.Replace(ctx, "k.manifest.json", []byte("x"), `"e"`) },
		"list":    func() error { _, err := s.List(ctx, "k.payloads/"); return err },
		"delete":  func() error { return s.Delete(ctx, "k.payloads/x.tar") },
	}
	ops["transport check"] = func() error { return (&objstore.Transport{Store: s, Prefix: "p"}).Check(ctx, "k") }
	for op, do := range ops {
		err := do()
		if !errors.Is(err, objstore.ErrBucketNotFound) || !errors.Is(err, slipstream.ErrOperationFailed) || errors.Is(err, objstore.ErrNotExist) {
			t.Errorf("%s: err = %v, want ErrBucketNotFound and ErrOperationFailed, not ErrNotExist", op, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, `bucket "missing-bucket" does not exist`) || strings.Contains(msg, "RequestID") || strings.Contains(msg, "operation error") {
			t.Errorf("%s: message %q, want a short one naming the bucket", op, msg)
		}
	}
}

// TestAccessDenied answers every request 403 and checks that each
// operation fails with ErrAccessDenied and a short message, and that a
// missing key (NoSuchKey) keeps a short message of its own.
func TestAccessDenied(t *testing.T) {
	fakeCredentials(t)
	f := startFake(t)
	s := f.store(t, s3.Config{})
	ctx := t.Context()
	_, _, err := s.Get(ctx, "missing.manifest.json")
	if !errors.Is(err, objstore.ErrNotExist) || err.Error() != "s3 get missing.manifest.json: no such object" {
		t.Fatalf("Get of a missing key: err = %q, want ErrNotExist with a short message", err)
	}
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		if r.Method != http.MethodHead {
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>R1</RequestId></Error>`)
		}
		return true
	})
	defer f.setHook(nil)
	ops := map[string]func() error{
		"get":     func() error { _, _, err := s.Get(ctx, "k.manifest.json"); return err },
		"put":     func() error { return s.Put(ctx, "k.payloads/x.tar", strings.NewReader("x"), 1) },
		"create":  func() error { return s.Create(ctx, "k.manifest.json", []byte("x")) },
		"replace": func() error { return s.Replace(ctx, "k.manifest.json", []byte("x"), `"e"`) },
		"list":    func() error { _, err := s.List(ctx, "k.payloads/"); return err },
		"delete":  func() error { return s.Delete(ctx, "k.payloads/x.tar") },
	}
	ops["transport check"] = func() error { return (&objstore.Transport{Store: s, Prefix: "p"}).Check(ctx, "k") }
	for op, do := range ops {
		err := do()
		if !errors.Is(err, objstore.ErrAccessDenied) || !errors.Is(err, slipstream.ErrOperationFailed) {
			t.Errorf("%s: err = %v, want ErrAccessDenied and ErrOperationFailed", op, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "denied (AccessDenied)") || strings.Contains(msg, "RequestID") || strings.Contains(msg, "operation error") {
			t.Errorf("%s: message %q, want a short one", op, msg)
		}
	}
}

// TestMultipartAbortOnFailure fails one part and checks that the upload is
// aborted and no object appears.
func TestMultipartAbortOnFailure(t *testing.T) {
	fakeCredentials(t)
	f := startFake(t)
	s := f.store(t, s3.Config{})
	ctx := t.Context()
	var aborted atomic.Int32
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		if r.Method == http.MethodDelete && q.Has("uploadId") {
			aborted.Add(1)
		}
		if r.Method == http.MethodPut && q.Get("partNumber") == "2" {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<Error><Code>AccessDenied</Code><Message>injected</Message></Error>`)
			return true
		}
		return false
	})
	data := objstoretest.Random(7, 3*s3.DefaultPartSize+5)
	err := s.Put(ctx, "p.payloads/x.tar", bytes.NewReader(data), int64(len(data)))
	if !errors.Is(err, slipstream.ErrOperationFailed) {
		t.Fatalf("Put with a failing part: err = %v, want ErrOperationFailed", err)
	}
	f.setHook(nil)
	if aborted.Load() != 1 {
		t.Fatalf("AbortMultipartUpload sent %d times, want 1", aborted.Load())
	}
	if _, _, err := s.Get(ctx, "p.payloads/x.tar"); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("Get after a failed upload: err = %v, want ErrNotExist", err)
	}
}

// TestStallTimeout holds a response back and checks that the request's
// stall timeout ends it with slipstream.ErrTimeout, for a request and for a
// body that stops flowing.
func TestStallTimeout(t *testing.T) {
	fakeCredentials(t)
	f := startFake(t)
	s := f.store(t, s3.Config{RequestTimeout: 300 * time.Millisecond})
	ctx := t.Context()
	data := objstoretest.Random(3, 64<<10)
	if err := s.Put(ctx, "slow", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/slow") {
			return false
		}
		if r.URL.Query().Has("hang-body") {
			return false
		}
		<-r.Context().Done() // never answer
		return true
	})
	_, _, err := s.Get(ctx, "slow")
	if !errors.Is(err, slipstream.ErrTimeout) {
		t.Fatalf("Get of a hanging server: err = %v, want ErrTimeout", err)
	}

	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/slow") {
			return false
		}
		w.Header().Set("Content-Length", "65536")
		w.Header().Set("ETag", `"x"`)
		w.WriteHeader(http.StatusOK)
		w.Write(data[:1000])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then stall
		return true
	})
	rc, _, err := s.Get(ctx, "slow")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, slipstream.ErrTimeout) {
		t.Fatalf("reading a stalled body: err = %v, want ErrTimeout", err)
	}
	f.setHook(nil)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.Get(cctx, "slow"); !errors.Is(err, context.Canceled) || errors.Is(err, slipstream.ErrTimeout) {
		t.Fatalf("Get with a cancelled context: err = %v, want context.Canceled", err)
	}
}
