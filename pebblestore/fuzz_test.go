package pebblestore

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

// seedHex adds every hex line of a testdata file ('#' lines are comments,
// an empty line is the empty input) to the fuzz corpus.
func seedHex(f *testing.F, name string) {
	f.Helper()
	file, err := os.Open("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	n := 0
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			f.Fatalf("testdata/%s: %q: %v", name, line, err)
		}
		f.Add(b)
		n++
	}
	if err := sc.Err(); err != nil {
		f.Fatal(err)
	}
	if n == 0 {
		f.Fatalf("testdata/%s has no seeds", name)
	}
}

// FuzzDecodeValue: a record decodes exactly when it is well formed (a
// length byte ≤ 10 and that many version bytes present), a failure wraps
// ErrInvalidFormat, and a decoded record re-encodes to the same bytes.
func FuzzDecodeValue(f *testing.F) {
	seedHex(f, "value_records.txt")
	f.Fuzz(func(t *testing.T, rec []byte) {
		v, val, err := decodeValue(rec)
		wellFormed := len(rec) > 0 && int(rec[0]) <= slipstream.MaxVersionLen && 1+int(rec[0]) <= len(rec)
		if wellFormed != (err == nil) {
			t.Fatalf("decodeValue(%x): err = %v, well formed = %v", rec, err, wellFormed)
		}
		if err != nil {
			if !errors.Is(err, slipstream.ErrInvalidFormat) {
				t.Fatalf("decodeValue(%x): %v does not wrap ErrInvalidFormat", rec, err)
			}
			return
		}
		if again := appendValue(nil, v, val); !bytes.Equal(again, rec) {
			t.Fatalf("decodeValue(%x) = %v, %x; re-encoded %x", rec, v, val, again)
		}
		buf := make([]byte, 1+v.Len()+len(val))
		putValue(buf, v, val)
		if !bytes.Equal(buf, rec) {
			t.Fatalf("putValue of decodeValue(%x) = %x", rec, buf)
		}
	})
}

// FuzzDecodeCursor: stored cursor bytes decode exactly when they fit a
// version token, and decode to those very bytes.
func FuzzDecodeCursor(f *testing.F) {
	seedHex(f, "cursors.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCursor(b)
		if (len(b) <= slipstream.MaxVersionLen) != (err == nil) {
			t.Fatalf("decodeCursor(%x): err = %v", b, err)
		}
		if err != nil {
			if !errors.Is(err, slipstream.ErrInvalidFormat) {
				t.Fatalf("decodeCursor(%x): %v does not wrap ErrInvalidFormat", b, err)
			}
			return
		}
		if got := c.Version().Bytes(); !bytes.Equal(got, b) {
			t.Fatalf("decodeCursor(%x) holds %x", b, got)
		}
	})
}

// FuzzSuccessor: successor(p) is p up to its last non-0xFF byte, that byte
// incremented — the smallest key above every key starting with p — and nil
// (no upper bound) when p has no such byte. Every key with prefix p sorts
// below it.
func FuzzSuccessor(f *testing.F) {
	seedHex(f, "prefixes.txt")
	f.Fuzz(func(t *testing.T, p []byte) {
		in := bytes.Clone(p)
		s := successor(p)
		if !bytes.Equal(p, in) {
			t.Fatalf("successor modified its argument: %x -> %x", in, p)
		}
		i := len(p) - 1
		for i >= 0 && p[i] == 0xFF {
			i--
		}
		if i < 0 {
			if s != nil {
				t.Fatalf("successor(%x) = %x, want nil", p, s)
			}
			return
		}
		want := append(bytes.Clone(p[:i]), p[i]+1)
		if !bytes.Equal(s, want) {
			t.Fatalf("successor(%x) = %x, want %x", p, s, want)
		}
		for _, tail := range [][]byte{nil, {0}, {0xFF, 0xFF, 0xFF}} {
			if k := append(bytes.Clone(p), tail...); bytes.Compare(k, s) >= 0 {
				t.Fatalf("key %x with prefix %x does not sort below successor %x", k, p, s)
			}
		}
	})
}
