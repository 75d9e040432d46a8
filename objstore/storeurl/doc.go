// Package storeurl opens the object store a URL names, for the command line
// and for programs configured by URL:
//
//	s3://BUCKET/PREFIX              Amazon S3 or an S3-compatible server (Config.S3*; else the AWS environment)
//	file:///DIR                     a local directory (no conditional replace: see objstore/file)
//	nats-object://BUCKET/PREFIX     a NATS JetStream object store BUCKET and KV bucket BUCKET-pointers (Config.NATS)
//
// PREFIX may be empty or hold '/'-separated segments; it becomes the
// transport's prefix. A URL that does not parse, names another scheme or
// misses its bucket is refused with an error wrapping objstore.ErrInvalidURL.
package storeurl
