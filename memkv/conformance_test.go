package memkv_test

import (
	"testing"

	"github.com/slipstream-kv/slipstream/buckettest"
	"github.com/slipstream-kv/slipstream/memkv"
)

func TestBucketConformance(t *testing.T) {
	buckettest.Run(t, buckettest.Harness{
		New:   func(*testing.T) buckettest.Bucket { return memkv.New() },
		Evict: func(_ *testing.T, b buckettest.Bucket, upTo uint64) { b.(*memkv.KV).Compact(upTo) },
	})
}
