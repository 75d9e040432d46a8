package pebblestore

import (
	"bytes"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// Bounds of the block cache sized from the machine.
const (
	minAutoCacheSize = DefaultCacheSize
	maxAutoCacheSize = 1 << 30
)

// autoCacheSize returns the block cache for a machine whose process may
// use mem bytes (0: unknown): an eighth of it, within 64 MiB and 1 GiB, or
// DefaultCacheSize when mem is unknown.
func autoCacheSize(mem int64) int64 {
	if mem <= 0 {
		return DefaultCacheSize
	}
	return min(max(mem/8, minAutoCacheSize), maxAutoCacheSize)
}

// autoCompactionConcurrency is the most compactions pebble may run at once
// by default: one per CPU the Go runtime uses (pebble's own default is one).
func autoCompactionConcurrency() int { return max(1, runtime.GOMAXPROCS(0)) }

// processMemory returns the memory this process may use: the smallest of
// GOMEMLIMIT, the cgroup's memory limit and the physical memory, as far as
// they are known (Linux files; elsewhere only GOMEMLIMIT); 0 when none is.
func processMemory() int64 {
	return memoryLimit(os.ReadFile, debug.SetMemoryLimit(-1))
}

// memoryLimit is processMemory over a file reader and the Go memory limit
// (math.MaxInt64 when unset).
func memoryLimit(read func(string) ([]byte, error), goLimit int64) int64 {
	var limit int64
	take := func(v int64) {
		if v > 0 && (limit == 0 || v < limit) {
			limit = v
		}
	}
	if goLimit > 0 && goLimit < math.MaxInt64 {
		take(goLimit)
	}
	// cgroup v2, then v1 (whose "unlimited" is a huge number).
	if b, err := read("/sys/fs/cgroup/memory.max"); err == nil {
		take(parseBytes(b))
	}
	if b, err := read("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		if v := parseBytes(b); v < 1<<60 {
			take(v)
		}
	}
	if b, err := read("/proc/meminfo"); err == nil {
		take(memTotal(b))
	}
	return limit
}

// parseBytes parses a cgroup limit file: a byte count, or "max" (0).
func parseBytes(b []byte) int64 {
	v, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || v <= 0 {
		return 0
	}
	return v
}

// memTotal returns MemTotal from /proc/meminfo content, in bytes (0 if
// absent).
func memTotal(meminfo []byte) int64 {
	for line := range bytes.SplitSeq(meminfo, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("MemTotal:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || kb <= 0 {
			return 0
		}
		return kb << 10
	}
	return 0
}
