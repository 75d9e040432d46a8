package lease_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/lease"
)

func TestParseRecord(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ok := []struct {
		name, in string
		want     lease.Record
		at       uint64 // completed_at_unix, 0 = absent
	}{
		{"completed", read("completed.json"), lease.Record{Holder: "node-a", AcquiredAtUnix: 1718000000, ExpiresAtUnix: 1718000060, CompletedCursorHex: "000000000000002a"}, 1718000012},
		{"acquired", read("acquired.json"), lease.Record{Holder: "node-a", AcquiredAtUnix: 1718000000, ExpiresAtUnix: 1718000060}, 0},
		{"unknown_fields_nulls_any_order", read("unordered_unknown_null.json"), lease.Record{Holder: "node-b", AcquiredAtUnix: 1718000000, ExpiresAtUnix: 1718000060}, 0},
		{"max_u64", read("max_u64.json"), lease.Record{Holder: "node-a", AcquiredAtUnix: 1<<64 - 1, ExpiresAtUnix: 1<<64 - 1}, 0},
		{"whitespace", " {\n \"holder_id\" : \"x\", \"acquired_at_unix\": 1,\n\"expires_at_unix\":2 } ", lease.Record{Holder: "x", AcquiredAtUnix: 1, ExpiresAtUnix: 2}, 0},
		{"empty_holder_is_a_string", `{"holder_id":"","acquired_at_unix":1,"expires_at_unix":2}`, lease.Record{AcquiredAtUnix: 1, ExpiresAtUnix: 2}, 0},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lease.ParseRecord([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseRecord: %v", err)
			}
			if (tc.at == 0) != (got.CompletedAtUnix == nil) || (tc.at != 0 && *got.CompletedAtUnix != tc.at) {
				t.Fatalf("CompletedAtUnix = %v, want %d", got.CompletedAtUnix, tc.at)
			}
			got.CompletedAtUnix = nil
			if got != tc.want {
				t.Fatalf("ParseRecord = %+v, want %+v", got, tc.want)
			}
			// json.Unmarshal into a Record applies the same rules.
			var viaJSON lease.Record
			if err := json.Unmarshal([]byte(tc.in), &viaJSON); err != nil {
				t.Fatalf("json.Unmarshal: %v", err)
			}
		})
	}

	bad := []struct{ name, in, mention string }{
		{"missing_expires", read("missing_expires.json"), "expires_at_unix"},
		{"null_required", read("null_holder.json"), "holder_id"},
		{"negative_time", read("negative_time.json"), "acquired_at_unix"},
		{"not_json", read("not_json.txt"), ""},
		{"array", read("array.json"), ""},
		{"empty", "", ""},
		{"json_null", "null", "holder_id"},
		{"empty_object", "{}", "holder_id"},
		{"missing_holder", `{"acquired_at_unix":1,"expires_at_unix":2}`, "holder_id"},
		{"missing_acquired", `{"holder_id":"a","expires_at_unix":2}`, "acquired_at_unix"},
		{"holder_not_string", `{"holder_id":7,"acquired_at_unix":1,"expires_at_unix":2}`, "holder_id"},
		{"float_time", `{"holder_id":"a","acquired_at_unix":1.5,"expires_at_unix":2}`, "acquired_at_unix"},
		{"string_time", `{"holder_id":"a","acquired_at_unix":"1","expires_at_unix":2}`, "acquired_at_unix"},
		{"u64_overflow", `{"holder_id":"a","acquired_at_unix":1,"expires_at_unix":18446744073709551616}`, "expires_at_unix"},
		{"optional_wrong_type", `{"holder_id":"a","acquired_at_unix":1,"expires_at_unix":2,"completed_at_unix":"x"}`, "completed_at_unix"},
		{"case_differs", `{"HOLDER_ID":"a","acquired_at_unix":1,"expires_at_unix":2}`, "holder_id"},
		{"trailing_garbage", `{"holder_id":"a","acquired_at_unix":1,"expires_at_unix":2} x`, ""},
		{"truncated", `{"holder_id":"a","acquired_at_unix":1,"expires_at_un`, ""},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lease.ParseRecord([]byte(tc.in))
			if !errors.Is(err, lease.ErrUnparseable) {
				t.Fatalf("ParseRecord(%q) = %v, want ErrUnparseable", tc.in, err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not name %q", err, tc.mention)
			}
			var r lease.Record
			if err := json.Unmarshal([]byte(tc.in), &r); err == nil {
				t.Fatalf("json.Unmarshal accepted %q", tc.in)
			}
		})
	}
}

func TestRecordCompletedCursor(t *testing.T) {
	for _, tc := range []struct {
		hex  string
		want slipstream.Cursor
		ok   bool
	}{
		{"", slipstream.Cursor{}, true},
		{"000000000000002a", slipstream.CursorFromUint64(42), true},
		{"00000000000000FF", slipstream.CursorFromUint64(255), true},
		{"0g", slipstream.Cursor{}, false},
		{"a", slipstream.Cursor{}, false},
		{strings.Repeat("00", slipstream.MaxVersionLen+1), slipstream.Cursor{}, false},
	} {
		got, err := lease.Record{CompletedCursorHex: tc.hex}.CompletedCursor()
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("CompletedCursor(%q) = %v, %v", tc.hex, got, err)
		}
		if err != nil && !errors.Is(err, lease.ErrUnparseable) {
			t.Errorf("CompletedCursor(%q) error %v does not wrap ErrUnparseable", tc.hex, err)
		}
	}
}

func TestRecordHeld(t *testing.T) {
	r := lease.Record{ExpiresAtUnix: 100}
	if !r.Held(99) || r.Held(100) || r.Held(101) {
		t.Fatal("a lease is held strictly before its expiry second, and free from it on")
	}
}
