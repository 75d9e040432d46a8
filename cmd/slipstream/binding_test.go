package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/memkv"
)

func TestBinding_ReadWrite(t *testing.T) {
	dir := t.TempDir()
	if b, err := readBinding(dir); b != nil || err != nil {
		t.Fatalf("no sidecar: %+v %v", b, err)
	}
	want := newBinding("orders", slipstream.Prefixes("b.", "a.", "b."))
	if !slices.Equal(want.Prefixes, []string{"a.", "b."}) {
		t.Fatalf("prefixes %v, want sorted and unique", want.Prefixes)
	}
	if err := writeBinding(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := readBinding(dir)
	if err != nil || got == nil || !got.matches(want) {
		t.Fatalf("read back %+v %v", got, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("the fold directory holds %v, want only the sidecar", ents)
	}
	all := newBinding("orders", slipstream.AllKeys())
	if got.matches(all) || got.matches(newBinding("other", slipstream.Prefixes("a.", "b."))) {
		t.Fatal("a binding matches another scope or bucket")
	}
	if _, err := checkBinding(dir, all); !errors.Is(err, errFoldOfOtherBucket) ||
		!strings.Contains(err.Error(), `mirrors bucket "orders" (scope: prefixes a.,b.)`) {
		t.Fatalf("checkBinding of another scope: %v", err)
	}
	for name, body := range map[string]string{
		"unknown field": `{"version":1,"bucket":"a","prefixes":[],"extra":1}`,
		"version":       `{"version":2,"bucket":"a","prefixes":[]}`,
		"bucket":        `{"version":1,"bucket":"a b","prefixes":[]}`,
		"trailing":      `{"version":1,"bucket":"a","prefixes":[]} {}`,
		"not json":      `bucket=a`,
		"stream text":   `{"version":1,"bucket":"a","prefixes":[],"stream_created":"yesterday"}`,
		"stream number": `{"version":1,"bucket":"a","prefixes":[],"stream_created":1764589761}`,
		"stream 1960":   `{"version":1,"bucket":"a","prefixes":[],"stream_created":"1960-01-01T00:00:00Z"}`,
		"stream 2300":   `{"version":1,"bucket":"a","prefixes":[],"stream_created":"2300-01-01T00:00:00Z"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, bindingFile), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readBinding(dir); !errors.Is(err, errBindingInvalid) {
			t.Errorf("%s: %v, want errBindingInvalid", name, err)
		}
	}
}

func FuzzReadBinding(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/binding/*.json")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, bindingFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := readBinding(dir)
		if err != nil {
			if !errors.Is(err, errBindingInvalid) {
				t.Fatalf("error %v does not wrap errBindingInvalid", err)
			}
			return
		}
		// What is accepted writes back to what reads the same.
		if err := writeBinding(dir, *b); err != nil {
			t.Fatal(err)
		}
		again, err := readBinding(dir)
		if err != nil || !again.matches(*b) || !again.StreamCreated.Equal(b.StreamCreated) {
			t.Fatalf("round trip: %+v → %+v %v", b, again, err)
		}
	})
}

// Both backends open, fold, compact, export and import with the sidecar
// in the fold directory; the artifact holds only the backend's payload, and
// the offline commands still recognise the fold.
func TestBinding_BackendsTolerateSidecar(t *testing.T) {
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "fold")
			fd, err := openFold(dir, backend, quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			if err := writeBinding(dir, newBinding("b", slipstream.AllKeys())); err != nil {
				t.Fatal(err)
			}
			apply := func(fd *fold, from, n int) {
				t.Helper()
				var batch []slipstream.Update
				for i := from; i < from+n; i++ {
					batch = append(batch, slipstream.Put(fmt.Sprintf("k.%d", i%5), []byte(strings.Repeat("v", 100)), slipstream.VersionFromUint64(uint64(i+1))))
				}
				if err := fd.Apply(batch, slipstream.CursorFromUint64(uint64(from+n))); err != nil {
					t.Fatal(err)
				}
			}
			apply(fd, 0, 50)
			if err := fd.Close(); err != nil {
				t.Fatal(err)
			}
			if found, err := detectBackend(dir); err != nil || found != backend {
				t.Fatalf("detectBackend: %q %v", found, err)
			}
			if backend == backendAppLog {
				// Reopen with a tiny threshold: every apply compacts.
				st, err := applog.Open(dir, &applog.Options{CompactThreshold: 1, Logger: quietLogger()})
				if err != nil {
					t.Fatal(err)
				}
				fd = &fold{store: st, Backend: backendAppLog, Dir: dir}
			} else if fd, err = openFold(dir, backend, quietLogger()); err != nil {
				t.Fatal(err)
			}
			apply(fd, 50, 50)
			art := filepath.Join(t.TempDir(), "art")
			m, err := artifact.ExportStore(fd, art)
			if err != nil {
				t.Fatal(err)
			}
			if err := fd.Close(); err != nil {
				t.Fatal(err)
			}
			for _, f := range m.Files {
				if strings.Contains(f.Path, "binding") {
					t.Fatalf("the artifact holds %s", f.Path)
				}
			}
			if _, err := os.Stat(filepath.Join(art, "data", bindingFile)); err == nil {
				t.Fatal("the artifact's data holds the sidecar")
			}
			if b, err := readBinding(dir); err != nil || b == nil {
				t.Fatalf("the sidecar did not survive: %+v %v", b, err)
			}
			dest := filepath.Join(t.TempDir(), "imported")
			if _, err := artifact.Import(art, dest, artifactBackends(quietLogger())...); err != nil {
				t.Fatal(err)
			}
			if b, err := readBinding(dest); err != nil || b != nil {
				t.Fatalf("an imported fold has a binding: %+v %v", b, err)
			}
			if fd, err = openFold(dest, "", quietLogger()); err != nil {
				t.Fatal(err)
			}
			defer fd.Close()
			if c := fd.Cursor().Rank(); c != 100 {
				t.Fatalf("imported cursor %d", c)
			}
		})
	}
}

// A fold without a binding is not ready, and its state is verifying, until
// the binding is written, even though it caught up; a bootstrap that
// replaces the fold makes a bind of the earlier fold a no-op.
func TestBinding_ReadyOnlyWhenBound(t *testing.T) {
	dir := t.TempDir()
	tr := newTracker(slipstream.AllKeys(), quietLogger(), nil)
	tr.bind = &binder{dir: dir, want: newBinding("b", slipstream.AllKeys())}
	tr.bind.unbind("imported")
	tr.runStarting(slipstream.CursorFromUint64(7))
	tr.watchStarting(slipstream.CursorFromUint64(7), slipstream.CursorFromUint64(7), 7, true)
	if !tr.ready.Load() {
		t.Fatal("the tracker did not catch up")
	}
	if state, _, _ := tr.snapshot(); tr.isReady() || state != stateVerifying || tr.bind.reason() != "imported" {
		t.Fatalf("unbound fold: ready %v, state %s, reason %q", tr.isReady(), state, tr.bind.reason())
	}
	epoch := tr.bind.current()
	if err := tr.bind.replace("bootstrapped", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ok, err := tr.bind.bind(epoch); ok || err != nil {
		t.Fatalf("a bind of the replaced fold: %v %v", ok, err)
	}
	if b, _ := readBinding(dir); b != nil || tr.isReady() {
		t.Fatal("the replaced fold's verification bound the new one")
	}
	if ok, err := tr.bind.bind(tr.bind.current()); !ok || err != nil {
		t.Fatalf("bind: %v %v", ok, err)
	}
	if state, _, _ := tr.snapshot(); !tr.isReady() || state != stateSynced || tr.bind.reason() != "" {
		t.Fatalf("bound fold: ready %v, state %s", tr.isReady(), state)
	}
	if b, _ := readBinding(dir); b == nil || b.Bucket != "b" {
		t.Fatalf("binding %+v", b)
	}
}

// checkIdentity refuses a fold whose newest entries the bucket contradicts
// and lets through one it merely cannot confirm.
func TestCheckIdentity(t *testing.T) {
	ctx := context.Background()
	// foldOf builds a fold holding kv's live keys at their revisions.
	foldOf := func(t *testing.T, kv *memkv.KV) *fold {
		t.Helper()
		fd, err := openFold(filepath.Join(t.TempDir(), "f"), backendAppLog, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fd.Close() })
		var batch []slipstream.Update
		if err := kv.Scan(ctx, "", func(e slipstream.Entry) error {
			batch = append(batch, slipstream.Put(e.Key, e.Value, e.Version))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := fd.Apply(batch, slipstream.CursorFromUint64(kv.LastRevision())); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	fill := func(prefix string, n int) *memkv.KV {
		kv := memkv.New()
		for i := range n {
			if _, err := kv.Put(ctx, fmt.Sprintf("%s.%02d", prefix, i), []byte(prefix)); err != nil {
				t.Fatal(err)
			}
		}
		return kv
	}
	demo := fill("demo", 20)
	fd := foldOf(t, demo)
	if err := checkIdentity(ctx, demo, fd, "demo", demo.LastRevision()); err != nil {
		t.Fatalf("own bucket: %v", err)
	}
	// Later writes to the own bucket (the fold is behind) are no evidence.
	for i := range 30 {
		if _, err := demo.Put(ctx, fmt.Sprintf("demo.%02d", i%20), []byte("later")); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkIdentity(ctx, demo, fd, "demo", demo.LastRevision()); err != nil {
		t.Fatalf("own bucket, fold behind: %v", err)
	}

	other := fill("other", 40) // other keys at the fold's revisions
	if err := checkIdentity(ctx, other, fd, "other", other.LastRevision()); !errors.Is(err, errFoldOfOtherBucket) ||
		!strings.Contains(err.Error(), `where bucket "other" holds a put of "other.19"`) {
		t.Fatalf("another bucket's keys: %v", err)
	}
	same := fill("demo", 40) // same keys, newer values at the fold's revisions
	for i := range 20 {
		if _, err := same.Put(ctx, fmt.Sprintf("x.%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	sameFold := foldOf(t, fill("demo", 20))
	if err := checkIdentity(ctx, same, sameFold, "same", same.LastRevision()); err != nil {
		t.Fatalf("the same keys and values at the same revisions: %v", err)
	}
	// The fold holds demo.00 at revision 21; the bucket's message 21 is
	// gone (purged) and demo.00's latest record there is revision 1.
	older := fill("demo", 20)
	if _, err := older.Put(ctx, "x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := older.Purge(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	olderFold := foldOf(t, fill("demo", 20))
	if err := olderFold.Apply([]slipstream.Update{slipstream.Put("demo.00", []byte("demo"), slipstream.VersionFromUint64(21))},
		slipstream.CursorFromUint64(21)); err != nil {
		t.Fatal(err)
	}
	if err := checkIdentity(ctx, older, olderFold, "older", older.LastRevision()); !errors.Is(err, errFoldOfOtherBucket) ||
		!strings.Contains(err.Error(), "newer than bucket") {
		t.Fatalf("a fold newer than the bucket's keys: %v", err)
	}
	if err := checkIdentity(ctx, fill("small", 3), fd, "small", 3); !errors.Is(err, errFoldOfOtherBucket) ||
		!strings.Contains(err.Error(), "past bucket") {
		t.Fatalf("cursor past the bucket: %v", err)
	}
	empty := memkv.New()
	for range 25 {
		if _, err := empty.Put(ctx, "pad", []byte("p")); err != nil {
			t.Fatal(err)
		}
	}
	empty.Compact(empty.LastRevision())
	if err := checkIdentity(ctx, empty, fd, "silent", empty.LastRevision()); err != nil {
		t.Fatalf("a bucket that says nothing about the fold's keys: %v", err)
	}
}

// failingLatest fails the audit's listing while fail is set.
type failingLatest struct {
	*fakeBucket
	fail *atomic.Bool
}

func (b failingLatest) Latest(ctx context.Context, prefix string, fn func(slipstream.Update) error) (uint64, uint64, error) {
	if b.fail.Load() {
		return 0, 0, errors.New("listing failed")
	}
	return b.fakeBucket.Latest(ctx, prefix, fn)
}

// An audit that fails on a fold without a binding is retried verifyRetry
// later (not at the next -audit-every): the fold is bound, and the mirror
// ready, once one verifies it.
func TestBinding_VerificationRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		kv := memkv.New()
		for i := range 5 {
			if _, err := kv.Put(ctx, fmt.Sprintf("k.%d", i), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		dir := filepath.Join(t.TempDir(), "fold")
		fd, err := openFold(dir, backendAppLog, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		var batch []slipstream.Update
		for i := range 5 {
			batch = append(batch, slipstream.Put(fmt.Sprintf("k.%d", i), []byte("v"), slipstream.VersionFromUint64(uint64(i+1))))
		}
		if err := fd.Apply(batch, slipstream.CursorFromUint64(5)); err != nil {
			t.Fatal(err)
		}
		tr := newTracker(slipstream.AllKeys(), quietLogger(), nil)
		tr.bind = &binder{dir: dir, want: newBinding("b", slipstream.AllKeys())}
		tr.bind.unbind("imported")
		fail := new(atomic.Bool)
		fail.Store(true)
		m := &mirror{bucket: failingLatest{&fakeBucket{KV: kv}, fail}, fold: fd, scope: slipstream.AllKeys(),
			log: quietLogger(), t: tr, audits: true, auditEvery: time.Hour}
		tr.runStarting(slipstream.CursorFromUint64(5))
		tr.watchStarting(slipstream.CursorFromUint64(5), slipstream.CursorFromUint64(5), 5, true) // caught up
		go m.auditLoop(ctx)
		synctest.Wait()
		if st := tr.audit.status(); st.LastAudit == nil || st.LastAudit.Error == "" || !tr.unbound() {
			t.Fatalf("after a failed audit: %+v, unbound %v", st, tr.unbound())
		}
		fail.Store(false)
		time.Sleep(verifyRetry - time.Millisecond)
		synctest.Wait()
		if !tr.unbound() {
			t.Fatal("bound before the retry")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if tr.unbound() || !tr.isReady() {
			t.Fatalf("not bound after the retry: %+v", tr.audit.status())
		}
		if b, err := readBinding(dir); err != nil || b == nil {
			t.Fatalf("binding %+v %v", b, err)
		}
	})
}

// TestBinding_StreamCreated: the stream a fold's cursor belongs to is an
// optional field of version 1: sidecars without it (written before it
// existed) read as unknown (zero), and one written with it reads back the
// same instant, to the nanosecond. It plays no part in matching a fold to
// a bucket and scope.
func TestBinding_StreamCreated(t *testing.T) {
	for _, seed := range []string{"all.json", "prefixes.json"} {
		dir := t.TempDir()
		data, err := os.ReadFile(filepath.Join("testdata/binding", seed))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, bindingFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := readBinding(dir)
		if err != nil || b == nil || !b.StreamCreated.IsZero() || !boundStream(b).IsZero() {
			t.Fatalf("%s: %+v %v, want a binding with no stream", seed, b, err)
		}
	}
	dir := t.TempDir()
	created := time.Date(2026, 12, 1, 11, 49, 21, 765760328, time.UTC)
	want := newBinding("demo", slipstream.AllKeys())
	want.StreamCreated = created
	if err := writeBinding(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := checkBinding(dir, newBinding("demo", slipstream.AllKeys()))
	if err != nil || got == nil || !boundStream(got).Equal(created) {
		t.Fatalf("read back %+v %v, want stream_created %v", got, err, created)
	}
	seed, err := readBindingFile(filepath.Join("testdata/binding", "stream.json"))
	if err != nil || !seed.StreamCreated.Equal(created) {
		t.Fatalf("stream.json: %+v %v", seed, err)
	}
}

// readBindingFile reads the sidecar at path.
func readBindingFile(path string) (*foldBinding, error) {
	dir, err := os.MkdirTemp("", "binding")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, bindingFile), data, 0o644); err != nil {
		return nil, err
	}
	return readBinding(dir)
}

// TestBinding_StreamRecordedOnlyOnceCommitted: the binding records a
// state sync's stream only once a flush has committed data that watch
// delivered (the fold's cursor is then that stream's): not at the watch's
// start, not for a flush that only folded a resync's synthetic deletes
// (the cursor did not move), not for a flush whose store write failed. A
// resume watch records nothing; a failed write is retried at the next
// flush; an unbound fold records it when it is bound; a replaced fold
// forgets it.
func TestBinding_StreamRecordedOnlyOnceCommitted(t *testing.T) {
	dir := t.TempDir()
	want := newBinding("b", slipstream.AllKeys())
	s1 := time.Date(2026, 12, 1, 10, 0, 0, 1, time.UTC)
	s2 := s1.Add(time.Hour)
	want.StreamCreated = s1
	if err := writeBinding(dir, want); err != nil {
		t.Fatal(err)
	}
	bound, err := checkBinding(dir, newBinding("b", slipstream.AllKeys()))
	if err != nil {
		t.Fatal(err)
	}
	tr := newTracker(slipstream.AllKeys(), quietLogger(), nil)
	if tr.bind, err = bindFold(t.Context(), dir, newBinding("b", slipstream.AllKeys()), bound, nil, nil, quietLogger()); err != nil {
		t.Fatal(err)
	}
	current := s2
	tr.syncedStream = func() time.Time { return current }
	recorded := func() time.Time {
		t.Helper()
		b, err := readBinding(dir)
		if err != nil || b == nil {
			t.Fatalf("binding %+v %v", b, err)
		}
		return b.StreamCreated
	}
	c10 := slipstream.CursorFromUint64(10)

	// A resume that folds updates records nothing.
	tr.runStarting(c10)
	tr.watchStarting(c10, c10, 12, true)
	tr.onFlush(slipstream.FlushInfo{Updates: 2, Advanced: true})
	if got := recorded(); !got.Equal(s1) {
		t.Fatalf("after a resume's flush the binding records %v, want %v", got, s1)
	}

	// The resync's state sync on the recreated stream.
	tr.watchStarting(slipstream.Cursor{}, c10, 14, true)
	tr.onFlush(slipstream.FlushInfo{Updates: 3}) // synthetic deletes: the cursor stays 10
	if got := recorded(); !got.Equal(s1) {
		t.Fatalf("after folding only synthetic deletes the binding records %v, want %v", got, s1)
	}
	tr.onFlush(slipstream.FlushInfo{Updates: 4, Advanced: true, StoreErr: errors.New("disk full")})
	if got := recorded(); !got.Equal(s1) {
		t.Fatalf("after a failed store write the binding records %v, want %v", got, s1)
	}
	// The binding cannot be written now (a non-empty directory in its
	// place: the rename fails, even for root): retried at the next flush.
	side := filepath.Join(dir, bindingFile)
	if err := os.Remove(side); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(side, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	tr.onFlush(slipstream.FlushInfo{Updates: 4, Advanced: true})
	if err := os.RemoveAll(side); err != nil {
		t.Fatal(err)
	}
	if err := writeBinding(dir, want); err != nil { // back to S1
		t.Fatal(err)
	}
	tr.onFlush(slipstream.FlushInfo{}) // nothing new: the data already committed
	if got := recorded(); !got.Equal(s2) {
		t.Fatalf("after the state sync's data committed the binding records %v, want %v", got, s2)
	}

	// A replaced (bootstrapped) fold's stream is unknown, and a state sync
	// into it while unbound is recorded when it is bound.
	if err := tr.bind.replace("bootstrapped", func() error { return os.Remove(filepath.Join(dir, bindingFile)) }); err != nil {
		t.Fatal(err)
	}
	current = s2.Add(time.Hour)
	tr.watchStarting(slipstream.Cursor{}, slipstream.Cursor{}, 3, true)
	tr.onFlush(slipstream.FlushInfo{Updates: 3, Advanced: true})
	if b, _ := readBinding(dir); b != nil {
		t.Fatalf("an unbound fold got a binding %+v", b)
	}
	if ok, err := tr.bind.bind(tr.bind.current()); !ok || err != nil {
		t.Fatalf("bind: %v %v", ok, err)
	}
	if got := recorded(); !got.Equal(current) {
		t.Fatalf("the bound fold's binding records %v, want %v", got, current)
	}
}
