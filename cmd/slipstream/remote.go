package main

import (
	"context"
	"errors"
	"flag"

	"github.com/slipstream-kv/slipstream/natskv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/storeurl"
)

// storeFlags are the flags of the commands that reach an object store
// (publish, fetch, prune): what a store URL does not say.
type storeFlags struct {
	s3Endpoint  string
	s3Region    string
	s3PathStyle bool
	natsURL     string
	creds       string
}

func (sf *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&sf.s3Endpoint, "s3-endpoint", "", "s3:// URLs: base `URL` of an S3-compatible server (default: AWS, or AWS_ENDPOINT_URL_S3)")
	fs.StringVar(&sf.s3Region, "s3-region", "", "s3:// URLs: AWS `region` (default: AWS_REGION or the shared config)")
	fs.BoolVar(&sf.s3PathStyle, "s3-path-style", false, "s3:// URLs: address the bucket in the path (most S3-compatible servers)")
	fs.StringVar(&sf.natsURL, "nats", DefaultNATSURL, "nats-object:// URLs: NATS server `URL`")
	fs.StringVar(&sf.creds, "creds", "", "nats-object:// URLs: NATS credentials `file`")
}

// open opens the store raw names; a bad URL is a usage error.
func (sf *storeFlags) open(ctx context.Context, cmd, raw string) (*storeurl.Target, error) {
	t, err := storeurl.Open(ctx, raw, storeurl.Config{
		S3Endpoint:  sf.s3Endpoint,
		S3Region:    sf.s3Region,
		S3PathStyle: sf.s3PathStyle,
		NATS:        natskv.DialConfig{URL: sf.natsURL, CredsFile: sf.creds, Name: "slipstream " + cmd},
	})
	if errors.Is(err, objstore.ErrInvalidURL) {
		return nil, usageErrorf(cmd, "%s", err.Error())
	}
	return t, err
}

// storeURLHelp describes the store URLs in a command's usage.
const storeURLHelp = `
Store URLs:

	s3://BUCKET/PREFIX            Amazon S3 or an S3-compatible server (-s3-* flags,
	                              else the AWS environment and default credential chain)
	file:///DIR                   a local directory (first publish only, unless
	                              -non-atomic-pointer-fallback: it cannot replace atomically)
	nats-object://BUCKET/PREFIX   a NATS JetStream object store BUCKET, pointers in
	                              the KV bucket BUCKET-pointers (-nats, -creds)
`
