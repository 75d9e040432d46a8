package lease_test

import (
	"context"
	"fmt"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/lease"
	"github.com/slipstream-kv/slipstream/memkv"
)

// One export round: the node that wins the lease exports, then records the
// cursor it exported; the other node skips the round.
func ExampleLease_TryAcquire() {
	ctx := context.Background()
	bucket := memkv.New() // a *natskv.Bucket in production
	a := &lease.Lease{KV: bucket, Key: "exports.lease", Holder: "node-a"}
	b := &lease.Lease{KV: bucket, Key: "exports.lease", Holder: "node-b"}

	g, err := a.TryAcquire(ctx, time.Minute)
	if err != nil {
		fmt.Println(err)
		return
	}
	gb, _ := b.TryAcquire(ctx, time.Minute)
	fmt.Println("a won:", g != nil, "b won:", gb != nil)

	// ... export and upload; on failure, g.Abandon(ctx) frees the round.
	if err := g.Complete(ctx, slipstream.CursorFromUint64(42)); err != nil {
		fmt.Println(err)
		return
	}
	rec, _ := b.Current(ctx)
	fmt.Println(rec.Holder, rec.CompletedCursorHex)
	// Output:
	// a won: true b won: false
	// node-a 000000000000002a
}
