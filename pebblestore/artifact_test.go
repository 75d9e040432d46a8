package pebblestore_test

import (
	"testing"

	"github.com/slipstream-kv/slipstream/pebblestore"
	"github.com/slipstream-kv/slipstream/storetest"
)

func TestArtifactConformance(t *testing.T) {
	storetest.RunArtifact(t, opener(pebblestore.Options{}), pebblestore.ArtifactBackend{Logger: quiet})
}
