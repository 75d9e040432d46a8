// Package s3 implements an objstore.Store on Amazon S3 and S3-compatible
// servers with aws-sdk-go-v2.
//
// Pointers use S3's conditional writes: Create is PutObject with
// If-None-Match: *, Replace is PutObject with If-Match carrying the ETag
// exactly as GetObject returned it. 412 and 409 (ConditionalRequestConflict)
// are a lost race (objstore.ErrPreconditionFailed), 404 on If-Match is a
// pointer deleted meanwhile (objstore.ErrNotExist), 501 a server without
// conditional writes (objstore.ErrNotImplemented).
//
// Errors an operator must act on get short messages of their own (the
// SDK's text, request ids included, stays in the chain for errors.As):
// NoSuchBucket is objstore.ErrBucketNotFound, a 403 (AccessDenied,
// InvalidAccessKeyId, SignatureDoesNotMatch) objstore.ErrAccessDenied, both
// also slipstream.ErrOperationFailed; NoSuchKey (or another 404) is
// objstore.ErrNotExist.
//
// Payloads above one part are multipart uploads: 8 MiB parts, at most 8 in
// flight, each read straight from the caller's io.ReaderAt (memory does not
// grow with the object), the upload aborted on any failure. Every request
// has a 30 s stall timeout (a GetObject body may take longer as long as it
// keeps flowing); CompleteMultipartUpload gets 240 s. A timeout is reported
// with slipstream.ErrTimeout.
//
// Credentials come from the SDK's default chain (environment, shared files,
// SSO, IMDS, …). For S3-compatible servers set Config.Endpoint and usually
// Config.PathStyle; request checksums are then only sent where an operation
// requires them, which such servers accept more widely.
//
// # Permissions
//
// Publishing needs s3:PutObject and s3:GetObject on the prefix (multipart
// uploads use s3:PutObject; s3:AbortMultipartUpload lets a failed upload be
// cleaned); pruning adds s3:ListBucket on the bucket (with the prefix as
// condition if you like) and s3:DeleteObject; fetching needs s3:GetObject
// only.
package s3
