package lease

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func u64(v uint64) *uint64 { return &v }

// TestRecordEncodingGolden pins the stored bytes: compact, fields in the
// documented order, optional fields omitted when absent.
func TestRecordEncodingGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		rec  Record
	}{
		{"acquired.json", Record{Holder: "node-a", AcquiredAtUnix: 1718000000, ExpiresAtUnix: 1718000060}},
		{"completed.json", Record{Holder: "node-a", AcquiredAtUnix: 1718000000, ExpiresAtUnix: 1718000060,
			CompletedCursorHex: "000000000000002a", CompletedAtUnix: u64(1718000012)}},
	} {
		want, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := tc.rec.encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("encode = %s\nwant     %s", got, want)
		}
		back, err := ParseRecord(got)
		if err != nil || !equalRecords(back, tc.rec) {
			t.Errorf("ParseRecord(encode) = %+v, %v", back, err)
		}
	}
}

func TestRecordEncodingOptionalFieldsIndependent(t *testing.T) {
	for _, tc := range []struct {
		rec  Record
		want string
	}{
		{Record{Holder: "h", AcquiredAtUnix: 1, ExpiresAtUnix: 2, CompletedAtUnix: u64(0)},
			`{"holder_id":"h","acquired_at_unix":1,"expires_at_unix":2,"completed_at_unix":0}`},
		{Record{Holder: "h", AcquiredAtUnix: 1, ExpiresAtUnix: 2, CompletedCursorHex: "00"},
			`{"holder_id":"h","acquired_at_unix":1,"expires_at_unix":2,"completed_cursor_hex":"00"}`},
		// No HTML escaping: the holder is stored as written.
		{Record{Holder: "a<b>&c", AcquiredAtUnix: 0, ExpiresAtUnix: math.MaxUint64},
			`{"holder_id":"a<b>&c","acquired_at_unix":0,"expires_at_unix":18446744073709551615}`},
	} {
		got, err := tc.rec.encode()
		if err != nil || string(got) != tc.want {
			t.Errorf("encode(%+v) = %s, %v\nwant %s", tc.rec, got, err, tc.want)
		}
	}
}

func equalRecords(a, b Record) bool {
	if (a.CompletedAtUnix == nil) != (b.CompletedAtUnix == nil) {
		return false
	}
	if a.CompletedAtUnix != nil && *a.CompletedAtUnix != *b.CompletedAtUnix {
		return false
	}
	a.CompletedAtUnix, b.CompletedAtUnix = nil, nil
	return a == b
}

func TestUnixNowPreEpochIsZeroWithWarning(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if got := unixNow(time.Unix(-5, 0), log); got != 0 {
		t.Fatalf("unixNow(pre-epoch) = %d, want 0", got)
	}
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "epoch") {
		t.Fatalf("no warning logged: %q", buf.String())
	}
	buf.Reset()
	if got := unixNow(time.Unix(1718000000, 999_999_999), log); got != 1718000000 {
		t.Fatalf("unixNow = %d, want whole seconds 1718000000", got)
	}
	if buf.Len() != 0 {
		t.Fatalf("unexpected log: %q", buf.String())
	}
}

func TestAddSeconds(t *testing.T) {
	for _, tc := range []struct {
		now  uint64
		ttl  time.Duration
		want uint64
	}{
		{100, 60 * time.Second, 160},
		{100, 1999 * time.Millisecond, 101}, // the sub-second part is dropped
		{100, 999 * time.Millisecond, 100},
		{math.MaxUint64 - 10, time.Minute, math.MaxUint64}, // saturates
		{math.MaxUint64, time.Duration(math.MaxInt64), math.MaxUint64},
		{0, time.Duration(math.MaxInt64), uint64(math.MaxInt64 / int64(time.Second))},
	} {
		if got := addSeconds(tc.now, tc.ttl); got != tc.want {
			t.Errorf("addSeconds(%d, %v) = %d, want %d", tc.now, tc.ttl, got, tc.want)
		}
	}
}

// FuzzParseRecord: any bytes parse or fail with ErrUnparseable, never
// panic; a parsed record re-encodes to compact JSON in the documented
// order that parses back to the same record, and encoding/json agrees with
// the value it decodes (no field invented or lost).
func FuzzParseRecord(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := ParseRecord(b)
		if err != nil {
			if !errors.Is(err, ErrUnparseable) {
				t.Fatalf("ParseRecord error %v does not wrap ErrUnparseable", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("ParseRecord accepted invalid JSON %q", b)
		}
		enc, err := rec.encode()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(enc), `{"holder_id":`) || bytes.ContainsAny(enc, "\n\t") {
			t.Fatalf("encoding %s is not compact with holder_id first", enc)
		}
		back, err := ParseRecord(enc)
		if err != nil || !equalRecords(back, rec) {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", rec, enc, back, err)
		}
		var generic map[string]any
		if err := json.Unmarshal(enc, &generic); err != nil {
			t.Fatal(err)
		}
		want := 3
		if rec.CompletedCursorHex != "" {
			want++
		}
		if rec.CompletedAtUnix != nil {
			want++
		}
		if len(generic) != want {
			t.Fatalf("encoding %s has %d fields, want %d", enc, len(generic), want)
		}
	})
}
