package memstore_test

import (
	"testing"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/memstore"
	"github.com/slipstream-kv/slipstream/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) slipstream.Store {
		s, err := memstore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
