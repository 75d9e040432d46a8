package applog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"os"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// logRecord is one record of a log as written, for tests that check what
// Apply wrote and in what order.
type logRecord struct {
	typ   byte
	key   string
	value []byte
	ver   slipstream.Version // the version, or the cursor's
}

// readRecords parses the CRC-valid records of data from offset from to the
// end; it fails t on anything else.
func readRecords(t testing.TB, data []byte, from int) []logRecord {
	t.Helper()
	var out []logRecord
	for pos := from; pos < len(data); {
		if len(data)-pos < minRecordLen {
			t.Fatalf("record at %d: %d bytes left", pos, len(data)-pos)
		}
		r := logRecord{typ: data[pos+4]}
		p := pos + 5
		if r.typ == recPut || r.typ == recDelete {
			klen := int(binary.LittleEndian.Uint16(data[p:]))
			r.key = string(data[p+2 : p+2+klen])
			p += 2 + klen
			if r.typ == recPut {
				vlen := int(binary.LittleEndian.Uint32(data[p:]))
				r.value = data[p+4 : p+4+vlen]
				p += 4 + vlen
			}
		} else if r.typ != recCursor {
			t.Fatalf("record at %d: type %#x", pos, r.typ)
		}
		vl := int(data[p])
		r.ver, _ = slipstream.VersionFromBytes(data[p+1 : p+1+vl])
		end := p + 1 + vl
		if crc32.ChecksumIEEE(data[pos+4:end]) != binary.LittleEndian.Uint32(data[pos:]) {
			t.Fatalf("record at %d: bad crc", pos)
		}
		out = append(out, r)
		pos = end
	}
	return out
}

// bigBatch returns a batch of about 2.5 MiB, over twice the write buffer:
// puts of 64 KiB values and deletes, starting at revision first.
func bigBatch(first uint64) []slipstream.Update {
	var b []slipstream.Update
	for i := range 40 {
		v := first + uint64(i)
		if i%7 == 6 {
			b = append(b, slipstream.Delete(fmt.Sprintf("big.%02d", i-3), rev(v)))
			continue
		}
		b = append(b, slipstream.Put(fmt.Sprintf("big.%02d", i), bytes.Repeat([]byte{byte('a' + i%26)}, 64<<10), rev(v)))
	}
	return b
}

// TestApplyWritesDataThenOneCursor reads back what each Apply appended to
// the log: the batch's records, in order, then exactly one CURSOR record
// carrying the batch's cursor, last. A batch over the write buffer is
// written in several writes and must keep that order across them.
func TestApplyWritesDataThenOneCursor(t *testing.T) {
	ffs := &faultFS{}
	s := openFault(t, ffs, &Options{CompactThreshold: math.MaxUint64})
	batches := [][]slipstream.Update{
		{slipstream.Put("a", []byte("1"), rev(1)), slipstream.Put("b", nil, rev(2)), slipstream.Delete("a", rev(3))},
		nil,
		bigBatch(10),
		{{Op: slipstream.OpPurge, Key: "b", Version: rev(60)}, slipstream.Put("c", []byte("3"), rev(61))},
	}
	c := uint64(0)
	for i, batch := range batches {
		c += 100
		before := fileSize(t, s.path)
		ffs.failNthWrite(0, 0) // count this Apply's writes
		if err := s.Apply(batch, cur(c)); err != nil {
			t.Fatal(err)
		}
		recs := readRecords(t, readFile(t, s.path), int(before))
		if len(recs) != len(batch)+1 {
			t.Fatalf("batch %d of %d updates appended %d records", i, len(batch), len(recs))
		}
		for j, u := range batch {
			r := recs[j]
			want := byte(recDelete)
			if u.Op == slipstream.OpPut {
				want = recPut
			}
			if r.typ != want || r.key != u.Key || !bytes.Equal(r.value, u.Value) || r.ver != u.Version {
				t.Fatalf("batch %d: record %d is %#x %q@%v, want update %d (%v %q@%v) in batch order", i, j, r.typ, r.key, r.ver, j, u.Op, u.Key, u.Version)
			}
		}
		if last := recs[len(batch)]; last.typ != recCursor || slipstream.CursorAt(last.ver) != cur(c) {
			t.Fatalf("batch %d: last record %#x %v, want the CURSOR %d", i, last.typ, last.ver, c)
		}
		if len(batch) == len(bigBatch(0)) && ffs.writes < 3 {
			t.Fatalf("the big batch took %d writes; the test needs it split across the write buffer", ffs.writes)
		}
	}
}

// TestFailedWriteOfALargeBatchKeepsTheCursor fails each write of a batch
// larger than the write buffer in turn (nothing landed, or a short write),
// then reopens: the fold must load at the previous cursor, holding the
// state before the batch plus at most a prefix of it (data may run ahead of
// its cursor, never the reverse), and a retry of the batch must make it
// whole.
func TestFailedWriteOfALargeBatchKeepsTheCursor(t *testing.T) {
	base := []slipstream.Update{slipstream.Put("big.01", []byte("old"), rev(1)), slipstream.Put("keep", []byte("k"), rev(2))}
	batch := bigBatch(10)
	// The states a reopen may find: base plus a prefix of batch.
	st := map[string]string{}
	for _, u := range base {
		st[u.Key] = string(u.Value)
	}
	prefixes := []map[string]string{maps.Clone(st)}
	for _, u := range batch {
		if u.Op == slipstream.OpPut {
			st[u.Key] = string(u.Value)
		} else {
			delete(st, u.Key)
		}
		prefixes = append(prefixes, maps.Clone(st))
	}
	failed := 0
	for _, partial := range []int{0, 1000} {
		for n := 1; ; n++ {
			if n > 10 {
				t.Fatal("the batch never succeeded")
			}
			ffs := &faultFS{}
			s := openFault(t, ffs, &Options{CompactThreshold: math.MaxUint64})
			dir := s.dir
			if err := s.Apply(base, cur(2)); err != nil {
				t.Fatal(err)
			}
			ffs.failNthWrite(n, partial)
			err := s.Apply(batch, cur(100))
			if err == nil {
				s.Close()
				break // n is past the batch's last write
			}
			failed++
			if !errors.Is(err, ErrPoisoned) || !errors.Is(err, errInjected) || s.Cursor() != cur(2) {
				t.Fatalf("write %d failed: Apply = %v, cursor %v", n, err, s.Cursor())
			}
			if err := s.Apply(nil, cur(101)); !errors.Is(err, ErrPoisoned) {
				t.Fatalf("Apply after a failed write = %v, want ErrPoisoned", err)
			}
			s.Close()

			s, err = Open(dir, &Options{Logger: discard})
			if err != nil {
				t.Fatalf("write %d (partial %d) failed: reopen: %v", n, partial, err)
			}
			got := map[string]string{}
			for k, e := range storeState(t, s) {
				got[k] = string(e.Value)
			}
			isPrefix := false
			for _, p := range prefixes {
				isPrefix = isPrefix || maps.Equal(got, p)
			}
			if s.Cursor() != cur(2) || !isPrefix {
				t.Fatalf("write %d (partial %d) failed: reopened at cursor %v with %d keys; want cursor 2 and the base plus a prefix of the batch", n, partial, s.Cursor(), len(got))
			}
			if err := s.Apply(batch, cur(100)); err != nil {
				t.Fatal(err)
			}
			if got := storeState(t, s); len(got) != len(prefixes[len(prefixes)-1]) || s.Cursor() != cur(100) {
				t.Fatalf("retry: %d keys at %v, want %d at 100", len(got), s.Cursor(), len(prefixes[len(prefixes)-1]))
			}
			s.Close()
		}
	}
	if failed < 4 {
		t.Fatalf("only %d failed writes exercised", failed)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
