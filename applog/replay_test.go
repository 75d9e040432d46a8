package applog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// modelSink records a replay as a plain map for comparisons.
type modelSink map[string]string

func (m modelSink) put(key, value []byte, v slipstream.Version, _ int) bool {
	_, ok := m[string(key)]
	m[string(key)] = fmt.Sprintf("%s@%s", value, v)
	return ok
}

func (m modelSink) del(key []byte) { delete(m, string(key)) }

func withCRC(rec []byte, crc uint32) []byte {
	rec = bytes.Clone(rec)
	binary.LittleEndian.PutUint32(rec, crc)
	return rec
}

func flipCRC(rec []byte) []byte { return withCRC(rec, binary.LittleEndian.Uint32(rec)^1) }

// rawRecord builds a record with a valid CRC from its type and payload.
func rawRecord(typ byte, payload ...byte) []byte {
	rec := append([]byte{0, 0, 0, 0, typ}, payload...)
	return sealRecord(rec, 0)
}

func TestReplayRules(t *testing.T) {
	bigLen := binary.LittleEndian.AppendUint32(nil, MaxValueLen+1)
	okLen := binary.LittleEndian.AppendUint32(nil, MaxValueLen)
	tests := []struct {
		name    string
		recs    [][]byte
		err     error // nil: replay succeeds
		state   map[string]string
		cursor  slipstream.Cursor
		clean   bool
		compact bool
	}{
		{name: "header only", clean: true, compact: true, state: map[string]string{}},
		{name: "put and cursor", recs: [][]byte{put("a", "x", 1), ckpt(1)}, clean: true, compact: true,
			state: map[string]string{"a": "x@1"}, cursor: cur(1)},
		{name: "fewer than 5 bytes is torn", recs: [][]byte{put("a", "x", 1), {1, 2, 3, 4}},
			state: map[string]string{"a": "x@1"}},
		{name: "put shorter than 7 bytes is torn", recs: [][]byte{put("a", "x", 1), {9, 9, 9, 9, recPut, 1}},
			state: map[string]string{"a": "x@1"}},
		{name: "put key past EOF is torn", recs: [][]byte{put("a", "x", 1), put("bbbb", "y", 2)[:9]},
			state: map[string]string{"a": "x@1"}},
		{name: "put missing value_len is torn", recs: [][]byte{put("a", "x", 1), put("b", "y", 2)[:10]},
			state: map[string]string{"a": "x@1"}},
		{name: "put value past EOF is torn", recs: [][]byte{put("a", "x", 1), put("b", "yyyy", 2)[:14]},
			state: map[string]string{"a": "x@1"}},
		{name: "put missing ver_len is torn", recs: [][]byte{put("a", "x", 1), put("b", "y", 2)[:13]},
			state: map[string]string{"a": "x@1"}},
		{name: "put version past EOF is torn", recs: [][]byte{put("a", "x", 1), put("b", "y", 2)[:20]},
			state: map[string]string{"a": "x@1"}},
		{name: "delete version past EOF is torn", recs: [][]byte{put("a", "x", 1), del("a", 2)[:12]},
			state: map[string]string{"a": "x@1"}},
		{name: "cursor shorter than 6 is torn", recs: [][]byte{put("a", "x", 1), ckpt(1)[:5]},
			state: map[string]string{"a": "x@1"}},
		{name: "cursor bytes past EOF are torn", recs: [][]byte{put("a", "x", 1), ckpt(1)[:10]},
			state: map[string]string{"a": "x@1"}},
		{name: "crc mismatch of the last record is torn", recs: [][]byte{put("a", "x", 1), flipCRC(ckpt(2))},
			state: map[string]string{"a": "x@1"}},
		{name: "crc mismatch with 5 bytes after is torn", recs: [][]byte{put("a", "x", 1), flipCRC(ckpt(2)), {0, 0, 0, 0, 3}},
			state: map[string]string{"a": "x@1"}},
		{name: "crc mismatch with a record after is corruption", recs: [][]byte{flipCRC(put("a", "x", 1)), appendCursor(nil, slipstream.Cursor{})},
			err: slipstream.ErrCorrupt},
		{name: "value_len over 16 MiB mid-file is corruption",
			recs: [][]byte{put("a", "x", 1), {1, 2, 3, 4, recPut, 1, 0, 'b'}, bigLen, make([]byte, 40)},
			err:  slipstream.ErrCorrupt},
		{name: "value_len over 16 MiB at EOF is torn",
			recs:  [][]byte{put("a", "x", 1), {1, 2, 3, 4, recPut, 1, 0, 'b'}, bigLen, {1, 2, 3, 4, 5}},
			state: map[string]string{"a": "x@1"}},
		{name: "value_len of 16 MiB running past EOF is torn",
			recs:  [][]byte{put("a", "x", 1), {1, 2, 3, 4, recPut, 1, 0, 'b'}, okLen, make([]byte, 40)},
			state: map[string]string{"a": "x@1"}},
		{name: "put ver_len over 10 is invalid even at EOF", recs: [][]byte{rawRecord(recPut, 1, 0, 'a', 0, 0, 0, 0, 11)},
			err: slipstream.ErrInvalidFormat},
		{name: "delete ver_len over 10 is invalid", recs: [][]byte{rawRecord(recDelete, 1, 0, 'a', 11)},
			err: slipstream.ErrInvalidFormat},
		{name: "cursor cur_len over 10 is invalid", recs: [][]byte{rawRecord(recCursor, 11)},
			err: slipstream.ErrInvalidFormat},
		{name: "unknown record type is invalid", recs: [][]byte{put("a", "x", 1), rawRecord(0x07, 0, 0)},
			err: slipstream.ErrInvalidFormat},
		{name: "type 0 with a non-zero crc is invalid", recs: [][]byte{put("a", "x", 1), {1, 0, 0, 0, 0, 0}},
			err: slipstream.ErrInvalidFormat},
		{name: "trailing NUL slack is torn", recs: [][]byte{put("a", "x", 1), ckpt(1), make([]byte, 64)},
			state: map[string]string{"a": "x@1"}, cursor: cur(1)},
		{name: "NUL hole before a record is invalid", recs: [][]byte{put("a", "x", 1), make([]byte, 8), ckpt(1)},
			err: slipstream.ErrInvalidFormat},
		{name: "NUL hole before one stray byte is invalid", recs: [][]byte{put("a", "x", 1), make([]byte, 8), {1}},
			err: slipstream.ErrInvalidFormat},
		{name: "non-UTF-8 key is invalid", recs: [][]byte{rawRecord(recPut, 1, 0, 0xff, 0, 0, 0, 0, 0)},
			err: slipstream.ErrInvalidFormat},
		{name: "none cursor record resets the cursor", recs: [][]byte{put("a", "x", 1), ckpt(5), appendCursor(nil, slipstream.Cursor{})},
			state: map[string]string{"a": "x@1"}, clean: true},
		{name: "overwrite is redundant", recs: [][]byte{put("a", "x", 1), put("a", "y", 2)},
			state: map[string]string{"a": "y@2"}, clean: true},
		{name: "delete is redundant", recs: [][]byte{put("a", "x", 1), del("b", 2)},
			state: map[string]string{"a": "x@1"}, clean: true},
		{name: "second cursor is redundant", recs: [][]byte{ckpt(1), ckpt(2)},
			state: map[string]string{}, cursor: cur(2), clean: true},
		{name: "cursor after a none cursor is not redundant", recs: [][]byte{appendCursor(nil, slipstream.Cursor{}), ckpt(2)},
			state: map[string]string{}, cursor: cur(2), clean: true, compact: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := append(appendHeader(nil), bytes.Join(tt.recs, nil)...)
			m := modelSink{}
			res, err := replay(data, m)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("replay error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			if !maps.Equal(map[string]string(m), tt.state) {
				t.Fatalf("state %v, want %v", m, tt.state)
			}
			if res.cursor != tt.cursor || res.cleanEOF != tt.clean || res.compact != tt.compact {
				t.Fatalf("cursor %v clean %v compact %v; want %v %v %v", res.cursor, res.cleanEOF, res.compact, tt.cursor, tt.clean, tt.compact)
			}
		})
	}
}

// noSyncFS skips fsyncs, for tests that load hundreds of files and do not
// test durability.
type noSyncFS struct{ osFS }

func (noSyncFS) Sync(*os.File) error  { return nil }
func (noSyncFS) SyncDir(string) error { return nil }

// tornLog is a multi-record log mixing every record shape, and the offsets
// at which each of its records ends.
func tornLog(t testing.TB) (data []byte, ends []int) {
	v10 := version10(t, 1)
	recs := [][]byte{
		put("node.a", "v1", 1), put("node.b", "v2", 2), ckpt(2),
		appendPut(nil, "lock", nil, rev(3)), del("node.a", 4), ckpt(4),
		appendPut(nil, "fdb", []byte("ten-byte version"), v10), put("node.b", "v2b", 6),
		appendDelete(nil, "lock", slipstream.Version{}), appendCursor(nil, slipstream.CursorAt(v10)),
		put("node.c", string(bytes.Repeat([]byte{0xAB}, 300)), 8), ckpt(8),
	}
	data = appendHeader(nil)
	for _, r := range recs {
		data = append(data, r...)
		ends = append(ends, len(data))
	}
	return data, ends
}

// prefixState replays the complete records of data[:cut] (those ending at or
// before cut): the only state a load of the cut file may return.
func prefixState(t testing.TB, data []byte, ends []int, cut int) (map[string]string, slipstream.Cursor) {
	t.Helper()
	end := headerLen
	for _, e := range ends {
		if e <= cut {
			end = e
		}
	}
	m := modelSink{}
	res, err := replay(data[:end], m)
	if err != nil || !res.cleanEOF {
		t.Fatalf("model replay of a record-aligned prefix: %v clean=%v", err, res.cleanEOF)
	}
	return m, res.cursor
}

func snapModel(s Snapshot) map[string]string {
	m := map[string]string{}
	for k, e := range s.Entries {
		m[k] = fmt.Sprintf("%s@%s", e.Value, e.Version)
	}
	return m
}

// TestTornTailAtEveryOffset truncates a valid log at every byte offset: load
// must return exactly the state of the complete records before the cut, with
// their cursor, and leave a compact file that reloads to the same state and
// accepts appends.
func TestTornTailAtEveryOffset(t *testing.T) {
	data, ends := tornLog(t)
	dir := t.TempDir()
	for cut := 0; cut <= len(data); cut++ {
		path := filepath.Join(dir, fmt.Sprintf("cut-%d.snap", cut))
		writeFile(t, path, data[:cut])
		wantState, wantCursor := prefixState(t, data, ends, max(cut, headerLen))
		snap, ok, err := load(noSyncFS{}, path)
		if err != nil {
			t.Fatalf("cut %d: Load: %v", cut, err)
		}
		empty := len(wantState) == 0 && wantCursor.IsNone()
		if ok == empty {
			t.Fatalf("cut %d: ok=%v, want state %v cursor %v", cut, ok, wantState, wantCursor)
		}
		if got := snapModel(snap); !maps.Equal(got, wantState) || snap.Cursor != wantCursor {
			t.Fatalf("cut %d: state %v cursor %v; want %v cursor %v", cut, got, snap.Cursor, wantState, wantCursor)
		}
		// The repaired file is whole: it reloads unchanged to the same state.
		repaired := readFile(t, path)
		if m := (modelSink{}); true {
			res, err := replay(repaired, m)
			if err != nil || !res.compact || !maps.Equal(map[string]string(m), wantState) || res.cursor != wantCursor {
				t.Fatalf("cut %d: repaired file replays to %v %v (compact %v, err %v)", cut, m, res.cursor, res.compact, err)
			}
		}
		os.Remove(path)
	}
}

// TestBitFlipAtEveryOffset flips one byte at every offset of a valid log:
// load must fail with a typed error (leaving the file as it was) or return
// the state of some prefix of the log's records with that prefix's cursor.
func TestBitFlipAtEveryOffset(t *testing.T) {
	data, ends := tornLog(t)
	var prefixes []string
	for _, e := range append([]int{headerLen}, ends...) {
		m, c := prefixState(t, data, ends, e)
		prefixes = append(prefixes, fmt.Sprint(m, c))
	}
	dir := t.TempDir()
	for off := range data {
		for _, mask := range []byte{0x01, 0x80, 0xFF} {
			b := bytes.Clone(data)
			b[off] ^= mask
			path := filepath.Join(dir, fmt.Sprintf("flip-%d-%x.snap", off, mask))
			writeFile(t, path, b)
			snap, _, err := load(noSyncFS{}, path)
			if err != nil {
				if !errors.Is(err, slipstream.ErrCorrupt) && !errors.Is(err, slipstream.ErrInvalidFormat) {
					t.Fatalf("offset %d mask %x: untyped error %v", off, mask, err)
				}
				if !bytes.Equal(readFile(t, path), b) {
					t.Fatalf("offset %d mask %x: failed load modified the file", off, mask)
				}
				os.Remove(path)
				continue
			}
			got := fmt.Sprint(snapModel(snap), snap.Cursor)
			if !slices.Contains(prefixes, got) {
				t.Fatalf("offset %d mask %x: load returned %s, not the state of any prefix", off, mask, got)
			}
			os.Remove(path)
		}
	}
}

// FuzzAppLogReader feeds arbitrary bytes to the log reader, seeded from the
// golden files. Replay must never panic; when it succeeds its state must be
// exactly the replay of its own valid prefix, the store's table must replay
// to the same state and key order, and the compact rewrite of that state
// must replay to the same state, compactly.
func FuzzAppLogReader(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.snap"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	data, _ := tornLog(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte("PGS"))
	// Zero slack, and a zero hole before data, longer than a read window.
	f.Add(append(slices.Clone(data), make([]byte, 500)...))
	f.Add(append(append(slices.Clone(data), make([]byte, 500)...), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		snap := snapshotSink{}
		res, err := replay(data, snap)
		// A load reads the file through a sliding window: whatever its
		// size, the outcome is the whole buffer's.
		for _, size := range []int{1, 16, 333} {
			got := snapshotSink{}
			w := &window{r: bytes.NewReader(data), buf: make([]byte, 0, size), n: len(data)}
			wres, werr := replayWindow(w, got)
			if wres != res || fmt.Sprint(werr) != fmt.Sprint(err) || (err == nil && !maps.EqualFunc(snap, got, entryEqual)) {
				t.Fatalf("window of %d bytes: result %+v, %v; whole buffer: %+v, %v", size, wres, werr, res, err)
			}
		}
		if err != nil {
			if !errors.Is(err, slipstream.ErrCorrupt) && !errors.Is(err, slipstream.ErrInvalidFormat) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// The store's table replays to the same state, in key order, and
		// finds the same redundancy, whether the log is whole or read
		// through a sliding window (the table holds PUTs that alias it).
		tb := newTable()
		if tres, err := replay(data, tb); err != nil || tres != res {
			t.Fatalf("table replay: %+v, %v; snapshot replay: %+v", tres, err, res)
		}
		for _, size := range []int{1, 333} {
			tw := newTable()
			w := &window{r: bytes.NewReader(data), buf: make([]byte, 0, size), n: len(data)}
			if tres, err := replayWindow(w, tw); err != nil || tres != res || tw.size() != len(snap) {
				t.Fatalf("table replay through a %d-byte window: %+v, %v, %d keys; snapshot replay: %+v, %d keys", size, tres, err, tw.size(), res, len(snap))
			}
			for k, want := range snap {
				if e := tw.get(k); e == nil || !bytes.Equal(valueIn(data, e), want.Value) || e.ver != want.Version {
					t.Fatalf("table replay through a %d-byte window: entry %q differs", size, k)
				}
			}
		}
		keys := Snapshot{Entries: snap}.sortedKeys()
		if tb.size() != len(keys) {
			t.Fatalf("table holds %d keys, snapshot %d", tb.size(), len(keys))
		}
		tb.refresh()
		it := newKeyIter(tb.idx.base, tb.idx.delta, "")
		for _, k := range keys {
			got, ok := it.next()
			for ok && tb.get(got) == nil {
				got, ok = it.next()
			}
			e := tb.get(k)
			if !ok || got != k || e == nil || !bytes.Equal(valueIn(data, e), snap[k].Value) || e.ver != snap[k].Version {
				t.Fatalf("table entry %q differs from the snapshot's", k)
			}
		}
		if res.end > len(data) && len(data) >= headerLen {
			t.Fatalf("valid prefix %d beyond the input's %d bytes", res.end, len(data))
		}
		if len(data) >= headerLen {
			again := snapshotSink{}
			res2, err := replay(data[:res.end], again)
			if err != nil || !res2.cleanEOF || res2.cursor != res.cursor || !maps.EqualFunc(snap, again, entryEqual) {
				t.Fatalf("state is not the replay of the valid prefix (err %v)", err)
			}
		}
		var buf bytes.Buffer
		rw := newRecordWriter(&buf)
		snap.emit(rw)
		rw.cursor(res.cursor)
		rw.flush()
		rewritten := snapshotSink{}
		res3, err := replay(buf.Bytes(), rewritten)
		if err != nil || !res3.cleanEOF || res3.cursor != res.cursor || !maps.EqualFunc(snap, rewritten, entryEqual) {
			t.Fatalf("compact rewrite does not round-trip (err %v)", err)
		}
		if !res3.compact {
			t.Fatal("compact rewrite is not compact")
		}
	})
}

// valueIn returns the value a table entry points to in the log data.
func valueIn(data []byte, e *entry) []byte { return data[e.off : e.off+int64(e.vlen)] }

func entryEqual(a, b slipstream.Entry) bool {
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.Version == b.Version
}

// TestWindowedReplayOfALargeLog replays a log several times larger than the
// framing lookahead through small windows, so the window slides while the
// table holds PUTs aliasing it, and compares state and redundancy with the
// replay of the whole buffer.
func TestWindowedReplayOfALargeLog(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 13))
	data := appendHeader(nil)
	for i := range 6000 {
		k := fmt.Sprintf("k.%04d", rng.IntN(2500))
		switch rng.IntN(10) {
		case 0:
			data = appendDelete(data, k, rev(uint64(i)))
		case 1:
			data = appendCursor(data, slipstream.CursorFromUint64(uint64(i)))
		default:
			v := make([]byte, rng.IntN(200))
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			data = appendPut(data, k, v, rev(uint64(i)))
		}
	}
	for _, compact := range []bool{false, true} {
		if compact {
			// A compact log: no redundancy to find.
			snap := snapshotSink{}
			res, err := replay(data, snap)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			rw := newRecordWriter(&buf)
			snap.emit(rw)
			rw.cursor(res.cursor)
			rw.flush()
			data = buf.Bytes()
		}
		want := snapshotSink{}
		wres, err := replay(data, want)
		if err != nil || wres.compact != compact {
			t.Fatalf("whole replay: %+v, %v", wres, err)
		}
		for _, size := range []int{1, 1000} {
			tb := newTable()
			w := &window{r: bytes.NewReader(data), buf: make([]byte, 0, size), n: len(data)}
			res, err := replayWindow(w, tb)
			if err != nil || res != wres || tb.size() != len(want) {
				t.Fatalf("compact %v, window %d: %+v, %v, %d keys; whole: %+v, %d keys", compact, size, res, err, tb.size(), wres, len(want))
			}
			for k, e := range want {
				if got := tb.get(k); got == nil || !bytes.Equal(valueIn(data, got), e.Value) || got.ver != e.Version {
					t.Fatalf("compact %v, window %d: entry %q differs", compact, size, k)
				}
			}
		}
	}
}
