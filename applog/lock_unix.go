//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package applog

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/slipstream-kv/slipstream"
)

// lockFile takes an exclusive, non-blocking flock on path, creating it. flock
// locks belong to the open file description, so a second lockFile of the
// same path fails even within one process.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("applog: open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("applog: lock %s: %w", path, slipstream.ErrLocked)
		}
		return nil, fmt.Errorf("applog: lock %s: %w", path, err)
	}
	return f, nil
}
