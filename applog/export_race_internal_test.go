package applog

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// intruderFS runs intrude once, when the export creates its temp file: the
// moment between ExportTo's destination check and its rename.
type intruderFS struct {
	osFS
	once    sync.Once
	intrude func() error
	fail    error // returned by CreateTemp after intruding
}

func (f *intruderFS) CreateTemp(dir, pattern string) (*os.File, error) {
	var err error
	f.once.Do(func() { err = f.intrude() })
	if err != nil {
		return nil, err
	}
	if f.fail != nil {
		return nil, f.fail
	}
	return f.osFS.CreateTemp(dir, pattern)
}

// ExportTo never removes or overwrites what it did not create: a
// destination that fills up while it exports is refused with the
// intruder's files untouched (even one named like the log), and a failed
// export leaves an existing empty destination as it was, with no temp
// directory beside it.
func TestExportToDestinationRace(t *testing.T) {
	for _, tt := range []struct {
		name      string
		precreate bool // the destination exists, empty, at the check
		fail      error
	}{
		{"absent then filled", false, nil},
		{"empty then filled", true, nil},
		{"empty then filled and the export fails", true, errors.New("disk full")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.TempDir(), &Options{Logger: discard})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Apply([]slipstream.Update{slipstream.Put("a", []byte("1"), rev(1))}, cur(1)); err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			dest := filepath.Join(parent, "export")
			if tt.precreate {
				if err := os.Mkdir(dest, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			intruder := filepath.Join(dest, FileName)
			s.fs = &intruderFS{fail: tt.fail, intrude: func() error {
				if err := os.MkdirAll(dest, 0o755); err != nil {
					return err
				}
				return os.WriteFile(intruder, []byte("not yours"), 0o644)
			}}
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
