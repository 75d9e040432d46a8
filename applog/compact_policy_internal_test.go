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
// records the log is rewritten, so it stays within twice the live size plus
// the threshold and one batch, and no rewrite happens before the garbage
// exceeds the live records (a rewrite's cost is paid for by as many garbage
// bytes).
func TestOverwritesCompactWithinTwiceLive(t *testing.T) {
	const threshold = 512 // below the live records: the live bound decides
	s, err := Open(t.TempDir(), &Options{CompactThreshold: threshold})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 100)
	rev := uint64(0)
	shrank := false
	var prev int64
	const keys = 40
	for round := range 200 {
		// 5 keys a batch, cycling over 40: the first 8 batches insert,
		// then each overwrites an eighth of the fold.
		batch := make([]slipstream.Update, 5)
		for i := range batch {
			rev++
			batch[i] = slipstream.Put(fmt.Sprintf("k.%02d", (round*len(batch)+i)%keys), val, slipstream.VersionFromUint64(rev))
		}
		if err := s.Apply(batch, slipstream.CursorFromUint64(rev)); err != nil {
			t.Fatal(err)
		}
		size, _ := s.Size()
		live := s.t.live
		batchBytes := int64(len(batch))*putLen("k.00", len(val), slipstream.VersionFromUint64(rev)) + 4 + 1 + 1 + 8
		if size < prev {
			shrank = true
			// The rewrite came after this batch was appended to the log
			// of prev bytes: its garbage must have exceeded the live
			// records (all 40 keys are live by then, so live did not
			// change).
			if garbage := prev + batchBytes - int64(headerLen) - live; garbage <= live {
				t.Fatalf("round %d: rewrote a log with only %d garbage bytes beside %d live", round, garbage, live)
			}
		}
		prev = size
		if limit := int64(headerLen) + 2*live + threshold + batchBytes; size > limit {
			t.Fatalf("round %d: log %d bytes with %d live bytes (limit %d): garbage is not being compacted", round, size, live, limit)
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
			want += putLen(e.Key, len(e.Value), e.Version)
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
