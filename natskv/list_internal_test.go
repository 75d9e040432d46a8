package natskv

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/slipstream-kv/slipstream/internal/natstest"
)

// TestCheckByName: against the stream's subjects after a listing, a key the
// listing missed whose last message predates it was dropped (short); one
// written since is read and added, a delete as a marker.
func TestCheckByName(t *testing.T) {
	srv := natstest.Start(t)
	b, err := Open(t.Context(), srv.Conn(t), Config{Bucket: "byname", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, err := b.Put(t.Context(), k, []byte("v1")); err != nil {
			t.Fatal(err)
		}
	}
	before, err := b.streamMark(t.Context(), b.pre+">")
	if err != nil {
		t.Fatal(err)
	}
	// During the listing: b is updated (history 1 evicts its old message),
	// d deleted.
	rb, err := b.Put(t.Context(), "b", []byte("v2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Delete(t.Context(), "d"); err != nil {
		t.Fatal(err)
	}
	seenOnly := func(keys ...string) func(string) bool {
		return func(k string) bool { return slices.Contains(keys, k) }
	}
	for _, headersOnly := range []bool{true, false} {
		type fed struct {
			key    string
			marker bool
			size   string
			data   string
			rev    uint64
		}
		var got []fed
		fn := func(key string, m *nats.Msg) (bool, error) {
			rev, _ := streamSequenceFromAck(m.Reply)
			got = append(got, fed{key, isMarker(m.Header), m.Header.Get(hdrMsgSize), string(m.Data), rev})
			return true, nil
		}
		if err := b.checkByName(t.Context(), b.pre+">", headersOnly, before.last, fn, seenOnly("a", "c")); err != nil {
			t.Fatalf("headersOnly=%v: %v", headersOnly, err)
		}
		slices.SortFunc(got, func(x, y fed) int { return strings.Compare(x.key, y.key) })
		if len(got) != 2 || got[0].key != "b" || got[0].marker || got[0].rev != rb || got[1].key != "d" || !got[1].marker {
			t.Fatalf("headersOnly=%v: fed %+v, want b@%d as a value and d as a marker", headersOnly, got, rb)
		}
		if headersOnly && (got[0].size != "2" || got[0].data != "") {
			t.Fatalf("headers-only feed of b = %+v, want size 2 and no data", got[0])
		}
		if !headersOnly && got[0].data != "v2" {
			t.Fatalf("feed of b = %+v, want its value", got[0])
		}
	}
	// c was never touched: missing it means the listing dropped it.
	err = b.checkByName(t.Context(), b.pre+">", true, before.last, func(string, *nats.Msg) (bool, error) { return true, nil }, seenOnly("a", "b", "d"))
	if !errors.Is(err, ErrShortListing) {
		t.Fatalf("checkByName with c missing = %v, want ErrShortListing", err)
	}
}
