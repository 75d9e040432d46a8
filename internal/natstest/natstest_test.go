package natstest_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
)

func TestStartRestartKeepsData(t *testing.T) {
	s := natstest.Start(t)
	nc := s.Conn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "restart"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	url := s.URL()
	s.Restart(t)
	if s.URL() != url {
		t.Fatalf("URL changed across restart: %s → %s", url, s.URL())
	}
	// The same client reconnects and sees the persisted value.
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, err := kv.Get(ctx, "a")
		if err == nil {
			if string(e.Value()) != "1" {
				t.Fatalf("value after restart = %q, want 1", e.Value())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("get after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Shutdown()
	s.Shutdown() // idempotent
	if s.NATS() != nil {
		t.Fatal("NATS() after Shutdown is not nil")
	}
}

func TestClusterR3Bucket(t *testing.T) {
	servers := natstest.StartCluster(t, 3)
	nc := natstest.Connect(t, natstest.ClusterURL(servers))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var kv jetstream.KeyValue
	deadline := time.Now().Add(20 * time.Second)
	for {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "r3", Replicas: 3})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create R3 bucket: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream is not R3 across the cluster: replicas=%d cluster=%+v", info.Config.Replicas, info.Cluster)
	}
}
