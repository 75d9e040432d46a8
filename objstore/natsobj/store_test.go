package natsobj_test

import (
	"fmt"
	"testing"

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
