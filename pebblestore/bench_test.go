package pebblestore_test

import (
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/pebblestore"
	"github.com/slipstream-kv/slipstream/storetest"
)

// BenchmarkApplyOptions runs storetest's Apply workload (inserts of
// SLIPSTREAM_BENCH_KEYS keys, then overwrites) under the fixed settings
// pebblestore used before sizing from the machine (a 64 MiB cache, so 16
// MiB memtables, and one compaction at a time, pebble's default) and under
// the zero Options (sized from the machine). Run it with enough iterations
// to overwrite the key space, e.g.
//
//	SLIPSTREAM_BENCH_KEYS=1000000 go test -run '^$' -bench ApplyOptions/.*/batch=1000 -benchtime 3000x ./pebblestore
func BenchmarkApplyOptions(b *testing.B) {
	for _, c := range []struct {
		name string
		opts pebblestore.Options
	}{
		{"fixed-64MiB-1compaction", pebblestore.Options{CacheSize: pebblestore.DefaultCacheSize, CompactionConcurrency: 1}},
		{"machine", pebblestore.Options{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			storetest.BenchApply(b, func(b *testing.B, dir string) slipstream.Store {
				o := c.opts
				o.Logger = quiet
				s, err := pebblestore.Open(dir, &o)
				if err != nil {
					b.Fatal(err)
				}
				return s
			})
		})
	}
}
