package natskv_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/natskv"
)

// checkEvery is the stream check interval in these tests.
const checkEvery = 100 * time.Millisecond

// recreate deletes the bucket and creates it again with cfg, then writes n
// keys new.0… into it. The returned handle is bound to the new stream.
func recreate(t *testing.T, e *env, cfg natskv.Config, n int) *natskv.Bucket {
	t.Helper()
	if err := e.js.DeleteKeyValue(t.Context(), cfg.Bucket); err != nil {
		t.Fatal(err)
	}
	nb := e.open(t, cfg)
	for i := range n {
		put(t, nb, keyN("new.", i), "1")
	}
	return nb
}

// wantReplaced waits for a running watch to end with the replaced-stream
// error: an ErrWatch (it has sent updates, so never ErrCursorExpired).
func wantReplaced(t *testing.T, w *watchRun, within time.Duration) {
	t.Helper()
	err := w.waitResult(t, within)
	if !errors.Is(err, slipstream.ErrWatch) || !errors.Is(err, natskv.ErrStreamRecreated) || errors.Is(err, slipstream.ErrCursorExpired) {
		t.Fatalf("watch over a replaced stream returned %v, want ErrWatch and ErrStreamRecreated, not ErrCursorExpired", err)
	}
}

// wantRecreatedExpired waits for a resume to fail with ErrCursorExpired
// because its stream was recreated.
func wantRecreatedExpired(t *testing.T, w *watchRun) {
	t.Helper()
	err := w.waitResult(t, 5*time.Second)
	if !errors.Is(err, slipstream.ErrCursorExpired) || !errors.Is(err, natskv.ErrStreamRecreated) {
		t.Fatalf("resume on a recreated stream returned %v, want ErrCursorExpired and ErrStreamRecreated", err)
	}
}

// TestRunningWatchNoticesRecreatedStream: for every scope, a state-sync and
// a resumed watch both end (ErrStreamRecreated) once their bucket is
// deleted and recreated under them, even when the new stream has already
// passed their frontier (so no sequence check could tell).
func TestRunningWatchNoticesRecreatedStream(t *testing.T) {
	e := newEnv(t)
	scopes := map[string]slipstream.Scope{
		"all":      slipstream.AllKeys(),
		"prefix":   slipstream.Prefix("old."),
		"prefixes": slipstream.Prefixes("old.", "new."),
	}
	for name, scope := range scopes {
		for _, resume := range []bool{false, true} {
			bucket := "recreated_" + name
			if resume {
				bucket += "_resume"
			}
			t.Run(bucket, func(t *testing.T) {
				// Memory storage: an embedded server may resurrect a
				// file-backed bucket recreated at once (package documentation).
				cfg := natskv.Config{Bucket: bucket, Storage: natskv.MemoryStorage}
				b := e.open(t, cfg)
				natskv.SetStreamCheckInterval(b, checkEvery)
				var after slipstream.Cursor
				for i := range 3 {
					after = slipstream.CursorFromUint64(put(t, b, keyN("old.", i), "1"))
				}
				if !resume {
					after = slipstream.Cursor{}
				}
				w := startWatch(t, b, scope, after)
				put(t, b, "old.live", "1")
				if u := w.next(t); u.Key != "old.0" && u.Key != "old.live" {
					t.Fatalf("first update %s", u.Key)
				}
				// More keys than before: the new stream passes the frontier.
				recreate(t, e, cfg, 10)
				wantReplaced(t, w, 5*time.Second)
			})
		}
	}
}

// TestRunningWatchWaitsForAGoneStream: while the bucket is gone the watch
// waits (nothing to watch, nothing to resync from); once it is recreated the
// watch ends with ErrCursorExpired.
func TestRunningWatchWaitsForAGoneStream(t *testing.T) {
	e := newEnv(t)
	cfg := natskv.Config{Bucket: "gone", Storage: natskv.MemoryStorage}
	b := e.open(t, cfg)
	natskv.SetStreamCheckInterval(b, checkEvery)
	put(t, b, "k", "1")
	w := startWatch(t, b, slipstream.AllKeys(), slipstream.Cursor{})
	w.next(t)
	if err := e.js.DeleteKeyValue(t.Context(), cfg.Bucket); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-w.result:
		t.Fatalf("watch ended while its stream is gone: %v", err)
	case <-time.After(10 * checkEvery):
	}
	e.open(t, cfg)
	wantReplaced(t, w, 5*time.Second)
}

// TestResumeAfterRecreationIsRefused: a bucket handle that saw one stream
// refuses to resume on a recreated one even when the new stream's last
// sequence has passed the cursor; a state-sync watch re-bases it.
func TestResumeAfterRecreationIsRefused(t *testing.T) {
	e := newEnv(t)
	cfg := natskv.Config{Bucket: "rebase", Storage: natskv.MemoryStorage}
	b := e.open(t, cfg)
	cursor := slipstream.CursorFromUint64(put(t, b, "old", "1"))
	recreate(t, e, cfg, 5)
	w := startWatch(t, b, slipstream.AllKeys(), cursor)
	wantRecreatedExpired(t, w)

	sync := startWatch(t, b, slipstream.AllKeys(), slipstream.Cursor{})
	if u := sync.next(t); u.Key != "new.0" {
		t.Fatalf("state sync on the new stream started with %s", u.Key)
	}
	sync.stop()
	w2 := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(3))
	if u := w2.next(t); u.Key != "new.3" {
		t.Fatalf("resume after the state sync delivered %s, want new.3", u.Key)
	}
}

// TestRunningWatchNoticesRestoredOlderStore: the server's store is restored
// from an older copy (acknowledged writes lost) under a running watch; the
// watch reconnects and ends (ErrStreamRecreated) instead of waiting for
// revisions it already delivered, and a resume from its frontier is expired.
func TestRunningWatchNoticesRestoredOlderStore(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.StartWith(t, func(o *server.Options) { o.StoreDir = dir })
	e := envFor(t, srv, srv.Conn(t))
	b := e.open(t, natskv.Config{Bucket: "restored"})
	natskv.SetStreamCheckInterval(b, checkEvery)
	for i := range 3 {
		put(t, b, keyN("a.", i), "1")
	}
	srv.Shutdown()
	backup := t.TempDir()
	copyDir(t, dir, backup)
	srv.Restart(t)

	w := startWatch(t, b, slipstream.AllKeys(), slipstream.Cursor{})
	var frontier uint64
	for i := range 5 {
		frontier = put(t, b, keyN("b.", i), "1")
	}
	for rev(w.next(t)) != frontier {
	}
	srv.Shutdown()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, dir)
	srv.Restart(t)
	wantReplaced(t, w, 30*time.Second)
	w2 := startWatch(t, b, slipstream.AllKeys(), slipstream.CursorFromUint64(frontier))
	if err := w2.waitResult(t, 5*time.Second); !errors.Is(err, slipstream.ErrCursorAhead) {
		t.Fatalf("resume from the frontier on the restored store: %v, want ErrCursorAhead", err)
	}
}

// copyDir copies the regular files under src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// TestOpenWithRecordedStreamRefusesResumeOnRecreated: a cursor persisted
// with the creation time of its stream (Bucket.SyncedStream) is refused by
// a Bucket opened after a restart (Config.StreamCreated) once the bucket
// was recreated, even when the new stream has passed the cursor; with the
// new stream's creation time the same resume is accepted, and without one
// (unknown) the stream found at Open is taken as the cursor's.
func TestOpenWithRecordedStreamRefusesResumeOnRecreated(t *testing.T) {
	e := newEnv(t)
	cfg := natskv.Config{Bucket: "recorded", Storage: natskv.MemoryStorage}
	b := e.open(t, cfg)
	var cursor slipstream.Cursor
	for i := range 3 {
		cursor = slipstream.CursorFromUint64(put(t, b, keyN("old.", i), "1"))
	}
	old := b.SyncedStream()
	st, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !old.Equal(st.Created) {
		t.Fatalf("SyncedStream %v after Open, want the stream's creation time %v", old, st.Created)
	}
	recreate(t, e, cfg, 5) // new.0…new.4 at revisions 1…5: past the cursor 3

	withOld := cfg
	withOld.StreamCreated = old
	stale := e.open(t, withOld)
	if got := stale.SyncedStream(); !got.Equal(old) {
		t.Fatalf("SyncedStream %v, want the recorded %v", got, old)
	}
	wantRecreatedExpired(t, startWatch(t, stale, slipstream.AllKeys(), cursor))

	fresh := e.open(t, cfg)
	cur := fresh.SyncedStream()
	if cur.Equal(old) {
		t.Fatalf("the recreated stream has the old creation time %v", cur)
	}
	withNew := cfg
	withNew.StreamCreated = cur
	for name, h := range map[string]*natskv.Bucket{"recorded": e.open(t, withNew), "unknown": fresh} {
		w := startWatch(t, h, slipstream.AllKeys(), cursor)
		if u := w.next(t); u.Key != "new.3" {
			t.Fatalf("%s: resume after %s on the current stream delivered %s, want new.3", name, cursor, u.Key)
		}
		w.stop()
	}
	// A state sync re-bases the stale handle on the new stream.
	sync := startWatch(t, stale, slipstream.AllKeys(), slipstream.Cursor{})
	sync.next(t)
	sync.stop()
	if got := stale.SyncedStream(); !got.Equal(cur) {
		t.Fatalf("SyncedStream after a state sync %v, want %v", got, cur)
	}
}
