package natskv_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/natskv"
)

// startServer stands in for your NATS deployment: an embedded JetStream
// server on a random loopback port.
func startServer(storeDir string) *server.Server {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: storeDir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats-server did not start")
	}
	return srv
}

// A bucket opened from a connection feeds a Follower: a state-sync watch
// of the scope, then live changes, applied in batches; the cursor the
// Follower returns is the last revision whose Apply returned.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "nats-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv := startServer(dir)
	defer srv.Shutdown()

	nc, err := natskv.Dial(natskv.DialConfig{URL: srv.ClientURL(), Name: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Get-or-create; the config applies only when the bucket is created.
	bucket, err := natskv.Open(ctx, nc, natskv.Config{Bucket: "routes", History: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range [][2]string{{"route.eu", "10.0.0.1"}, {"route.us", "10.0.0.2"}, {"other.x", "y"}} {
		if _, err := bucket.Put(ctx, kv[0], []byte(kv[1])); err != nil {
			log.Fatal(err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	f := slipstream.NewFollower(bucket, func(_ context.Context, batch []slipstream.Update) error {
		for _, u := range batch {
			fmt.Println(u.Op, u.Key, string(u.Value), "revision", u.Version)
			if u.Key == "route.us" {
				stop() // seen everything in scope: shut down
			}
		}
		return nil
	})
	f.Scope = slipstream.Prefix("route.")
	f.Logger = slog.New(slog.DiscardHandler)
	cursor, err := f.Run(runCtx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("applied through", cursor)
	// Output:
	// put route.eu 10.0.0.1 revision 1
	// put route.us 10.0.0.2 revision 2
	// applied through 2
}
