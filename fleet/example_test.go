package fleet_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/fleet"
	"github.com/slipstream-kv/slipstream/lease"
	"github.com/slipstream-kv/slipstream/memkv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/mem"
)

// A node publishes its live fold in an export round, and a new node
// bootstraps from it.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fleet-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The bucket (memkv here; natskv.Open in production) and node A's fold,
	// kept in step by a running follower.
	bucket := memkv.New()
	for _, k := range []string{"route.a", "route.b", "route.c"} {
		bucket.Put(ctx, k, []byte("v1"))
	}
	foldA, err := applog.Open(filepath.Join(dir, "a"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer foldA.Close()
	f := slipstream.NewFollower(bucket, func(context.Context, []slipstream.Update) error { return nil })
	f.Store, f.Lister = foldA, bucket
	f.Logger = slog.New(slog.DiscardHandler)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.Run(runCtx) }()
	defer func() { stop(); <-done }()
	for foldA.Cursor().Rank() < bucket.LastRevision() {
		time.Sleep(time.Millisecond)
	}

	// One export round: the lease (a KV key), the live loop, the transport.
	transport := &objstore.Transport{Store: mem.New(), Prefix: "fleet"}
	round := &fleet.ExportRound{
		Lease:      &lease.Lease{KV: memkv.New(), Key: "export.routes", Holder: "node-a"},
		TTL:        time.Minute,
		Follower:   f,
		Transport:  transport,
		Key:        "routes/latest",
		ScratchDir: filepath.Join(dir, "scratch"),
	}
	res, err := round.Run(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Outcome, "at cursor", res.Manifest.Cursor)

	// Node B starts from the artifact; a follower on it would resume after
	// cursor 3.
	m, err := fleet.ImportRemote(ctx, transport, "routes/latest", filepath.Join(dir, "scratch"),
		filepath.Join(dir, "b"), applog.ArtifactBackend{})
	if err != nil {
		log.Fatal(err)
	}
	foldB, err := applog.Open(filepath.Join(dir, "b"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer foldB.Close()
	n, err := foldB.Len()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("imported", m.Backend, "at cursor", foldB.Cursor(), "with", n, "keys")
	// Output:
	// published at cursor 3
	// imported append-log at cursor 3 with 3 keys
}
