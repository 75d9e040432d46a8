//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package applog

import (
	"math"
	"os"
	"syscall"
)

// mapLen is how much of the log a reader maps: 64 GiB of address space, or
// twice the file if larger, so that the appends that follow stay inside the
// mapping (pages past the end of the file are never touched: the keydir
// only points at written records). Reads past the mapping use pread.
func mapLen(size int64) int64 {
	return max(64<<30, 2*size)
}

// mapLog maps the log read-only, shared, so a read of a value is a copy
// out of the page cache rather than a system call. It returns nil when the
// platform refuses (32-bit address space, limits): reads then use pread.
func mapLog(f *os.File, size int64) []byte {
	n := mapLen(size)
	if n > math.MaxInt || int64(int(n)) != n {
		return nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	return b
}

func unmapLog(b []byte) {
	if b != nil {
		_ = syscall.Munmap(b)
	}
}
