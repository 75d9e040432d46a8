package artifact_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/memkv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openAppLog(t *testing.T, dir string) *applog.Store {
	t.Helper()
	s, err := applog.Open(dir, &applog.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// running starts a follower from kv into store, holding updates in its
// batch for an hour, and returns it with a stop function. It runs inside a
// synctest bubble.
func running(t *testing.T, kv *memkv.KV, store slipstream.Store) (*slipstream.Follower, func()) {
	t.Helper()
	f := slipstream.NewFollower(kv, func(context.Context, []slipstream.Update) error { return nil })
	f.Store = store
	f.MaxBatchDelay = time.Hour
	f.Logger = quiet
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := f.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	synctest.Wait() // Run is up and waiting for the watch
	return f, func() {
		cancel()
		wg.Wait()
	}
}

// Export through a running follower flushes the pending batch first: the
// manifest's cursor is the applied cursor, and the artifact holds every
// update received.
func TestExportThroughFollowerFlushesFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		store := openAppLog(t, t.TempDir())
		defer store.Close()
		f, stop := running(t, kv, store)
		defer stop()
		ctx := t.Context()
		for _, k := range []string{"a", "b", "c"} {
			if _, err := kv.Put(ctx, k, []byte("v-"+k)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if c := store.Cursor(); c.Rank() == 3 {
			t.Fatalf("store already at %v: nothing pending, the test proves nothing", c)
		}
		parent := t.TempDir()
		dest := filepath.Join(parent, "art")
		m, err := artifact.Export(ctx, f, dest)
		if err != nil {
			t.Fatalf("Export: %v", err)
		}
		if m.Cursor != slipstream.CursorFromUint64(3) || store.Cursor() != m.Cursor {
			t.Fatalf("manifest cursor %v, store cursor %v; want 3", m.Cursor, store.Cursor())
		}
		if des, _ := os.ReadDir(parent); len(des) != 1 {
			t.Fatalf("parent holds %v, want only the artifact", des)
		}
		fold := filepath.Join(t.TempDir(), "fold")
		if _, err := artifact.Import(dest, fold, applog.ArtifactBackend{}); err != nil {
			t.Fatalf("Import: %v", err)
		}
		s := openAppLog(t, fold)
		defer s.Close()
		if n, err := s.Len(); err != nil || s.Cursor() != m.Cursor || n != 3 {
			t.Fatalf("imported fold: cursor %v, %d keys (%v)", s.Cursor(), n, err)
		}
	})
}

func TestExportFollowerNotRunning(t *testing.T) {
	store := openAppLog(t, t.TempDir())
	defer store.Close()
	f := slipstream.NewFollower(memkv.New(), func(context.Context, []slipstream.Update) error { return nil })
	f.Store = store
	parent := t.TempDir()
	if _, err := artifact.Export(t.Context(), f, filepath.Join(parent, "art")); !errors.Is(err, slipstream.ErrNotRunning) {
		t.Fatalf("Export = %v, want ErrNotRunning", err)
	}
	if des, _ := os.ReadDir(parent); len(des) != 0 {
		t.Fatalf("parent holds %v, want nothing", des)
	}
}

// blockingStore holds ExportTo until release is closed.
type blockingStore struct {
	slipstream.Store
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) ExportTo(dir string) (slipstream.Export, error) {
	close(b.entered)
	<-b.release
	return b.Store.ExportTo(dir)
}

// A caller that gives up while the loop is exporting gets ctx.Err(); the
// stage is removed once the loop has finished writing into it.
func TestExportCancelledRemovesStageAfterLoopFinishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := memkv.New()
		inner := openAppLog(t, t.TempDir())
		defer inner.Close()
		store := &blockingStore{Store: inner, entered: make(chan struct{}), release: make(chan struct{})}
		f, stop := running(t, kv, store)
		defer stop()
		if _, err := kv.Put(t.Context(), "a", []byte("1")); err != nil {
			t.Fatal(err)
		}
		parent := t.TempDir()
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := artifact.Export(ctx, f, filepath.Join(parent, "art"))
			errc <- err
		}()
		<-store.entered
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Export = %v, want context.Canceled", err)
		}
		if des, _ := os.ReadDir(parent); len(des) != 1 {
			t.Fatalf("parent holds %v while the loop still exports, want the stage", des)
		}
		close(store.release)
		synctest.Wait()
		if des, _ := os.ReadDir(parent); len(des) != 0 {
			t.Fatalf("parent holds %v after the loop finished, want nothing", des)
		}
	})
}
