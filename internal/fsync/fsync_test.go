package fsync_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream/internal/fsync"
)

func TestDir(t *testing.T) {
	dir := t.TempDir()
	if err := fsync.Dir(dir); err != nil {
		t.Fatalf("Dir(%s) = %v", dir, err)
	}
	missing := filepath.Join(dir, "missing")
	err := fsync.Dir(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Dir of a missing directory = %v, want fs.ErrNotExist naming it", err)
	}
}
