//go:build !unix

package movedir

import (
	"errors"
	"io/fs"
	"os"
)

// Onto renames src onto dst: dst must not exist or be an empty directory.
// Without rename(2)'s semantics an empty directory at dst is removed first;
// the window between the removal and the rename fails closed (the removal
// fails on a non-empty directory, the rename if something reappears).
func Onto(src, dst string) error {
	if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
		if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
		}
	}
	return os.Rename(src, dst)
}
