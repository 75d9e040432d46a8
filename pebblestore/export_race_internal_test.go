package pebblestore

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/slipstream-kv/slipstream"
)

// intruderFS runs intrude once, when pebble creates the checkpoint's
// directory inside the export's stage: the moment between ExportTo's
// destination check and its rename.
type intruderFS struct {
	vfs.FS
	once    sync.Once
	intrude func() error
	fail    error // returned by that MkdirAll after intruding
}

func (f *intruderFS) MkdirAll(dir string, perm os.FileMode) error {
	if strings.Contains(dir, ExportStagePrefix) {
		var err error
		f.once.Do(func() {
			if err = f.intrude(); err == nil {
				err = f.fail
			}
		})
		if err != nil {
			return err
		}
	}
	return f.FS.MkdirAll(dir, perm)
}

// ExportTo never removes or overwrites what it did not create: a
// destination that fills up during the checkpoint is refused with the
// intruder's files untouched, and a failed checkpoint leaves an existing
// empty destination as it was, with nothing beside it.
func TestExportToDestinationRace(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range []struct {
		name      string
		precreate bool
		fail      error
	}{
		{"absent then filled", false, nil},
		{"empty then filled", true, nil},
		{"empty then filled and the checkpoint fails", true, errors.New("disk full")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "export")
			intruder := filepath.Join(dest, "MANIFEST-000001")
			ifs := &intruderFS{FS: vfs.Default, fail: tt.fail, intrude: func() error {
				if err := os.MkdirAll(dest, 0o755); err != nil {
					return err
				}
				return os.WriteFile(intruder, []byte("not yours"), 0o644)
			}}
			s, err := open(t.TempDir(), &Options{Logger: quiet}, ifs, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			batch := []slipstream.Update{slipstream.Put("a", []byte("1"), slipstream.VersionFromUint64(1))}
			if err := s.Apply(batch, slipstream.CursorFromUint64(1)); err != nil {
				t.Fatal(err)
			}
			if tt.precreate {
				if err := os.Mkdir(dest, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			_, err = s.ExportTo(dest)
			if tt.fail == nil && !errors.Is(err, slipstream.ErrArtifactInvalid) {
				t.Fatalf("ExportTo = %v, want ErrArtifactInvalid", err)
			}
			if tt.fail != nil && !errors.Is(err, tt.fail) {
				t.Fatalf("ExportTo = %v, want the injected failure", err)
			}
			if b, err := os.ReadFile(intruder); err != nil || string(b) != "not yours" {
				t.Fatalf("intruder file: %q, %v", b, err)
			}
			if des, _ := os.ReadDir(dest); len(des) != 1 {
				t.Fatalf("destination holds %v", des)
			}
			if des, _ := os.ReadDir(parent); len(des) != 1 {
				t.Fatalf("parent holds %v, want only the destination", des)
			}
		})
	}
}
