package slipstream_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/memkv"
)

// quiet keeps the examples' output to what they print.
var quiet = slog.New(slog.DiscardHandler)

// printer returns an Apply that prints each update with a label.
func printer(label string) func(context.Context, []slipstream.Update) error {
	return func(_ context.Context, batch []slipstream.Update) error {
		for _, u := range batch {
			if u.Op == slipstream.OpPut {
				fmt.Println(label, u.Op, u.Key, string(u.Value))
			} else {
				fmt.Println(label, u.Op, u.Key)
			}
		}
		return nil
	}
}

// stopAt returns an OnApplied that cancels the run once the cursor reaches
// rev; the examples use it to end deterministically.
func stopAt(rev uint64, cancel context.CancelFunc) func(slipstream.Cursor) {
	return func(c slipstream.Cursor) {
		if c.Rank() >= rev {
			cancel()
		}
	}
}

func mustWrite(_ uint64, err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// A Follower on the in-memory bucket. A run without a cursor starts with a
// state-sync watch: the latest record of every key in scope (a delete marker
// included), then live changes. Apply sees updates in revision order and
// the cursor advances only after it returns.
func ExampleFollower() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kv := memkv.New()
	mustWrite(kv.Put(ctx, "route.a", []byte("10.0.0.1")))
	mustWrite(kv.Put(ctx, "route.b", []byte("10.0.0.2")))
	mustWrite(kv.Delete(ctx, "route.a"))
	mustWrite(kv.Put(ctx, "other.x", []byte("ignored"))) // out of scope

	f := slipstream.NewFollower(kv, printer("apply"))
	f.Scope = slipstream.Prefix("route.")
	f.OnApplied = stopAt(3, cancel)
	f.Logger = quiet
	cursor, err := f.Run(ctx) // returns after ctx is cancelled, pending batch flushed
	fmt.Println("applied up to", cursor, err)
	// Output:
	// apply put route.b 10.0.0.2
	// apply delete route.a
	// applied up to 3 <nil>
}

// A durable fold makes restarts cheap: the second run resumes after the
// fold's own cursor and receives only what changed while it was down.
func ExampleFollower_Run_resume() {
	dir, err := os.MkdirTemp("", "slipstream-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fold, err := applog.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer fold.Close()

	kv := memkv.New()
	bg := context.Background()
	mustWrite(kv.Put(bg, "route.a", []byte("1")))
	mustWrite(kv.Put(bg, "route.b", []byte("2")))

	run := func(label string, until uint64) {
		ctx, cancel := context.WithCancel(bg)
		defer cancel()
		f := slipstream.NewFollower(kv, printer(label))
		f.Store = fold // Run resumes from the fold's own cursor
		f.OnApplied = stopAt(until, cancel)
		f.Logger = quiet
		if _, err := f.Run(ctx); err != nil {
			log.Fatal(err)
		}
	}
	run("run 1:", 2)
	fmt.Println("fold cursor", fold.Cursor())

	// Changes while the node is down.
	mustWrite(kv.Put(bg, "route.c", []byte("3")))
	mustWrite(kv.Delete(bg, "route.a"))
	run("run 2:", 4)

	fmt.Printf("fold cursor %v:", fold.Cursor())
	_ = fold.ForEachInRange("", func(e slipstream.Entry) error {
		fmt.Printf(" %s=%s", e.Key, e.Value)
		return nil
	})
	fmt.Println()
	// Output:
	// run 1: put route.a 1
	// run 1: put route.b 2
	// fold cursor 2
	// run 2: put route.c 3
	// run 2: delete route.a
	// fold cursor 4: route.b=2 route.c=3
}

// When the history after the cursor is gone (compacted), the Follower
// resyncs: with a Lister and a Store it deletes the fold's keys that are no
// longer live — even though their delete markers were evicted — before the
// fallback state-sync watch re-lists the bucket.
func ExampleFollower_Run_resync() {
	dir, err := os.MkdirTemp("", "slipstream-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fold, err := applog.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer fold.Close()
	// The fold of an earlier run: two routes at cursor 2.
	err = fold.Apply([]slipstream.Update{
		slipstream.Put("route.gone", []byte("1"), slipstream.VersionFromUint64(1)),
		slipstream.Put("route.keep", []byte("1"), slipstream.VersionFromUint64(2)),
	}, slipstream.CursorFromUint64(2))
	if err != nil {
		log.Fatal(err)
	}

	// Meanwhile the bucket moved on and evicted its head, delete marker
	// included (revision 3).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kv := memkv.New()
	mustWrite(kv.Put(ctx, "route.gone", []byte("1")))
	mustWrite(kv.Put(ctx, "route.keep", []byte("1")))
	mustWrite(kv.Delete(ctx, "route.gone"))
	mustWrite(kv.Put(ctx, "route.keep", []byte("2")))
	kv.Compact(3)

	f := slipstream.NewFollower(kv, printer("apply"))
	f.Store, f.Lister = fold, kv
	f.OnApplied = stopAt(4, cancel)
	f.OnResync = func(ri slipstream.ResyncInfo) { fmt.Println("resync: stale keys", ri.StaleKeys) }
	f.Logger = quiet
	cursor, err := f.Run(ctx)
	if err != nil {
		log.Fatal(err)
	}
	_, gone, _ := fold.Get("route.gone")
	fmt.Println("cursor", cursor, "route.gone in fold:", gone)
	// Output:
	// apply delete route.gone
	// resync: stale keys 1
	// apply put route.keep 2
	// cursor 4 route.gone in fold: false
}

// Export writes a consistent copy of a running Follower's fold between two
// flushes: pending updates are flushed first, so the copy's cursor is the
// applied cursor.
func ExampleFollower_Export() {
	dir, err := os.MkdirTemp("", "slipstream-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fold, err := applog.Open(filepath.Join(dir, "fold"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer fold.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kv := memkv.New()
	mustWrite(kv.Put(ctx, "route.a", []byte("1")))
	mustWrite(kv.Put(ctx, "route.b", []byte("2")))

	applied := make(chan struct{})
	f := slipstream.NewFollower(kv, func(context.Context, []slipstream.Update) error { return nil })
	f.Store = fold
	var once sync.Once
	f.OnApplied = stopAt(2, func() { once.Do(func() { close(applied) }) })
	f.Logger = quiet
	done := make(chan error)
	go func() {
		_, err := f.Run(ctx)
		done <- err
	}()
	<-applied

	exp, err := f.Export(ctx, filepath.Join(dir, "export"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exported", exp.Backend, "at cursor", exp.Cursor)
	cancel()
	if err := <-done; err != nil {
		log.Fatal(err)
	}

	copyFold, err := applog.Open(filepath.Join(dir, "export"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer copyFold.Close()
	n, err := copyFold.Len()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("copy holds", n, "keys at cursor", copyFold.Cursor())
	// Output:
	// exported append-log at cursor 2
	// copy holds 2 keys at cursor 2
}
