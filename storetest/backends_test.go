package storetest_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/pebblestore"
	"github.com/slipstream-kv/slipstream/storetest"
)

// The cross-backend benchmarks: the same workload on every backend, named
// BenchmarkStore_Apply/<backend>/batch=N and BenchmarkStore_Read/<backend>/….

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var backends = []struct {
	name string
	open storetest.BenchOpener
}{
	{"applog", func(b *testing.B, dir string) slipstream.Store {
		s, err := applog.Open(dir, &applog.Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
	{"pebble", func(b *testing.B, dir string) slipstream.Store {
		s, err := pebblestore.Open(dir, &pebblestore.Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
}

func BenchmarkStore_Apply(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) { storetest.BenchApply(b, be.open) })
	}
}

func BenchmarkStore_Read(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) { storetest.BenchRead(b, be.open) })
	}
}
