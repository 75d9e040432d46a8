package pebblestore_test

import (
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/pebblestore"
)

// A Pebble fold commits data and cursor in one batch, streams ordered
// prefix ranges, and is settled (flushed and compacted) before serving.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "fold-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	fold, err := pebblestore.Open(dir, &pebblestore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer fold.Close()
	batch := []slipstream.Update{
		slipstream.Put("cert.b", []byte("B"), slipstream.VersionFromUint64(1)),
		slipstream.Put("cert.a", []byte("A"), slipstream.VersionFromUint64(2)),
		slipstream.Put("flag.x", []byte("on"), slipstream.VersionFromUint64(3)),
	}
	if err := fold.Apply(batch, slipstream.CursorFromUint64(3)); err != nil {
		log.Fatal(err)
	}
	if err := fold.Settle(); err != nil {
		log.Fatal(err)
	}
	err = fold.ForEachInRange("cert.", func(e slipstream.Entry) error {
		fmt.Println(e.Key, string(e.Value), e.Version)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cursor", fold.Cursor())
	// Output:
	// cert.a A 2
	// cert.b B 1
	// cursor 3
}
