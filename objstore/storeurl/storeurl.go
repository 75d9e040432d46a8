package storeurl

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/slipstream-kv/slipstream/natskv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/file"
	"github.com/slipstream-kv/slipstream/objstore/natsobj"
	"github.com/slipstream-kv/slipstream/objstore/s3"
)

// Schemes of store URLs.
const (
	SchemeS3   = "s3"
	SchemeFile = "file"
	SchemeNATS = "nats-object"
)

// Location is a parsed store URL.
type Location struct {
	// Scheme is SchemeS3, SchemeFile or SchemeNATS.
	Scheme string
	// Bucket is the S3 bucket or the NATS object bucket; empty for file.
	Bucket string
	// Dir is the directory of a file URL.
	Dir string
	// Prefix is the transport prefix: the URL's path for s3 and
	// nats-object, without leading or trailing '/'; empty for file.
	Prefix string
}

// String renders l as a URL.
func (l Location) String() string {
	switch l.Scheme {
	case SchemeFile:
		return (&url.URL{Scheme: SchemeFile, Path: l.Dir}).String()
	default:
		return l.Scheme + "://" + l.Bucket + "/" + l.Prefix
	}
}

var (
	s3BucketRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	natsBucketRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	prefixRE     = regexp.MustCompile(`^[A-Za-z0-9._/-]*$`)
)

func invalid(raw, format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", objstore.ErrInvalidURL, raw, fmt.Sprintf(format, args...))
}

// Parse parses a store URL without opening anything.
func Parse(raw string) (Location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Location{}, invalid(raw, "%v", err)
	}
	if u.Scheme == "" {
		return Location{}, invalid(raw, "no scheme; want s3://BUCKET/PREFIX, file:///DIR or nats-object://BUCKET/PREFIX")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Location{}, invalid(raw, "credentials, queries and fragments are not part of a store URL")
	}
	switch u.Scheme {
	case SchemeFile:
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, invalid(raw, "host %q in a file URL; want file:///ABSOLUTE/DIR", u.Host)
		}
		if !strings.HasPrefix(u.Path, "/") || strings.Trim(u.Path, "/") == "" {
			return Location{}, invalid(raw, "want file:///ABSOLUTE/DIR (not the root)")
		}
		return Location{Scheme: SchemeFile, Dir: u.Path}, nil
	case SchemeS3, SchemeNATS:
		if u.Host == "" {
			return Location{}, invalid(raw, "no bucket; want %s://BUCKET/PREFIX", u.Scheme)
		}
		if u.Port() != "" {
			return Location{}, invalid(raw, "bucket %q has a port", u.Host)
		}
		re := s3BucketRE
		if u.Scheme == SchemeNATS {
			re = natsBucketRE
		}
		if !re.MatchString(u.Host) {
			return Location{}, invalid(raw, "invalid bucket name %q", u.Host)
		}
		prefix := strings.Trim(u.Path, "/")
		if !prefixRE.MatchString(prefix) {
			return Location{}, invalid(raw, "prefix %q: keep it to [A-Za-z0-9._/-]", prefix)
		}
		for _, seg := range strings.Split(prefix, "/") {
			if seg == "." || seg == ".." {
				return Location{}, invalid(raw, "prefix %q has a %q segment", prefix, seg)
			}
		}
		return Location{Scheme: u.Scheme, Bucket: u.Host, Prefix: prefix}, nil
	default:
		return Location{}, invalid(raw, "unknown scheme %q; want s3, file or nats-object", u.Scheme)
	}
}

// Config holds what a URL does not say. Zero values defer to the
// environment: the AWS SDK's chain for S3, natskv.Dial's defaults for NATS.
type Config struct {
	// S3Endpoint is the base URL of an S3-compatible server.
	S3Endpoint string
	// S3Region overrides the AWS region.
	S3Region string
	// S3PathStyle addresses buckets in the path (most S3-compatible
	// servers).
	S3PathStyle bool
	// NATS says how to reach NATS for nats-object URLs.
	NATS natskv.DialConfig
}

// Target is an opened store and the prefix its URL named.
type Target struct {
	// Location is the parsed URL.
	Location Location
	// Store is the opened store.
	Store objstore.Store
	close func()
}

// Transport returns a transport on the target's store and prefix.
func (t *Target) Transport() *objstore.Transport {
	return &objstore.Transport{Store: t.Store, Prefix: t.Location.Prefix}
}

// Close releases what Open acquired (the NATS connection).
func (t *Target) Close() {
	if t.close != nil {
		t.close()
	}
}

// Open parses raw and opens its store: file creates the directory if
// missing; s3 loads the AWS configuration (no request is sent);
// nats-object dials NATS and creates the buckets if missing.
func Open(ctx context.Context, raw string, cfg Config) (*Target, error) {
	loc, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	t := &Target{Location: loc}
	switch loc.Scheme {
	case SchemeFile:
		t.Store, err = file.Open(loc.Dir)
	case SchemeS3:
		t.Store, err = s3.New(ctx, s3.Config{Bucket: loc.Bucket, Endpoint: cfg.S3Endpoint, Region: cfg.S3Region, PathStyle: cfg.S3PathStyle})
	case SchemeNATS:
		nc, derr := natskv.Dial(cfg.NATS)
		if derr != nil {
			return nil, derr
		}
		t.close = nc.Close
		t.Store, err = natsobj.Open(ctx, nc, natsobj.Config{Bucket: loc.Bucket})
		if err != nil {
			nc.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", loc, err)
	}
	return t, nil
}
