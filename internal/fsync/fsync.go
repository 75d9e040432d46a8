// Package fsync makes directory changes durable: after a file is created,
// renamed or removed, the directory holding it must be synced too, or a
// crash may forget the change even though the file's own data was synced.
package fsync

import (
	"fmt"
	"os"
)

// Dir fsyncs the directory dir, so that the entries created, renamed or
// removed in it survive a crash. Errors name dir and wrap the OS error
// (fs.ErrNotExist for a missing directory).
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
