package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/objstore"
	"golang.org/x/sync/errgroup"
)

var _ objstore.Store = (*Store)(nil)

// Defaults of [Config].
const (
	DefaultPartSize        = 8 << 20
	DefaultConcurrency     = 8
	DefaultRequestTimeout  = 30 * time.Second
	DefaultCompleteTimeout = 240 * time.Second
	// DefaultRegion is used when neither Config.Region nor the SDK's
	// configuration names one (S3-compatible servers often ignore it, but
	// requests must be signed for some region).
	DefaultRegion = "us-east-1"
	// maxParts is S3's limit on the parts of one multipart upload.
	maxParts = 10000
)

// Config says which bucket a [Store] uses and how it reaches it. Zero
// values mean the defaults.
type Config struct {
	// Bucket is the bucket name. Required.
	Bucket string
	// Endpoint is the base URL of an S3-compatible server
	// ("http://127.0.0.1:9000"); empty means AWS (or the SDK's
	// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL environment).
	Endpoint string
	// Region overrides the SDK's region (AWS_REGION, the shared config).
	Region string
	// PathStyle addresses the bucket in the path (http://host/bucket/key)
	// instead of the host name, as most S3-compatible servers need.
	PathStyle bool
	// Client, when set, is used as it is; Endpoint, Region and PathStyle
	// are then ignored.
	Client *awss3.Client

	// PartSize is the multipart part size; objects up to it are one
	// PutObject. Default DefaultPartSize.
	PartSize int64
	// Concurrency bounds the parts in flight. Default DefaultConcurrency.
	Concurrency int
	// RequestTimeout is the stall timeout of each request. Default
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// CompleteTimeout bounds CompleteMultipartUpload. Default
	// DefaultCompleteTimeout.
	CompleteTimeout time.Duration
}

// Store is an object store on one S3 bucket. It is safe for concurrent use.
type Store struct {
	client *awss3.Client
	cfg    Config
}

// New returns a store on cfg.Bucket. Unless cfg.Client is set it loads the
// SDK's default configuration (credential chain, region) and applies
// Endpoint, Region and PathStyle. It sends no request.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("%w: s3: no bucket", slipstream.ErrInvalidConfig)
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.CompleteTimeout <= 0 {
		cfg.CompleteTimeout = DefaultCompleteTimeout
	}
	client := cfg.Client
	if client == nil {
		var opts []func(*config.LoadOptions) error
		if cfg.Region != "" {
			opts = append(opts, config.WithRegion(cfg.Region))
		}
		awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("%w: s3: load AWS configuration: %w", slipstream.ErrInvalidConfig, err)
		}
		if awsCfg.Region == "" {
			awsCfg.Region = DefaultRegion
		}
		client = awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
			o.UsePathStyle = cfg.PathStyle
			if cfg.Endpoint != "" {
				o.BaseEndpoint = aws.String(cfg.Endpoint)
				o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
				o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
			}
		})
	}
	cfg.Client = nil
	return &Store{client: client, cfg: cfg}, nil
}

// errStalled is the cause of a request cancelled by its stall timeout.
var errStalled = errors.New("s3: request stalled")

// request returns a context for one request, cancelled after d.
func request(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, errStalled)
}

// translate maps an SDK error onto the objstore and slipstream sentinels:
// NoSuchBucket onto ErrBucketNotFound, 403 onto ErrAccessDenied and
// NoSuchKey (or another 404) onto ErrNotExist, each with a short message.
// parent is the caller's context: its own cancellation is returned as is,
// while our stall timeouts become slipstream.ErrTimeout.
func translate(parent context.Context, bucket, op, name string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := parent.Err(); cerr != nil {
		return fmt.Errorf("s3 %s %s: %w", op, name, cerr)
	}
	if errors.Is(err, errStalled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: s3 %s %s: %w", slipstream.ErrTimeout, op, name, err)
	}
	code, status := "", 0
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	var noKey *types.NoSuchKey
	switch {
	case code == "NoSuchBucket":
		return &apiError{msg: fmt.Sprintf("s3 %s %s: bucket %q does not exist (NoSuchBucket)", op, name, bucket),
			errs: []error{objstore.ErrBucketNotFound, slipstream.ErrOperationFailed, err}}
	case status == http.StatusForbidden, code == "AccessDenied", code == "InvalidAccessKeyId", code == "SignatureDoesNotMatch":
		if code == "" {
			code = "403 Forbidden"
		}
		return &apiError{msg: fmt.Sprintf("s3 %s %s: access to bucket %q denied (%s): check the credentials and the bucket's policy", op, name, bucket, code),
			errs: []error{objstore.ErrAccessDenied, slipstream.ErrOperationFailed, err}}
	case errors.As(err, &noKey), code == "NoSuchKey", status == http.StatusNotFound:
		return &apiError{msg: fmt.Sprintf("s3 %s %s: no such object", op, name), errs: []error{objstore.ErrNotExist, err}}
	case status == http.StatusPreconditionFailed, status == http.StatusConflict,
		code == "PreconditionFailed", code == "ConditionalRequestConflict":
		return fmt.Errorf("s3 %s %s: %w: %w", op, name, objstore.ErrPreconditionFailed, err)
	case status == http.StatusNotImplemented, code == "NotImplemented":
		return fmt.Errorf("s3 %s %s: %w: %w", op, name, objstore.ErrNotImplemented, err)
	}
	return fmt.Errorf("%w: s3 %s %s: %w", slipstream.ErrOperationFailed, op, name, err)
}

// apiError is a translated S3 answer with a short message of its own: the
// SDK's text (operation, request ids, the server's sentence) stays in the
// chain for errors.As but out of what an operator reads.
type apiError struct {
	msg  string
	errs []error
}

func (e *apiError) Error() string   { return e.msg }
func (e *apiError) Unwrap() []error { return e.errs }

// Get starts a GetObject. The body is read under a stall timer: each read
// that makes progress restarts it.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, objstore.Attrs, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(s.cfg.RequestTimeout, func() { cancel(errStalled) })
	out, err := s.client.GetObject(rctx, &awss3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &name})
	if err != nil {
		timer.Stop()
		if context.Cause(rctx) == errStalled {
			err = fmt.Errorf("%w: %w", errStalled, err)
		}
		cancel(nil)
		return nil, objstore.Attrs{}, translate(ctx, s.cfg.Bucket, "get", name, err)
	}
	attrs := objstore.Attrs{
		Name:         name,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
	}
	return &stallReader{body: out.Body, ctx: rctx, parent: ctx, bucket: s.cfg.Bucket, name: name, timer: timer, timeout: s.cfg.RequestTimeout, cancel: cancel}, attrs, nil
}

// stallReader reads a response body, restarting the stall timer on progress.
type stallReader struct {
	body    io.ReadCloser
	ctx     context.Context
	parent  context.Context
	bucket  string
	name    string
	timer   *time.Timer
	timeout time.Duration
	cancel  context.CancelCauseFunc
}

func (r *stallReader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if n > 0 {
		r.timer.Reset(r.timeout)
	}
	if err != nil && err != io.EOF {
		if context.Cause(r.ctx) == errStalled {
			err = fmt.Errorf("%w: %w", errStalled, err)
		}
		err = translate(r.parent, r.bucket, "read", r.name, err)
	}
	return n, err
}

func (r *stallReader) Close() error {
	r.timer.Stop()
	err := r.body.Close()
	r.cancel(nil)
	return err
}

// Put uploads the object: one PutObject up to the part size, a multipart
// upload above it.
func (s *Store) Put(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	if size <= s.cfg.PartSize {
		rctx, cancel := request(ctx, s.cfg.RequestTimeout)
		defer cancel()
		_, err := s.client.PutObject(rctx, &awss3.PutObjectInput{
			Bucket: &s.cfg.Bucket, Key: &name,
			Body: io.NewSectionReader(r, 0, size), ContentLength: aws.Int64(size),
		})
		return translate(ctx, s.cfg.Bucket, "put", name, err)
	}
	return s.putMultipart(ctx, name, r, size)
}

func (s *Store) putMultipart(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	partSize := max(s.cfg.PartSize, (size+maxParts-1)/maxParts)
	rctx, cancel := request(ctx, s.cfg.RequestTimeout)
	created, err := s.client.CreateMultipartUpload(rctx, &awss3.CreateMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &name})
	cancel()
	if err != nil {
		return translate(ctx, s.cfg.Bucket, "create multipart upload", name, err)
	}
	uploadID := created.UploadId
	abort := func(cause error) error {
		// Clean up even if ctx is done; the abort has its own bound.
		actx, cancel := request(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
		defer cancel()
		if _, err := s.client.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &name, UploadId: uploadID}); err != nil {
			return errors.Join(cause, translate(ctx, s.cfg.Bucket, "abort multipart upload", name, err))
		}
		return cause
	}

	nparts := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Concurrency)
	for i := range nparts {
		off := int64(i) * partSize
		n := min(partSize, size-off)
		num := int32(i + 1)
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			pctx, cancel := request(gctx, s.cfg.RequestTimeout)
			defer cancel()
			out, err := s.client.UploadPart(pctx, &awss3.UploadPartInput{
				Bucket: &s.cfg.Bucket, Key: &name, UploadId: uploadID, PartNumber: aws.Int32(num),
				Body: io.NewSectionReader(r, off, n), ContentLength: aws.Int64(n),
			})
			if err != nil {
				return translate(gctx, s.cfg.Bucket, fmt.Sprintf("upload part %d of", num), name, err)
			}
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return abort(err)
	}
	if err := ctx.Err(); err != nil {
		return abort(fmt.Errorf("s3 put %s: %w", name, err))
	}
	cctx, cancel := request(ctx, s.cfg.CompleteTimeout)
	defer cancel()
	_, err = s.client.CompleteMultipartUpload(cctx, &awss3.CompleteMultipartUploadInput{
		Bucket: &s.cfg.Bucket, Key: &name, UploadId: uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return abort(translate(ctx, s.cfg.Bucket, "complete multipart upload", name, err))
	}
	return nil
}

// Create is PutObject with If-None-Match: *.
func (s *Store) Create(ctx context.Context, name string, data []byte) error {
	rctx, cancel := request(ctx, s.cfg.RequestTimeout)
	defer cancel()
	_, err := s.client.PutObject(rctx, &awss3.PutObjectInput{
		Bucket: &s.cfg.Bucket, Key: &name, IfNoneMatch: aws.String("*"),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	return translate(ctx, s.cfg.Bucket, "create", name, err)
}

// Replace is PutObject with If-Match: etag, the ETag sent verbatim.
func (s *Store) Replace(ctx context.Context, name string, data []byte, etag string) error {
	rctx, cancel := request(ctx, s.cfg.RequestTimeout)
	defer cancel()
	_, err := s.client.PutObject(rctx, &awss3.PutObjectInput{
		Bucket: &s.cfg.Bucket, Key: &name, IfMatch: aws.String(etag),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	return translate(ctx, s.cfg.Bucket, "replace", name, err)
}

// List pages through ListObjectsV2, each page under the stall timeout.
func (s *Store) List(ctx context.Context, prefix string) ([]objstore.Attrs, error) {
	var out []objstore.Attrs
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		rctx, cancel := request(ctx, s.cfg.RequestTimeout)
		page, err := p.NextPage(rctx)
		cancel()
		if err != nil {
			return nil, translate(ctx, s.cfg.Bucket, "list", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, objstore.Attrs{
				Name:         aws.ToString(o.Key),
				Size:         aws.ToInt64(o.Size),
				ETag:         aws.ToString(o.ETag),
				LastModified: aws.ToTime(o.LastModified),
			})
		}
	}
	slices.SortFunc(out, func(a, b objstore.Attrs) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete is DeleteObject; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, name string) error {
	rctx, cancel := request(ctx, s.cfg.RequestTimeout)
	defer cancel()
	_, err := s.client.DeleteObject(rctx, &awss3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &name})
	if err = translate(ctx, s.cfg.Bucket, "delete", name, err); errors.Is(err, objstore.ErrNotExist) {
		return nil
	}
	return err
}
