package file_test

import (
	"testing"

	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/file"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

func newStore(t *testing.T) objstore.Store {
	s, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	objstoretest.Run(t, newStore, objstoretest.Options{NoReplace: true})
}

func TestTransport(t *testing.T) {
	objstoretest.RunTransport(t, newStore, objstoretest.Options{NoReplace: true})
}
