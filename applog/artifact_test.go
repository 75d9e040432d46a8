package applog_test

import (
	"testing"

	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/storetest"
)

func TestArtifactConformance(t *testing.T) {
	storetest.RunArtifact(t, openStore, applog.ArtifactBackend{})
}
