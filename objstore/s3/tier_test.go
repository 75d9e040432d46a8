package s3_test

import (
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
	"github.com/slipstream-kv/slipstream/objstore/s3"
)

// TestMultipartRoundTrip is the multipart round trip: 2 500
// entries × 10 KiB, a payload over 20 MiB uploaded in several parts,
// downloaded and verified entry by entry.
func TestMultipartRoundTrip(t *testing.T) {
	fakeCredentials(t)
	f := startFake(t)
	s := f.store(t, s3.Config{})
	var parts atomic.Int32
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			parts.Add(1)
		}
		return false
	})
	batch, cursor := objstoretest.MultipartWorkload()
	art := filepath.Join(t.TempDir(), "artifact")
	objstoretest.MakeArtifactFrom(t, art, batch, cursor)

	tr := &objstore.Transport{Store: s, Prefix: objstoretest.Prefix}
	res := objstoretest.Upload(t, tr, objstoretest.Key, art)
	if res.Outcome != objstore.Published {
		t.Fatalf("Upload = %v", res.Outcome)
	}
	list, err := s.List(t.Context(), objstoretest.PayloadsPrefix(objstoretest.Key))
	if err != nil || len(list) != 1 {
		t.Fatalf("payloads %v, %v", list, err)
	}
	if size := list[0].Size; size <= 20<<20 {
		t.Fatalf("payload is %d bytes, want > 20 MiB", size)
	}
	if n := parts.Load(); int64(n) != (list[0].Size+s3.DefaultPartSize-1)/s3.DefaultPartSize {
		t.Fatalf("%d parts uploaded for %d bytes", n, list[0].Size)
	}

	out := filepath.Join(t.TempDir(), "out")
	if _, err := tr.Download(t.Context(), objstoretest.Key, out); err != nil {
		t.Fatalf("Download: %v", err)
	}
	got, state := objstoretest.CheckArtifact(t, out)
	if got != cursor || len(state) != len(batch) {
		t.Fatalf("downloaded cursor %v with %d entries, want %v and %d", got, len(state), cursor, len(batch))
	}
	for _, u := range batch {
		if state[u.Key] != string(u.Value) {
			t.Fatalf("entry %s differs after the round trip", u.Key)
		}
	}
}

// TestFailedPointerPut injects a failure into the next HTTP PUT of a
// pointer: the upload fails, the pointer is unchanged, the old artifact
// still downloads; the retried upload publishes and prune then leaves only
// the newest payload.
func TestFailedPointerPut(t *testing.T) {
	fakeCredentials(t)
	f := startFake(t)
	s := f.store(t, s3.Config{})
	ctx := t.Context()
	tr := &objstore.Transport{Store: s, Prefix: objstoretest.Prefix}
	arts := objstoretest.FoldArtifacts(t, t.TempDir())
	objstoretest.Upload(t, tr, objstoretest.Key, arts[7])

	var armed atomic.Bool
	armed.Store(true)
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, objstore.PointerSuffix) || !armed.CompareAndSwap(true, false) {
			return false
		}
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<Error><Code>AccessDenied</Code><Message>injected pointer PUT failure</Message></Error>`)
		return true
	})
	_, err := tr.Upload(ctx, objstoretest.Key, arts[9])
	if !errors.Is(err, slipstream.ErrOperationFailed) {
		t.Fatalf("upload of 9 with a failing pointer PUT: err = %v, want ErrOperationFailed", err)
	}
	if m, err := tr.Manifest(ctx, objstoretest.Key); err != nil || m.Cursor.Rank() != 7 {
		t.Fatalf("pointer after the failure: %v, %v; want cursor 7", m, err)
	}
	window := filepath.Join(t.TempDir(), "window")
	if _, err := tr.Download(ctx, objstoretest.Key, window); err != nil {
		t.Fatalf("download in the window: %v", err)
	}
	if cur, state := objstoretest.CheckArtifact(t, window); cur.Rank() != 7 || len(state) != 3 {
		t.Fatalf("download in the window: cursor %v with %d entries, want 7 and 3", cur, len(state))
	}

	if res := objstoretest.Upload(t, tr, objstoretest.Key, arts[9]); res.Outcome != objstore.Published {
		t.Fatalf("re-upload of 9 = %v", res.Outcome)
	}
	if n, err := tr.Prune(ctx, objstoretest.Key, 0); n != 1 || err != nil {
		t.Fatalf("Prune(0) = %d, %v; want 1 (7's payload)", n, err)
	}
	list, err := s.List(ctx, objstoretest.PayloadsPrefix(objstoretest.Key))
	if err != nil || len(list) != 1 || !strings.Contains(list[0].Name, "/0000000000000009-") {
		t.Fatalf("payloads after prune: %v, %v; want only 9's", list, err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := tr.Download(ctx, objstoretest.Key, out); err != nil {
		t.Fatal(err)
	}
	if cur, state := objstoretest.CheckArtifact(t, out); cur.Rank() != 9 || len(state) != 4 {
		t.Fatalf("download of 9: cursor %v with %d entries, want 9 and 4", cur, len(state))
	}
}
