package mem_test

import (
	"testing"

	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/mem"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

func newStore(t *testing.T) objstore.Store { return mem.New() }

func TestConformance(t *testing.T) {
	objstoretest.Run(t, newStore, objstoretest.Options{})
}

func TestConformanceNoReplace(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		s := mem.New()
		s.NoReplace = true
		return s
	}, objstoretest.Options{NoReplace: true})
}

func TestTransport(t *testing.T) {
	objstoretest.RunTransport(t, newStore, objstoretest.Options{})
}
