package slipstream_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
)

// The acceptance list's append-log scenarios (#13, #21, #26, #27) on the real
// applog store, each checked by reopening the files from disk.

func openAppLog(t *testing.T, dir string, opts *applog.Options) *applog.Store {
	t.Helper()
	s, err := applog.Open(dir, opts)
	if err != nil {
		t.Fatalf("applog.Open: %v", err)
	}
	return s
}

// reopenAppLog closes s and reopens its directory, returning the persisted
// cursor and contents.
func reopenAppLog(t *testing.T, s *applog.Store, dir string) (slipstream.Cursor, map[string]string) {
	t.Helper()
	if s != nil {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	r := openAppLog(t, dir, nil)
	defer r.Close()
	got := make(map[string]string)
	if err := r.ForEachInRange("", func(e slipstream.Entry) error {
		got[e.Key] = string(e.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return r.Cursor(), got
}

// #13
func TestSnapshotCheckpointMatchesAppliedCursorAppLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := openAppLog(t, dir, nil)
		w := &scriptedWatcher{full: []slipstream.Update{put("node.a", "1", 1), put("node.b", "2", 2)}}
		f := newFollower(w, &recorder{})
		f.Store = store
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 2)
		persisted, got := reopenAppLog(t, store, dir)
		if persisted != c {
			t.Fatalf("persisted cursor %v != applied cursor %v", persisted, c)
		}
		if len(got) != 2 || got["node.a"] != "1" || got["node.b"] != "2" {
			t.Fatalf("persisted fold = %v", got)
		}
	})
}

// #21
func TestExportRequestFlushesPendingBatchFirstAppLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openAppLog(t, t.TempDir(), nil)
		defer store.Close()
		testExportFlushesPending(t, store, func(t *testing.T, dir string) (slipstream.Cursor, map[string]string) {
			return reopenAppLog(t, nil, dir)
		})
	})
}

// #26: max 1 and the smallest compaction threshold, so flushes compact.
// (In applog.Options a threshold of 0 means the default, and 1 is the
// smallest.)
func TestSnapshotCompactionFiresAndStaysConsistentAppLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var logs bytes.Buffer
		debug := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		store := openAppLog(t, dir, &applog.Options{CompactThreshold: 1, Logger: debug})
		sizes := []int64{}
		hook := &hookStore{Store: store}
		hook.apply = func(b []slipstream.Update, c slipstream.Cursor) error {
			err := store.Apply(b, c)
			if n, serr := store.Size(); serr == nil {
				sizes = append(sizes, n)
			}
			return err
		}
		testOneUpdatePerFlush(t, hook)
		t.Logf("log size after each flush: %v", sizes)
		if len(sizes) != 4 {
			t.Fatalf("%d flushes, want 4", len(sizes))
		}
		// The store logs each rewrite; the sizes show it too: a flush
		// that appends records (at least a cursor record, 14 bytes) but
		// leaves the log barely larger has rewritten it.
		rewritten := false
		for i := 1; i < len(sizes); i++ {
			rewritten = rewritten || sizes[i]-sizes[i-1] < 14
		}
		if n := strings.Count(logs.String(), "log compacted"); n == 0 || !rewritten {
			t.Fatalf("log sizes %v, %d compactions logged: no flush compacted the log", sizes, n)
		}
		persisted, got := reopenAppLog(t, store, dir)
		wantCursor(t, "persisted cursor", persisted, 4)
		if len(got) != 2 || got["node.a"] != "4" || got["node.b"] != "3" {
			t.Fatalf("persisted fold = %v, want {node.a:4 node.b:3}", got)
		}
	})
}

// #27: the store's first apply fails; the reopened store holds both keys
// at cursor 2.
func TestTransientStoreFailureNeverLeavesACursorGapAppLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := openAppLog(t, dir, nil)
		testTransientStoreFailure(t, failFirstApply(store))
		persisted, got := reopenAppLog(t, store, dir)
		wantCursor(t, "persisted cursor", persisted, 2)
		if got["node.a"] != "1" || got["node.b"] != "2" {
			t.Fatalf("reopened fold = %v: the failed batch was dropped behind an advancing cursor", got)
		}
	})
}

// #9 and #10 on disk: the resync's synthetic deletes survive a reopen.
func TestCursorExpiredResyncDeletesStaleKeysAppLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := openAppLog(t, dir, nil)
		if err := store.Apply([]slipstream.Update{put("node.a", "1", 1), put("node.b", "2", 2), put("other.z", "9", 3)}, cur(3)); err != nil {
			t.Fatal(err)
		}
		w := &scriptedWatcher{full: []slipstream.Update{put("node.a", "1b", 10)}, fromExpires: true}
		f := newFollower(w, &recorder{})
		f.Scope = slipstream.Prefix("node.")
		f.Resume = store.Cursor()
		f.Store = store
		f.Lister = &prefixLister{live: []string{"node.a"}}
		c := mustRun(t, f)
		wantCursor(t, "returned cursor", c, 10)
		persisted, got := reopenAppLog(t, store, dir)
		wantCursor(t, "persisted cursor", persisted, 10)
		if len(got) != 2 || got["node.a"] != "1b" || got["other.z"] != "9" {
			t.Fatalf("persisted fold = %v, want {node.a:1b other.z:9}", got)
		}
	})
}
