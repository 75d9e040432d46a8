package applog_test

import (
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
)

// A fold records a batch and its cursor together; reopening the directory
// replays the log to the same state.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "fold-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	opts := &applog.Options{Logger: slog.New(slog.DiscardHandler)}

	fold, err := applog.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	batch := []slipstream.Update{
		slipstream.Put("route.eu", []byte("10.0.0.1"), slipstream.VersionFromUint64(1)),
		slipstream.Put("route.us", []byte("10.0.0.2"), slipstream.VersionFromUint64(2)),
		slipstream.Delete("route.us", slipstream.VersionFromUint64(3)),
	}
	if err := fold.Apply(batch, slipstream.CursorFromUint64(3)); err != nil {
		log.Fatal(err)
	}
	if err := fold.Close(); err != nil {
		log.Fatal(err)
	}

	fold, err = applog.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer fold.Close()
	e, ok, err := fold.Get("route.eu")
	if err != nil {
		log.Fatal(err)
	}
	_, usOK, _ := fold.Get("route.us")
	n, err := fold.Len()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cursor", fold.Cursor(), "keys", n)
	fmt.Println("route.eu", ok, string(e.Value), "revision", e.Version)
	fmt.Println("route.us", usOK)
	// Output:
	// cursor 3 keys 1
	// route.eu true 10.0.0.1 revision 1
	// route.us false
}
