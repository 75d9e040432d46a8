package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

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
	conn        natsFlags
}

func (sf *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&sf.s3Endpoint, "s3-endpoint", "", "s3:// URLs: base `URL` of an S3-compatible server (default: AWS, or AWS_ENDPOINT_URL_S3)")
	fs.StringVar(&sf.s3Region, "s3-region", "", "s3:// URLs: AWS `region` (default: AWS_REGION or the shared config)")
	fs.BoolVar(&sf.s3PathStyle, "s3-path-style", false, "s3:// URLs: address the bucket in the path (most S3-compatible servers)")
	sf.conn.register(fs, "nats-object:// URLs: NATS server `URL` (default "+DefaultNATSURL+"; the other connection flags as for mirror)")
}

// open opens the store raw names and probes it with a read of key's
// pointer (objstore.Transport.Check), so that a missing bucket or refused
// credentials end the command before any work; a bad URL is a usage error.
// getenv supplies the NATS_* defaults of the connection flags.
func (sf *storeFlags) open(ctx context.Context, getenv func(string) string, cmd, raw, key string) (*storeurl.Target, error) {
	var dialCfg natskv.DialConfig
	if strings.HasPrefix(raw, "nats-object:") {
		// Only a NATS store needs the connection (and its context).
		sf.conn.applyEnv(getenv)
		var err error
		if dialCfg, err = sf.conn.dialConfig(DefaultNATSURL, "slipstream "+cmd); err != nil {
			return nil, err
		}
	}
	t, err := storeurl.Open(ctx, raw, storeurl.Config{
		S3Endpoint:  sf.s3Endpoint,
		S3Region:    sf.s3Region,
		S3PathStyle: sf.s3PathStyle,
		NATS:        dialCfg,
	})
	if errors.Is(err, objstore.ErrInvalidURL) {
		return nil, usageErrorf(cmd, "%s", err.Error())
	}
	if err != nil {
		return nil, err
	}
	if err := t.Transport().Check(ctx, key); err != nil {
		t.Close()
		return nil, fmt.Errorf("%s: %s: %w", cmd, t.Location, err)
	}
	return t, nil
}

// underStore names url in err when err says nothing is published under a
// key (objstore.NotPublishedError): "no artifact published at KEY under
// URL". Other errors are returned as they are.
func underStore(err error, url string) error {
	var np *objstore.NotPublishedError
	if !errors.As(err, &np) {
		return err
	}
	named := *np
	named.Store = url
	return &named
}

// storeURLHelp describes the store URLs in a command's usage.
const storeURLHelp = `
Store URLs:

	s3://BUCKET/PREFIX            Amazon S3 or an S3-compatible server (-s3-* flags,
	                              else the AWS environment and default credential chain)
	file:///DIR                   a local directory (first publish only, unless
	                              -non-atomic-pointer-fallback: it cannot replace atomically)
	nats-object://BUCKET/PREFIX   a NATS JetStream object store BUCKET, pointers in
	                              the KV bucket BUCKET-pointers (-nats, -context, -creds, …)
`
