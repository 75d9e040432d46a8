package natskv_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// TestReadsAndWrites covers the reads and writes of Bucket on one server,
// one bucket per case.
func TestReadsAndWrites(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bucket := func(t *testing.T) *natskv.Bucket {
		return e.open(t, natskv.Config{Bucket: strings.ReplaceAll(t.Name()[len("TestReadsAndWrites/"):], "_", "-"), MaxBytes: 8 << 20})
	}

	t.Run("put_then_get_roundtrips", func(t *testing.T) {
		b := bucket(t)
		r := put(t, b, "node.a", "v1")
		got, ok, err := b.Get(ctx, "node.a")
		if err != nil || !ok || got.Key != "node.a" || string(got.Value) != "v1" || got.Version != slipstream.VersionFromUint64(r) {
			t.Fatalf("Get = %+v, %v, %v; want node.a=v1@%d", got, ok, err, r)
		}
	})
	t.Run("get_missing_key_returns_none", func(t *testing.T) {
		b := bucket(t)
		if _, ok, err := b.Get(ctx, "missing"); ok || err != nil {
			t.Fatalf("Get(missing) = %v, %v", ok, err)
		}
		if _, ok, err := b.Entry(ctx, "missing"); ok || err != nil {
			t.Fatalf("Entry(missing) = %v, %v", ok, err)
		}
	})
	t.Run("create_conflicts_on_live_key", func(t *testing.T) {
		b := bucket(t)
		if _, err := b.Create(ctx, "k", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Create(ctx, "k", []byte("2")); !errors.Is(err, slipstream.ErrAlreadyExists) {
			t.Fatalf("second Create = %v, want ErrAlreadyExists", err)
		}
	})
	t.Run("update_cas_succeeds_then_detects_conflict", func(t *testing.T) {
		b := bucket(t)
		r1 := put(t, b, "k", "1")
		r2, err := b.Update(ctx, "k", []byte("2"), r1)
		if err != nil || r2 <= r1 {
			t.Fatalf("Update at current = %d, %v", r2, err)
		}
		if _, err := b.Update(ctx, "k", []byte("3"), r1); !errors.Is(err, slipstream.ErrRevisionMismatch) {
			t.Fatalf("Update at stale = %v, want ErrRevisionMismatch", err)
		}
		if got, _, _ := b.Get(ctx, "k"); string(got.Value) != "2" {
			t.Fatalf("value after conflict = %q, want 2", got.Value)
		}
	})
	t.Run("delete_removes_key", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "k", "1")
		if _, err := b.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := b.Get(ctx, "k"); ok || err != nil {
			t.Fatalf("Get after Delete = %v, %v", ok, err)
		}
		if _, err := b.Delete(ctx, "never"); err != nil {
			t.Fatalf("Delete of an absent key = %v", err)
		}
	})
	t.Run("delete_with_version_is_cas_gated", func(t *testing.T) {
		b := bucket(t)
		r := put(t, b, "k", "1")
		if _, err := b.DeleteWithVersion(ctx, "k", 999999); !errors.Is(err, slipstream.ErrRevisionMismatch) {
			t.Fatalf("stale DeleteWithVersion = %v, want ErrRevisionMismatch", err)
		}
		tombRev, err := b.DeleteWithVersion(ctx, "k", r)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := b.Get(ctx, "k"); ok {
			t.Fatal("Get shows a CAS-deleted key")
		}
		en, ok, err := b.Entry(ctx, "k")
		if !ok || err != nil || len(en.Value) != 0 || en.Version != slipstream.VersionFromUint64(tombRev) {
			t.Fatalf("Entry = %+v, %v, %v; want the empty tombstone at the returned revision %d", en, ok, err, tombRev)
		}
		// It is a put, not a DEL marker: the tombstone's version is CAS-able.
		tomb, _ := en.Version.Uint64()
		if _, err := b.Update(ctx, "k", []byte("taken-over"), tomb); err != nil {
			t.Fatalf("Update over the tombstone: %v", err)
		}
	})
	t.Run("update_with_invalid_version_errors", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "k", "1")
		if _, err := b.Update(ctx, "k", []byte("2"), 0); !errors.Is(err, slipstream.ErrOperationFailed) {
			t.Fatalf("Update at revision 0 = %v, want ErrOperationFailed", err)
		}
		if _, err := b.DeleteWithVersion(ctx, "k", 0); !errors.Is(err, slipstream.ErrOperationFailed) {
			t.Fatalf("DeleteWithVersion at revision 0 = %v, want ErrOperationFailed", err)
		}
	})
	t.Run("scan_returns_last_value_per_key_and_skips_deletes", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "node.a", "1")
		put(t, b, "node.b", "x")
		a2 := put(t, b, "node.a", "2")
		if _, err := b.Delete(ctx, "node.b"); err != nil {
			t.Fatal(err)
		}
		put(t, b, "other.c", "c")
		got := scan(t, b, "node.")
		if len(got) != 1 || got[0].Key != "node.a" || string(got[0].Value) != "2" || got[0].Version != slipstream.VersionFromUint64(a2) {
			t.Fatalf("Scan(node.) = %v, want [node.a=2@%d]", got, a2)
		}
	})
	t.Run("scan_version_matches_live_revision", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "node.a", "1")
		r := put(t, b, "node.b", "1")
		var scanned slipstream.Version
		for _, en := range scan(t, b, "node.") {
			if en.Key == "node.b" {
				scanned = en.Version
			}
		}
		got, _, _ := b.Get(ctx, "node.b")
		if scanned != slipstream.VersionFromUint64(r) || got.Version != scanned {
			t.Fatalf("scan version %s, put %d, get %s", scanned, r, got.Version)
		}
		sr, _ := scanned.Uint64()
		if _, err := b.Update(ctx, "node.b", []byte("2"), sr); err != nil {
			t.Fatalf("CAS with the scanned version: %v", err)
		}
	})
	t.Run("keys_returns_names_under_prefix", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "node.a", "1")
		put(t, b, "other.c", "1")
		keys(t, b, "node.", "node.a")
	})
	t.Run("keys_excludes_cas_tombstones_like_get_and_scan", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "node.a", "1")
		r := put(t, b, "node.b", "1")
		if _, err := b.DeleteWithVersion(ctx, "node.b", r); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := b.Get(ctx, "node.b"); ok {
			t.Fatal("Get shows the tombstone")
		}
		for _, en := range scan(t, b, "node.") {
			if en.Key == "node.b" {
				t.Fatal("Scan shows the tombstone")
			}
		}
		keys(t, b, "node.", "node.a")
	})
	t.Run("create_succeeds_after_plain_delete", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "k", "1")
		if _, err := b.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Create(ctx, "k", []byte("again")); err != nil {
			t.Fatalf("Create after Delete: %v", err)
		}
		if got, _, _ := b.Get(ctx, "k"); string(got.Value) != "again" {
			t.Fatalf("Get = %q", got.Value)
		}
		if _, err := b.Purge(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Create(ctx, "k", []byte("after-purge")); err != nil {
			t.Fatalf("Create after Purge: %v", err)
		}
	})
	t.Run("create_conflicts_after_delete_with_version", func(t *testing.T) {
		b := bucket(t)
		r := put(t, b, "k", "1")
		if _, err := b.DeleteWithVersion(ctx, "k", r); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Create(ctx, "k", []byte("2")); !errors.Is(err, slipstream.ErrAlreadyExists) {
			t.Fatalf("Create over a CAS tombstone = %v, want ErrAlreadyExists", err)
		}
		if _, ok, _ := b.Get(ctx, "k"); ok {
			t.Fatal("Get shows the tombstone")
		}
	})
	t.Run("scan_empty_prefix_returns_all_live_entries", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "node.a", "1")
		put(t, b, "other.b", "1")
		put(t, b, "third.c", "1")
		if _, err := b.Delete(ctx, "other.b"); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, en := range scan(t, b, "") {
			got = append(got, en.Key)
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"node.a", "third.c"}) {
			t.Fatalf("Scan(\"\") = %v", got)
		}
	})
	t.Run("keys_empty_prefix_returns_all_live_keys", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "node.a", "1")
		put(t, b, "other.b", "1")
		if _, err := b.Delete(ctx, "other.b"); err != nil {
			t.Fatal(err)
		}
		keys(t, b, "", "node.a")
	})
	t.Run("keys_of_empty_bucket_is_empty_not_an_error", func(t *testing.T) {
		b := bucket(t)
		got, err := b.Keys(ctx, "")
		if err != nil || len(got) != 0 {
			t.Fatalf("Keys = %v, %v", got, err)
		}
	})
	t.Run("scan_and_keys_cover_buckets_larger_than_max_ack_pending", func(t *testing.T) {
		b := e.open(t, natskv.Config{Bucket: "large", MaxBytes: 64 << 20})
		const n = 1500
		fill(t, e, "large", n, 16)
		got, err := b.Keys(ctx, "")
		if err != nil || len(got) != n {
			t.Fatalf("Keys = %d keys, %v; want %d", len(got), err, n)
		}
		if got := scan(t, b, ""); len(got) != n {
			t.Fatalf("Scan = %d entries, want %d", len(got), n)
		}
		// No consumer is left behind.
		if c := e.streamInfo(t, "large").State.Consumers; c != 0 {
			t.Fatalf("%d consumers left after Keys and Scan", c)
		}
	})
	t.Run("get_treats_empty_value_as_absent", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "k", "")
		if _, ok, _ := b.Get(ctx, "k"); ok {
			t.Fatal("Get shows an empty value")
		}
		if en, ok, err := b.Entry(ctx, "k"); !ok || err != nil || len(en.Value) != 0 {
			t.Fatalf("Entry = %+v, %v, %v", en, ok, err)
		}
	})
	t.Run("delete_with_version_on_missing_key_returns_revision_mismatch", func(t *testing.T) {
		b := bucket(t)
		if _, err := b.DeleteWithVersion(ctx, "never.existed", 1); !errors.Is(err, slipstream.ErrRevisionMismatch) {
			t.Fatalf("DeleteWithVersion(missing, 1) = %v", err)
		}
		if _, err := b.Update(ctx, "never.existed", []byte("x"), 1); !errors.Is(err, slipstream.ErrRevisionMismatch) {
			t.Fatalf("Update(missing, 1) = %v", err)
		}
	})
	t.Run("store_with_config_is_idempotent", func(t *testing.T) {
		cfg := natskv.Config{Bucket: "idem", History: 3, MaxBytes: 1 << 20}
		b1 := e.open(t, cfg)
		b2 := e.open(t, cfg)
		put(t, b1, "k", "v")
		if got, ok, _ := b2.Get(ctx, "k"); !ok || string(got.Value) != "v" {
			t.Fatalf("second handle Get = %+v, %v", got, ok)
		}
		// Config applies only at creation: a different config opens the
		// existing bucket unchanged.
		b3 := e.open(t, natskv.Config{Bucket: "idem", History: 10, MaxBytes: 5 << 20})
		st, err := b3.Status(ctx)
		if err != nil || st.History != 3 || st.MaxBytes != 1<<20 {
			t.Fatalf("Status = %+v, %v; want the creation config (history 3, 1 MiB)", st, err)
		}
	})
	t.Run("purge_reclaims_bytes", func(t *testing.T) {
		b := e.open(t, natskv.Config{Bucket: "purge"})
		value := bytes.Repeat([]byte("x"), 4096)
		for i := range 50 {
			if _, err := b.Put(ctx, keyN("k", i), value); err != nil {
				t.Fatal(err)
			}
		}
		before, err := b.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 25 {
			if _, err := b.Purge(ctx, keyN("k", i)); err != nil {
				t.Fatal(err)
			}
		}
		poll.True(t, 2*time.Second, "stream bytes drop after purges", func() bool {
			st, err := b.Status(ctx)
			return err == nil && st.Bytes < before.Bytes
		})
		if _, err := b.Purge(ctx, "k0"); err != nil {
			t.Fatalf("purging again: %v", err)
		}
		if _, err := b.Purge(ctx, "never"); err != nil {
			t.Fatalf("purging an absent key: %v", err)
		}
	})
	t.Run("status_reports_stream_state", func(t *testing.T) {
		b := bucket(t)
		put(t, b, "a", "1")
		last := put(t, b, "b", "2")
		st, err := b.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Bucket != b.Name() || st.FirstSeq != 1 || st.LastSeq != last || st.Subjects != 2 || st.Values != 2 ||
			st.Created.IsZero() || st.History != 1 || st.MaxBytes != 8<<20 || st.Replicas != 1 || st.Storage != natskv.FileStorage || st.DiscardOld {
			t.Fatalf("Status = %+v", st)
		}
	})
}

// TestCreationConfig covers the bucket's creation fields.
func TestCreationConfig(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	t.Run("discard_policy_old_evicts_default_rejects", func(t *testing.T) {
		old := e.open(t, natskv.Config{Bucket: "discard-old", DiscardOld: true, MaxBytes: 16 << 10, History: 5})
		def := e.open(t, natskv.Config{Bucket: "discard-new", MaxBytes: 16 << 10})
		if d := e.streamInfo(t, "discard-old").Config.Discard; d != jetstream.DiscardOld {
			t.Fatalf("discard-old bucket reads back %v", d)
		}
		if d := e.streamInfo(t, "discard-new").Config.Discard; d != jetstream.DiscardNew {
			t.Fatalf("default bucket reads back %v", d)
		}
		value := bytes.Repeat([]byte("v"), 1024)
		for i := range 40 {
			if _, err := old.Put(ctx, keyN("k", i), value); err != nil {
				t.Fatalf("discard-old put %d: %v", i, err)
			}
		}
		if st, _ := old.Status(ctx); st.FirstSeq <= 1 || !st.DiscardOld {
			t.Fatalf("discard-old bucket did not evict: %+v", st)
		}
		var err error
		for i := 0; i < 40 && err == nil; i++ {
			_, err = def.Put(ctx, keyN("k", i), value)
		}
		if !errors.Is(err, natskv.ErrBucketFull) || !errors.Is(err, slipstream.ErrOperationFailed) {
			t.Fatalf("default bucket at capacity: %v, want ErrBucketFull", err)
		}
		// The discard-old bucket is a working KV bucket (CAS, create, TTL-less).
		r := put(t, old, "cas", "1")
		if _, err := old.Update(ctx, "cas", []byte("2"), r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fields_applied_at_creation", func(t *testing.T) {
		b := e.open(t, natskv.Config{Bucket: "configured", History: 7, MaxBytes: -1, MaxAge: time.Hour, Storage: natskv.MemoryStorage})
		st, err := b.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.History != 7 || st.MaxBytes != -1 || st.MaxAge != time.Hour || st.Storage != natskv.MemoryStorage || st.AllowTTL {
			t.Fatalf("Status = %+v", st)
		}
		e.open(t, natskv.Config{Bucket: "defaults"})
		info := e.streamInfo(t, "defaults")
		if info.Config.MaxMsgsPerSubject != 1 || info.Config.MaxBytes != natskv.DefaultMaxBytes || info.Config.Storage != jetstream.FileStorage || info.Config.Replicas != 1 || info.Config.MaxAge != 0 {
			t.Fatalf("defaults = %+v", info.Config)
		}
	})
	t.Run("invalid_config", func(t *testing.T) {
		for _, cfg := range []natskv.Config{
			{Bucket: ""},
			{Bucket: "has.dot"},
			{Bucket: "ok", History: 65},
			{Bucket: "ok", MaxBytes: -2},
			{Bucket: "ok", Timeout: -1},
		} {
			if _, err := natskv.Open(ctx, e.nc, cfg); err == nil {
				t.Errorf("Open(%+v) succeeded", cfg)
			}
		}
		if _, err := natskv.Open(ctx, e.nc, natskv.Config{Bucket: "has.dot"}); !errors.Is(err, natskv.ErrInvalidBucketName) {
			t.Errorf("invalid name: %v, want ErrInvalidBucketName", err)
		}
	})
}

// TestBadInput: each failure is a clear error and nothing is half-written.
func TestBadInput(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) { o.MaxPayload = 4096 })
	e := envFor(t, srv, srv.Conn(t))
	ctx := t.Context()
	b := e.open(t, natskv.Config{Bucket: "bad", AllowTTL: true})
	base := put(t, b, "ok", "1")

	t.Run("bucket_name_the_server_rejects", func(t *testing.T) {
		name := strings.Repeat("n", 300) // valid characters, too long for the server
		_, err := natskv.Open(ctx, e.nc, natskv.Config{Bucket: name, Logger: quietLogger()})
		if !errors.Is(err, natskv.ErrInvalidBucketName) {
			t.Fatalf("Open(300 chars) = %v; want ErrInvalidBucketName naming the length", err)
		}
		if _, err := e.js.Stream(ctx, "KV_"+name); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("a stream exists after the refused create: %v", err)
		}
	})
	t.Run("invalid_keys", func(t *testing.T) {
		for _, key := range []string{"", ".a", "a.", "a..b", "a b", "a*", "a>", "ü"} {
			if _, err := b.Put(ctx, key, []byte("v")); !errors.Is(err, slipstream.ErrInvalidKey) {
				t.Errorf("Put(%q) = %v", key, err)
			}
			if _, err := b.PutTTL(ctx, key, []byte("v"), time.Minute); !errors.Is(err, slipstream.ErrInvalidKey) {
				t.Errorf("PutTTL(%q) = %v", key, err)
			}
			if _, err := b.Create(ctx, key, []byte("v")); !errors.Is(err, slipstream.ErrInvalidKey) {
				t.Errorf("Create(%q) = %v", key, err)
			}
			if _, err := b.Update(ctx, key, []byte("v"), base); !errors.Is(err, slipstream.ErrInvalidKey) {
				t.Errorf("Update(%q) = %v", key, err)
			}
			if _, err := b.Delete(ctx, key); !errors.Is(err, slipstream.ErrInvalidKey) {
				t.Errorf("Delete(%q) = %v", key, err)
			}
			if _, err := b.DeleteWithVersion(ctx, key, base); !errors.Is(err, slipstream.ErrInvalidKey) {
				t.Errorf("DeleteWithVersion(%q) = %v", key, err)
			}
			if _, err := b.Purge(ctx, key); !errors.Is(err, slipstream.ErrInvalidKey) {
				t.Errorf("Purge(%q) = %v", key, err)
			}
			if _, _, err := b.Get(ctx, key); !errors.Is(err, slipstream.ErrInvalidKey) {
				t.Errorf("Get(%q) = %v", key, err)
			}
		}
		for _, p := range []string{"node", "a.*.", ".a.", "a..", ">"} {
			if _, err := b.Keys(ctx, p); !errors.Is(err, slipstream.ErrInvalidScope) {
				t.Errorf("Keys(%q) = %v, want ErrInvalidScope", p, err)
			}
			if err := b.Scan(ctx, p, func(slipstream.Entry) error { return nil }); !errors.Is(err, slipstream.ErrInvalidScope) {
				t.Errorf("Scan(%q) = %v, want ErrInvalidScope", p, err)
			}
		}
	})
	t.Run("value_above_max_payload", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 8192)
		_, err := b.Put(ctx, "big", big)
		if !errors.Is(err, natskv.ErrValueTooLarge) || !errors.Is(err, slipstream.ErrOperationFailed) {
			t.Fatalf("Put(8 KiB) = %v; want ErrValueTooLarge naming the limit", err)
		}
		if _, err := b.Create(ctx, "big", big); !errors.Is(err, natskv.ErrValueTooLarge) {
			t.Fatalf("Create(8 KiB) = %v", err)
		}
		if _, err := b.Update(ctx, "ok", big, base); !errors.Is(err, natskv.ErrValueTooLarge) {
			t.Fatalf("Update(8 KiB) = %v", err)
		}
		if _, err := b.PutTTL(ctx, "big", big, time.Minute); !errors.Is(err, natskv.ErrValueTooLarge) {
			t.Fatalf("PutTTL(8 KiB) = %v", err)
		}
	})
	// Nothing of the above reached the stream.
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSeq != base || st.Values != 1 {
		t.Fatalf("stream after bad input: last %d, %d values; want last %d, 1 value", st.LastSeq, st.Values, base)
	}
}

func TestTimeoutAndCancellation(t *testing.T) {
	e := newEnv(t)
	b := e.open(t, natskv.Config{Bucket: "timeouts", Timeout: 300 * time.Millisecond})
	put(t, b, "k", "v")
	// The caller's cancellation is ctx.Err(), not a timeout.
	ctx, cancel := contextCancelled(t)
	cancel()
	if _, _, err := b.Get(ctx, "k"); !errors.Is(err, ctx.Err()) || errors.Is(err, slipstream.ErrTimeout) {
		t.Fatalf("Get with a cancelled ctx = %v", err)
	}
	if _, err := b.Keys(ctx, ""); !errors.Is(err, ctx.Err()) {
		t.Fatalf("Keys with a cancelled ctx = %v", err)
	}
	if _, err := b.Put(ctx, "k", []byte("v")); !errors.Is(err, ctx.Err()) {
		t.Fatalf("Put with a cancelled ctx = %v", err)
	}
	if err := b.Watch(ctx, slipstream.AllKeys(), slipstream.Cursor{}, make(chan slipstream.Update)); err != nil {
		t.Fatalf("Watch with a cancelled ctx = %v, want nil", err)
	}
	// With the server gone, our own bound expires: ErrTimeout, promptly.
	e.srv.Shutdown()
	start := time.Now()
	_, _, err := b.Get(t.Context(), "k")
	if !errors.Is(err, slipstream.ErrTimeout) {
		t.Fatalf("Get with the server down = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Get took %v with a 300ms timeout", d)
	}
	if _, err := b.Put(t.Context(), "k", []byte("v")); !errors.Is(err, slipstream.ErrTimeout) {
		t.Fatalf("Put with the server down = %v, want ErrTimeout", err)
	}
	w := startWatch(t, b, slipstream.AllKeys(), slipstream.Cursor{})
	if err := w.waitResult(t, 5*time.Second); !errors.Is(err, slipstream.ErrTimeout) {
		t.Fatalf("Watch setup with the server down = %v, want ErrTimeout", err)
	}
}

func scan(t testing.TB, b *natskv.Bucket, prefix string) []slipstream.Entry {
	t.Helper()
	var out []slipstream.Entry
	if err := b.Scan(t.Context(), prefix, func(e slipstream.Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return out
}

func keys(t testing.TB, b *natskv.Bucket, prefix string, want ...string) {
	t.Helper()
	got, err := b.Keys(t.Context(), prefix)
	if err != nil {
		t.Fatalf("Keys(%q): %v", prefix, err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Keys(%q) = %v, want %v", prefix, got, want)
	}
}
