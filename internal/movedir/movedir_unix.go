//go:build unix

package movedir

import (
	"os"
	"syscall"
)

// Onto renames src onto dst with rename(2): dst must not exist or be an
// empty directory (replaced atomically); a non-empty directory or a file at
// dst makes it fail, leaving both untouched. Errors are *os.LinkError.
func Onto(src, dst string) error {
	if err := syscall.Rename(src, dst); err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	return nil
}
