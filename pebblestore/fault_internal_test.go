package pebblestore

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/slipstream-kv/slipstream"
)

var errInjected = errors.New("injected WAL write failure")

// walFaults fails the nth write to a write-ahead log (a *.log file) once
// armed, counting from 1.
type walFaults struct {
	armed  atomic.Bool
	writes atomic.Int32
	n      int32
}

func (w *walFaults) MaybeError(op errorfs.Op) error {
	if w.armed.Load() && op.Kind == errorfs.OpFileWrite && strings.HasSuffix(op.Path, ".log") {
		if w.writes.Add(1) == w.n {
			return errInjected
		}
	}
	return nil
}

func (w *walFaults) String() string { return fmt.Sprintf("fail WAL write %d", w.n) }

// syncAncestors syncs the directories above dir, so that the fold's own
// directory survives a crash of the in-memory filesystem (pebble syncs the
// fold's directory, not the ones above it).
func syncAncestors(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		d, err := fs.OpenDir(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
		d.Close()
		if p == filepath.Dir(p) {
			return
		}
	}
}

func rev(n uint64) slipstream.Version { return slipstream.VersionFromUint64(n) }
func cur(n uint64) slipstream.Cursor  { return slipstream.CursorFromUint64(n) }

// applyRecovering runs Apply and turns pebble's fatal commit error (its
// Logger.Fatalf, which this package's logger turns into a panic) into an
// error.
func applyRecovering(s *Store, batch []slipstream.Update, c slipstream.Cursor) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("apply panicked: %v", r)
		}
	}()
	return s.Apply(batch, c)
}

// TestFailedDataWriteLeavesTheCursor fails each WAL write of an Apply in
// turn (in Sync mode, so each commit is written and synced before the next
// one starts), then "crashes": a clone of the in-memory filesystem keeping
// only synced data is reopened. The cursor must not have moved unless the
// batch's data is all there: a cursor committed in a write of its own,
// ahead of the data, is caught here.
func TestFailedDataWriteLeavesTheCursor(t *testing.T) {
	batch := []slipstream.Update{
		slipstream.Put("a", []byte("new"), rev(10)),
		slipstream.Delete("b", rev(11)),
		slipstream.Put("c", []byte("3"), rev(12)),
	}
	failures := 0
	for n := int32(1); ; n++ {
		if n > 5 {
			t.Fatal("the Apply never succeeded")
		}
		mem := vfs.NewCrashableMem()
		faults := &walFaults{n: n}
		dir := filepath.Join(t.TempDir(), "fold")
		opts := &Options{Sync: true, Logger: slog.New(slog.DiscardHandler)}
		s, err := open(dir, opts, errorfs.Wrap(mem, faults), nil)
		if err != nil {
			t.Fatal(err)
		}
		syncAncestors(t, mem, dir)
		if err := s.Apply([]slipstream.Update{slipstream.Put("a", []byte("old"), rev(1)), slipstream.Put("b", []byte("2"), rev(2))}, cur(2)); err != nil {
			t.Fatal(err)
		}
		faults.armed.Store(true)
		err = applyRecovering(s, batch, cur(12))
		faults.armed.Store(false)
		if err == nil {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			break // n is past the Apply's last WAL write
		}
		failures++
		// The crash: what survives is what was synced. The failed store is
		// abandoned (pebble treats the failure as fatal).
		s, err = open(dir, opts, mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0}), nil)
		if err != nil {
			t.Fatalf("WAL write %d failed: reopen: %v", n, err)
		}
		a, _, err := s.Get("a")
		if err != nil {
			t.Fatal(err)
		}
		_, bLive, _ := s.Get("b")
		_, cLive, _ := s.Get("c")
		switch got := s.Cursor(); got {
		case cur(2):
			if string(a.Value) != "old" || !bLive || cLive {
				t.Fatalf("WAL write %d failed: cursor 2 but the batch is partly applied (a=%q b=%v c=%v)", n, a.Value, bLive, cLive)
			}
		case cur(12):
			if string(a.Value) != "new" || bLive || !cLive {
				t.Fatalf("WAL write %d failed: the cursor moved to 12 without its data (a=%q b=%v c=%v)", n, a.Value, bLive, cLive)
			}
		default:
			t.Fatalf("WAL write %d failed: cursor %v", n, got)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if failures == 0 {
		t.Fatal("no WAL write failed")
	}
}
