package pebblestore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

func TestValueCodecRoundTrips(t *testing.T) {
	v10, _ := slipstream.VersionFromBytes([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	tests := []struct {
		name  string
		ver   slipstream.Version
		value []byte
	}{
		{"nats revision", slipstream.VersionFromUint64(42), []byte("payload")},
		{"empty value", slipstream.VersionFromUint64(1), nil},
		{"ten-byte version", v10, []byte{0, 0xff}},
		{"unknown version", slipstream.Version{}, []byte("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := appendValue(nil, tt.ver, tt.value)
			if len(rec) != 1+tt.ver.Len()+len(tt.value) || int(rec[0]) != tt.ver.Len() {
				t.Fatalf("record % x is not ver_len ‖ version ‖ value", rec)
			}
			ver, val, err := decodeValue(rec)
			if err != nil || ver != tt.ver || !bytes.Equal(val, tt.value) {
				t.Fatalf("decode = %v %q %v", ver, val, err)
			}
			if val == nil {
				t.Fatal("an empty value must decode to a present (non-nil) slice")
			}
			// Apply encodes in place into the batch; the bytes must be the
			// same. The buffer is oversized and dirty, as a batch's may be.
			buf := bytes.Repeat([]byte{0xAA}, len(rec)+8)
			putValue(buf[:len(rec)], tt.ver, tt.value)
			if !bytes.Equal(buf[:len(rec)], rec) || !bytes.Equal(buf[len(rec):], bytes.Repeat([]byte{0xAA}, 8)) {
				t.Fatalf("putValue wrote % x, want % x", buf, rec)
			}
			key := bytes.Repeat([]byte{0xAA}, 4)
			putDataKey(key[:3], "ab")
			if !bytes.Equal(key, []byte{nsData, 'a', 'b', 0xAA}) {
				t.Fatalf("putDataKey wrote % x", key)
			}
		})
	}
}

func TestValueCodecRejectsBadRecords(t *testing.T) {
	for name, rec := range map[string][]byte{
		"empty":             nil,
		"version over 10":   {11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
		"truncated version": {8, 1, 2, 3},
		"length byte 255":   {255},
	} {
		if _, _, err := decodeValue(rec); !errors.Is(err, slipstream.ErrInvalidFormat) {
			t.Errorf("%s: decode = %v, want ErrInvalidFormat", name, err)
		}
	}
	if _, err := decodeCursor(make([]byte, 11)); !errors.Is(err, slipstream.ErrInvalidFormat) {
		t.Errorf("11-byte cursor = %v", err)
	}
	if c, err := decodeCursor(nil); err != nil || !c.IsNone() {
		t.Errorf("empty cursor = %v, %v; want none", c, err)
	}
}

func TestSuccessor(t *testing.T) {
	tests := []struct{ in, want []byte }{
		{[]byte{nsData}, []byte{nsData + 1}},
		{[]byte{nsData, 'a'}, []byte{nsData, 'b'}},
		{[]byte{nsData, 'a', 0xff}, []byte{nsData, 'b'}},
		{[]byte{nsData, 0xff, 0xff}, []byte{nsData + 1}},
		{[]byte{0xff}, nil},
	}
	for _, tt := range tests {
		if got := successor(tt.in); !bytes.Equal(got, tt.want) {
			t.Errorf("successor(% x) = % x, want % x", tt.in, got, tt.want)
		}
	}
}
