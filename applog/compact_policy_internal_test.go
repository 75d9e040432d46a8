package applog

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// A hydration appends no garbage, so it never rewrites the log: the file is
// exactly the header plus every record appended.
func TestHydrationNeverCompacts(t *testing.T) {
	s, err := Open(t.TempDir(), &Options{CompactThreshold: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := int64(headerLen)
	val := make([]byte, 256)
	rev := uint64(0)
	for b := range 50 {
		batch := make([]slipstream.Update, 100)
		for i := range batch {
			rev++
			batch[i] = slipstream.Put(fmt.Sprintf("k.%05d", b*100+i), val, slipstream.VersionFromUint64(rev))
			want += int64(recordLen(batch[i]))
		}
		want += 4 + 1 + 1 + 8 // the batch's cursor record
		if err := s.Apply(batch, slipstream.CursorFromUint64(rev)); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Size(); got != want {
			t.Fatalf("after batch %d the log is %d bytes, want %d appended bytes (a rewrite happened)", b, got, want)
		}
	}
}

// Overwrites make garbage: once it exceeds both the threshold and the live
// records the log is rewritten, so it stays within about twice the live size.
func TestOverwritesCompactWithinTwiceLive(t *testing.T) {
	const threshold = 4 << 10
	s, err := Open(t.TempDir(), &Options{CompactThreshold: threshold})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 100)
	rev := uint64(0)
	shrank := false
	var prev int64
	for round := range 200 {
		batch := make([]slipstream.Update, 20)
		for i := range batch {
			rev++
			batch[i] = slipstream.Put(fmt.Sprintf("k.%02d", i), val, slipstream.VersionFromUint64(rev))
		}
		if err := s.Apply(batch, slipstream.CursorFromUint64(rev)); err != nil {
			t.Fatal(err)
		}
		size, _ := s.Size()
		if size < prev {
			shrank = true
		}
		prev = size
		live := s.t.live
		if limit := int64(headerLen) + 3*live + threshold + 3*int64(len(batch))*putLen("k.00", val, slipstream.VersionFromUint64(rev)) + 16*int64(round+1); size > limit && round > 10 {
			t.Fatalf("round %d: log %d bytes with %d live bytes: garbage is not being compacted", round, size, live)
		}
	}
	if !shrank {
		t.Fatal("the log never shrank under overwrites")
	}
}

// live always equals the PUT records a compaction would write.
func TestLiveBytesTrackTheTable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rev := uint64(0)
	check := func(s *Store, when string) {
		t.Helper()
		var want int64
		if err := s.ForEachInRange("", func(e slipstream.Entry) error {
			want += putLen(e.Key, e.Value, e.Version)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if s.t.live != want {
			t.Fatalf("%s: live = %d, want %d", when, s.t.live, want)
		}
	}
	for range 300 {
		batch := make([]slipstream.Update, 1+rng.IntN(10))
		for i := range batch {
			rev++
			key := fmt.Sprintf("k.%d", rng.IntN(50))
			switch rng.IntN(4) {
			case 0:
				batch[i] = slipstream.Delete(key, slipstream.VersionFromUint64(rev))
			default:
				batch[i] = slipstream.Put(key, make([]byte, rng.IntN(300)), slipstream.VersionFromUint64(rev))
			}
		}
		if err := s.Apply(batch, slipstream.CursorFromUint64(rev)); err != nil {
			t.Fatal(err)
		}
		check(s, "after apply")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s, "after reload")
}
