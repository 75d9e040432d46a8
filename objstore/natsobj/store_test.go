package natsobj_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/natsobj"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

// stores starts an embedded server for one top-level test and returns a
// factory of stores on fresh buckets. The server's max_payload is raised so
// the suite's 1 MiB + 1 byte pointer can be written (and then refused by the
// transport on read).
func stores(t *testing.T) objstoretest.NewStore {
	srv := natstest.StartWith(t, func(o *server.Options) { o.MaxPayload = 8 << 20 })
	nc := srv.Conn(t)
	n := 0
	return func(t *testing.T) objstore.Store {
		n++
		s, err := natsobj.Open(t.Context(), nc, natsobj.Config{Bucket: fmt.Sprintf("objs-%d", n)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	objstoretest.Run(t, stores(t), objstoretest.Options{})
}

func TestTransport(t *testing.T) {
	objstoretest.RunTransport(t, stores(t), objstoretest.Options{})
}

func TestPointerBucket(t *testing.T) {
	if got := natsobj.PointerBucket("artifacts"); got != "artifacts-pointers" {
		t.Fatalf("PointerBucket = %q", got)
	}
}

// TestSlowObjectRead reads a multi-chunk object slower than the client
// library's request timeout: the read must be bounded by the object's size,
// not by that timeout.
func TestSlowObjectRead(t *testing.T) {
	srv := natstest.Start(t)
	nc := srv.Conn(t)
	writer, err := natsobj.Open(t.Context(), nc, natsobj.Config{Bucket: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	data := objstoretest.Random(5, 1<<20)
	if err := writer.Put(t.Context(), "big.tar", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// The reader's client library times requests out after 200 ms.
	s, err := natsobj.Open(t.Context(), nc, natsobj.Config{Bucket: "slow", JetStreamTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Get(t.Context(), "big.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []byte
	buf := make([]byte, 256<<10)
	for i := 0; ; i++ {
		n, err := rc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		if i == 0 {
			time.Sleep(400 * time.Millisecond) // a slow consumer, past the library's timeout
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, different from the %d written", len(got), len(data))
	}
}
