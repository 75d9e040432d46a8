package natskv_test

import (
	"errors"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/natskv"
)

// With NoCreate, Open of a missing bucket fails with ErrBucketNotFound and
// leaves the server without it; an existing bucket opens.
func TestOpenNoCreate(t *testing.T) {
	e := newEnv(t)
	_, err := natskv.Open(t.Context(), e.nc, natskv.Config{Bucket: "absent", NoCreate: true})
	if !errors.Is(err, natskv.ErrBucketNotFound) || !errors.Is(err, slipstream.ErrOperationFailed) {
		t.Fatalf("Open of a missing bucket: %v", err)
	}
	if _, err := e.js.KeyValue(t.Context(), "absent"); err == nil {
		t.Fatal("Open with NoCreate created the bucket")
	}
	if _, err := natskv.Open(t.Context(), e.nc, natskv.Config{Bucket: "present"}); err != nil {
		t.Fatal(err)
	}
	if _, err := natskv.Open(t.Context(), e.nc, natskv.Config{Bucket: "present", NoCreate: true}); err != nil {
		t.Fatalf("Open of an existing bucket with NoCreate: %v", err)
	}
}

// RecordAt returns the record at a revision, markers included, and false
// for a revision the stream no longer (or does not yet) hold.
func TestRecordAt(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	b, err := natskv.Open(ctx, e.nc, natskv.Config{Bucket: "rec", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := b.Put(ctx, "a", []byte("1"))
	r2, _ := b.Put(ctx, "b", []byte("2"))
	r3, _ := b.Put(ctx, "a", []byte("3")) // history 1: removes r1
	r4, err := b.Delete(ctx, "b")         // removes r2
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rev uint64
		ok  bool
		key string
		op  slipstream.Op
		val string
	}{
		{0, false, "", 0, ""},
		{r1, false, "", 0, ""},
		{r2, false, "", 0, ""},
		{r3, true, "a", slipstream.OpPut, "3"},
		{r4, true, "b", slipstream.OpDelete, ""},
		{r4 + 10, false, "", 0, ""},
	} {
		u, ok, err := b.RecordAt(ctx, tt.rev)
		if err != nil || ok != tt.ok {
			t.Fatalf("RecordAt(%d): %+v %v %v, want present %v", tt.rev, u, ok, err, tt.ok)
		}
		if ok && (u.Key != tt.key || u.Op != tt.op || string(u.Value) != tt.val || u.Version != slipstream.VersionFromUint64(tt.rev)) {
			t.Fatalf("RecordAt(%d) = %+v, want %s %v %q", tt.rev, u, tt.key, tt.op, tt.val)
		}
	}
}
