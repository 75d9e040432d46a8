package pebblestore

import (
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/slipstream-kv/slipstream"
)

func TestAutoCacheSize(t *testing.T) {
	for _, tt := range []struct{ mem, want int64 }{
		{0, DefaultCacheSize},         // unknown
		{256 << 20, 64 << 20},         // an eighth would be 32 MiB: the floor
		{4 << 30, 512 << 20},          // an eighth
		{24 << 30, 1 << 30},           // capped
		{math.MaxInt64 >> 1, 1 << 30}, // capped
	} {
		if got := autoCacheSize(tt.mem); got != tt.want {
			t.Fatalf("autoCacheSize(%d) = %d, want %d", tt.mem, got, tt.want)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	meminfo := []byte("MemTotal:       24684200 kB\nMemFree:        22249000 kB\n")
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if v, ok := m[p]; ok {
				return []byte(v), nil
			}
			return nil, fs.ErrNotExist
		}
	}
	for _, tt := range []struct {
		name    string
		files   map[string]string
		goLimit int64
		want    int64
	}{
		{"nothing known", nil, math.MaxInt64, 0},
		{"physical memory", map[string]string{"/proc/meminfo": string(meminfo)}, math.MaxInt64, 24684200 << 10},
		{"cgroup v2 unlimited", map[string]string{"/proc/meminfo": string(meminfo), "/sys/fs/cgroup/memory.max": "max\n"}, math.MaxInt64, 24684200 << 10},
		{"cgroup v2 limit", map[string]string{"/proc/meminfo": string(meminfo), "/sys/fs/cgroup/memory.max": "2147483648\n"}, math.MaxInt64, 2 << 30},
		{"cgroup v1 unlimited", map[string]string{"/proc/meminfo": string(meminfo), "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, math.MaxInt64, 24684200 << 10},
		{"cgroup v1 limit", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "1073741824"}, math.MaxInt64, 1 << 30},
		{"GOMEMLIMIT lowest", map[string]string{"/proc/meminfo": string(meminfo)}, 512 << 20, 512 << 20},
	} {
		if got := memoryLimit(files(tt.files), tt.goLimit); got != tt.want {
			t.Fatalf("%s: memoryLimit = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestOpenSizesFromTheMachine checks that zero Options take the machine's
// sizes and explicit ones are kept.
func TestOpenSizesFromTheMachine(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cache := autoCacheSize(processMemory())
	if s.cacheSize != cache || s.compactions != runtime.GOMAXPROCS(0) || s.memTable != min(max(cache/4, 4<<20), 64<<20) {
		t.Fatalf("cache %d, memtable %d, compactions %d", s.cacheSize, s.memTable, s.compactions)
	}
	s.Close()
	s, err = Open(filepath.Join(t.TempDir(), "b"), &Options{CacheSize: 8 << 20, CompactionConcurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if s.cacheSize != 8<<20 || s.compactions != 3 || s.memTable != 4<<20 {
		t.Fatalf("explicit options: cache %d, memtable %d, compactions %d", s.cacheSize, s.memTable, s.compactions)
	}
	s.Close()
	s, err = Open(filepath.Join(t.TempDir(), "c"), &Options{MemTableSize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.memTable != 2<<20 {
		t.Fatalf("explicit memtable: %d", s.memTable)
	}
}

// TestCloseFlushesSoARestartReplaysNothing writes a fold smaller than a
// memtable, closes it and reopens it: the reopen must find no write-ahead
// log data to replay and flush (Close flushed the memtables), so a clean
// restart costs the open, not the fold's recent writes.
func TestCloseFlushesSoARestartReplaysNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fold")
	s, err := Open(dir, &Options{CacheSize: 256 << 20}) // 64 MiB memtables
	if err != nil {
		t.Fatal(err)
	}
	var batch []slipstream.Update
	for i := range 5000 {
		batch = append(batch, slipstream.Put(fmt.Sprintf("k.%05d", i), make([]byte, 200), slipstream.VersionFromUint64(uint64(i+1))))
	}
	if err := s.Apply(batch, slipstream.CursorFromUint64(5000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var flushed atomic.Uint64
	s, err = open(dir, &Options{CacheSize: 256 << 20}, vfs.Default, func(o *pebble.Options) {
		o.EventListener = &pebble.EventListener{FlushEnd: func(fi pebble.FlushInfo) { flushed.Add(fi.InputBytes) }}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := flushed.Load(); n > 64<<10 {
		t.Fatalf("the reopen flushed %d bytes replayed from the write-ahead log", n)
	}
	if e, ok, err := s.Get("k.04999"); err != nil || !ok || len(e.Value) != 200 {
		t.Fatalf("Get after reopen: %v %v", ok, err)
	}
}
