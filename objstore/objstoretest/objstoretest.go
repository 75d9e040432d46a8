package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/objstore"
)

// NewStore returns a fresh, empty store for one test. It fails the test on
// error and registers its own cleanup.
type NewStore func(t *testing.T) objstore.Store

// Options describes what a store under test supports.
type Options struct {
	// NoReplace declares that the store has no conditional replace: Replace
	// must return objstore.ErrNotImplemented. The suites then check the
	// fail-closed behaviour instead of compare-and-swap.
	NoReplace bool
}

// Run runs the conformance suite: reads, unconditional and conditional
// writes (including concurrent conditional writes, which must have exactly
// one winner), listing and deletion.
func Run(t *testing.T, newStore NewStore, opts Options) {
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		_, _, err := s.Get(t.Context(), "nothing/here")
		if !errors.Is(err, objstore.ErrNotExist) {
			t.Fatalf("Get of a missing object: err = %v, want ErrNotExist", err)
		}
	})
	t.Run("PutGet", func(t *testing.T) {
		s := newStore(t)
		before := time.Now().Add(-time.Minute)
		mustPut(t, s, "a/b/obj", []byte("hello"))
		got, attrs := mustGet(t, s, "a/b/obj")
		if string(got) != "hello" || attrs.Size != 5 {
			t.Fatalf("Get = %q (size %d), want hello (5)", got, attrs.Size)
		}
		if attrs.LastModified.Before(before) || attrs.LastModified.After(time.Now().Add(time.Minute)) {
			t.Errorf("LastModified = %v, want about now", attrs.LastModified)
		}
		mustPut(t, s, "a/b/obj", []byte("bye"))
		if got, _ := mustGet(t, s, "a/b/obj"); string(got) != "bye" {
			t.Fatalf("after overwrite Get = %q, want bye", got)
		}
	})
	t.Run("PutEmpty", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "empty", nil)
		if got, attrs := mustGet(t, s, "empty"); len(got) != 0 || attrs.Size != 0 {
			t.Fatalf("Get = %q (size %d), want empty", got, attrs.Size)
		}
	})
	t.Run("PutLarge", func(t *testing.T) {
		// Over one 8 MiB part with a partial last part: a multipart upload
		// must reassemble in order.
		s := newStore(t)
		data := Random(1, 9<<20+17)
		mustPut(t, s, "big/obj.tar", data)
		got, attrs := mustGet(t, s, "big/obj.tar")
		if !bytes.Equal(got, data) || attrs.Size != int64(len(data)) {
			t.Fatalf("large object came back different (%d bytes, size %d; want %d)", len(got), attrs.Size, len(data))
		}
	})
	t.Run("Create", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if err := s.Create(ctx, "p/ptr.json", []byte("one")); err != nil {
			t.Fatalf("Create: %v", err)
		}
		err := s.Create(ctx, "p/ptr.json", []byte("two"))
		if !errors.Is(err, objstore.ErrPreconditionFailed) {
			t.Fatalf("second Create: err = %v, want ErrPreconditionFailed", err)
		}
		if got, _ := mustGet(t, s, "p/ptr.json"); string(got) != "one" {
			t.Fatalf("after refused Create Get = %q, want one", got)
		}
		if err := s.Delete(ctx, "p/ptr.json"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := s.Create(ctx, "p/ptr.json", []byte("three")); err != nil {
			t.Fatalf("Create after Delete: %v", err)
		}
		if got, _ := mustGet(t, s, "p/ptr.json"); string(got) != "three" {
			t.Fatalf("Get = %q, want three", got)
		}
	})
	t.Run("CreateOverPut", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "p/x", []byte("put"))
		err := s.Create(t.Context(), "p/x", []byte("create"))
		if !errors.Is(err, objstore.ErrPreconditionFailed) {
			t.Fatalf("Create over a Put object: err = %v, want ErrPreconditionFailed", err)
		}
	})
	t.Run("PutOverCreate", func(t *testing.T) {
		// The transport's non-atomic fallback overwrites a pointer with Put.
		s := newStore(t)
		if err := s.Create(t.Context(), "p/ptr.json", []byte("created")); err != nil {
			t.Fatalf("Create: %v", err)
		}
		mustPut(t, s, "p/ptr.json", []byte("put"))
		if got, _ := mustGet(t, s, "p/ptr.json"); string(got) != "put" {
			t.Fatalf("Get after Put over a created object = %q, want put", got)
		}
		if got := names(mustList(t, s, "p/")); !slices.Equal(got, []string{"p/ptr.json"}) {
			t.Fatalf("List = %v, want [p/ptr.json]", got)
		}
	})
	t.Run("ConcurrentCreate", func(t *testing.T) {
		s := newStore(t)
		wins := race(t, 8, func(i int) error {
			return s.Create(t.Context(), "race/ptr.json", fmt.Appendf(nil, "writer %d", i))
		})
		if len(wins) != 1 {
			t.Fatalf("%d concurrent Creates succeeded (%v), want exactly 1", len(wins), wins)
		}
		if got, _ := mustGet(t, s, "race/ptr.json"); string(got) != fmt.Sprintf("writer %d", wins[0]) {
			t.Fatalf("Get = %q, want the winner's (writer %d)", got, wins[0])
		}
	})
	if opts.NoReplace {
		t.Run("ReplaceNotImplemented", func(t *testing.T) {
			s := newStore(t)
			if err := s.Create(t.Context(), "p/ptr.json", []byte("one")); err != nil {
				t.Fatalf("Create: %v", err)
			}
			_, attrs := mustGet(t, s, "p/ptr.json")
			err := s.Replace(t.Context(), "p/ptr.json", []byte("two"), attrs.ETag)
			if !errors.Is(err, objstore.ErrNotImplemented) {
				t.Fatalf("Replace: err = %v, want ErrNotImplemented", err)
			}
			if got, _ := mustGet(t, s, "p/ptr.json"); string(got) != "one" {
				t.Fatalf("after refused Replace Get = %q, want one", got)
			}
		})
	} else {
		runReplace(t, newStore)
	}
	t.Run("List", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []string{"k.payloads/b.tar", "k.payloads/a.tar", "k.payloads.x/c.tar", "k.manifest.json", "other/k.payloads/d.tar"} {
			mustPut(t, s, n, []byte(n))
		}
		got := names(mustList(t, s, "k.payloads/"))
		if want := []string{"k.payloads/a.tar", "k.payloads/b.tar"}; !slices.Equal(got, want) {
			t.Fatalf("List(k.payloads/) = %v, want %v", got, want)
		}
		got = names(mustList(t, s, "k."))
		if want := []string{"k.manifest.json", "k.payloads.x/c.tar", "k.payloads/a.tar", "k.payloads/b.tar"}; !slices.Equal(got, want) {
			t.Fatalf("List(k.) = %v, want %v", got, want)
		}
		if got := mustList(t, s, "zzz/"); len(got) != 0 {
			t.Fatalf("List(zzz/) = %v, want nothing", names(got))
		}
		for _, a := range mustList(t, s, "") {
			if a.Size != int64(len(a.Name)) || a.LastModified.IsZero() {
				t.Errorf("List entry %+v: want size %d and a LastModified", a, len(a.Name))
			}
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		mustPut(t, s, "d/a", []byte("a"))
		mustPut(t, s, "d/b", []byte("b"))
		if err := s.Delete(ctx, "d/a"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, _, err := s.Get(ctx, "d/a"); !errors.Is(err, objstore.ErrNotExist) {
			t.Fatalf("Get after Delete: err = %v, want ErrNotExist", err)
		}
		if err := s.Delete(ctx, "d/a"); err != nil {
			t.Fatalf("Delete of a missing object: %v", err)
		}
		if got := names(mustList(t, s, "d/")); !slices.Equal(got, []string{"d/b"}) {
			t.Fatalf("List after Delete = %v, want [d/b]", got)
		}
	})
}

func runReplace(t *testing.T, newStore NewStore) {
	t.Run("Replace", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if err := s.Create(ctx, "p/ptr.json", []byte("one")); err != nil {
			t.Fatalf("Create: %v", err)
		}
		_, a1 := mustGet(t, s, "p/ptr.json")
		if a1.ETag == "" {
			t.Fatal("Get returned no ETag on a store with conditional replace")
		}
		if err := s.Replace(ctx, "p/ptr.json", []byte("two"), a1.ETag); err != nil {
			t.Fatalf("Replace with the current ETag: %v", err)
		}
		got, a2 := mustGet(t, s, "p/ptr.json")
		if string(got) != "two" || a2.ETag == a1.ETag {
			t.Fatalf("after Replace Get = %q etag %s, want two with a new ETag (old %s)", got, a2.ETag, a1.ETag)
		}
		err := s.Replace(ctx, "p/ptr.json", []byte("three"), a1.ETag)
		if !errors.Is(err, objstore.ErrPreconditionFailed) {
			t.Fatalf("Replace with a stale ETag: err = %v, want ErrPreconditionFailed", err)
		}
		if got, _ := mustGet(t, s, "p/ptr.json"); string(got) != "two" {
			t.Fatalf("after refused Replace Get = %q, want two", got)
		}
		err = s.Replace(ctx, "p/missing.json", []byte("x"), a2.ETag)
		if !errors.Is(err, objstore.ErrNotExist) && !errors.Is(err, objstore.ErrPreconditionFailed) {
			t.Fatalf("Replace of a missing object: err = %v, want ErrNotExist or ErrPreconditionFailed", err)
		}
		if _, _, err := s.Get(ctx, "p/missing.json"); !errors.Is(err, objstore.ErrNotExist) {
			t.Fatalf("refused Replace created the object: Get err = %v", err)
		}
	})
	t.Run("ConcurrentReplace", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(t.Context(), "race/ptr.json", []byte("base")); err != nil {
			t.Fatalf("Create: %v", err)
		}
		_, base := mustGet(t, s, "race/ptr.json")
		wins := race(t, 8, func(i int) error {
			return s.Replace(t.Context(), "race/ptr.json", fmt.Appendf(nil, "writer %d", i), base.ETag)
		})
		if len(wins) != 1 {
			t.Fatalf("%d concurrent Replaces with one ETag succeeded (%v), want exactly 1", len(wins), wins)
		}
		if got, _ := mustGet(t, s, "race/ptr.json"); string(got) != fmt.Sprintf("writer %d", wins[0]) {
			t.Fatalf("Get = %q, want the winner's (writer %d)", got, wins[0])
		}
	})
}

// race runs n writers at once and returns the indexes of those that
// succeeded; every loser must have failed with ErrPreconditionFailed.
func race(t *testing.T, n int, write func(i int) error) []int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = write(i)
		})
	}
	close(start)
	wg.Wait()
	var wins []int
	for i, err := range errs {
		switch {
		case err == nil:
			wins = append(wins, i)
		case !errors.Is(err, objstore.ErrPreconditionFailed):
			t.Errorf("writer %d: err = %v, want nil or ErrPreconditionFailed", i, err)
		}
	}
	return wins
}

func mustPut(t testing.TB, s objstore.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
}

func mustGet(t testing.TB, s objstore.Store, name string) ([]byte, objstore.Attrs) {
	t.Helper()
	rc, attrs, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if attrs.Name != name {
		t.Errorf("Get %s: Attrs.Name = %q", name, attrs.Name)
	}
	return b, attrs
}

func mustList(t testing.TB, s objstore.Store, prefix string) []objstore.Attrs {
	t.Helper()
	l, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List %q: %v", prefix, err)
	}
	return l
}

func names(l []objstore.Attrs) []string {
	out := []string{}
	for _, a := range l {
		out = append(out, a.Name)
	}
	return out
}

// Random returns n pseudo-random bytes determined by seed.
func Random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}
