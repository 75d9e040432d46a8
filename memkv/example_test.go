package memkv_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/memkv"
)

// The in-memory bucket behaves like a JetStream KV bucket: revisions,
// delete markers, compare-and-set, and history that can be compacted away
// so that an old cursor expires.
func ExampleKV() {
	ctx := context.Background()
	kv := memkv.New()
	r1, _ := kv.Put(ctx, "flag.dark-mode", []byte("off"))
	if _, err := kv.Update(ctx, "flag.dark-mode", []byte("on"), r1); err != nil {
		log.Fatal(err)
	}
	_, err := kv.Update(ctx, "flag.dark-mode", []byte("stale"), r1)
	fmt.Println("stale CAS:", err != nil)
	if _, err := kv.Put(ctx, "flag.beta", []byte("on")); err != nil {
		log.Fatal(err)
	}
	if _, err := kv.Delete(ctx, "flag.beta"); err != nil {
		log.Fatal(err)
	}
	keys, _ := kv.Keys(ctx, "flag.")
	fmt.Println("live keys:", keys)

	// Evict history up to revision 3: a watch resuming after revision 1
	// would miss updates, so it reports the expiry instead.
	kv.Compact(3)
	out := make(chan slipstream.Update, 8)
	err = kv.Watch(ctx, slipstream.AllKeys(), slipstream.CursorFromUint64(1), out)
	fmt.Println("resume after 1 expired:", errors.Is(err, slipstream.ErrCursorExpired))
	// Output:
	// stale CAS: true
	// live keys: [flag.dark-mode]
	// resume after 1 expired: true
}
