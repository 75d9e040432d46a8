package natskv_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream/buckettest"
	"github.com/slipstream-kv/slipstream/natskv"
)

func TestBucketConformance(t *testing.T) {
	e := newEnv(t)
	var n atomic.Int32
	buckettest.Run(t, buckettest.Harness{
		New: func(t *testing.T) buckettest.Bucket {
			return e.open(t, natskv.Config{Bucket: fmt.Sprintf("conformance-%d", n.Add(1)), History: 64})
		},
		Evict: func(t *testing.T, b buckettest.Bucket, upTo uint64) {
			// Purging below upTo+1 keeps upTo+1 onward, as head eviction does.
			if err := e.stream(t, b.(*natskv.Bucket).Name()).Purge(t.Context(), jetstream.WithPurgeSequence(upTo+1)); err != nil {
				t.Fatal(err)
			}
		},
	})
}
