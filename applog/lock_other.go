//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package applog

import (
	"fmt"
	"os"
)

// lockFile creates path but takes no lock: on this platform two processes
// can open the same fold, and the caller must prevent it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("applog: open lock %s: %w", path, err)
	}
	return f, nil
}
