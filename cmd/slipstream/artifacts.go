package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/pebblestore"
)

// artifactBackends are the backends whose artifacts the command verifies
// and imports.
func artifactBackends(logger *slog.Logger) []artifact.Backend {
	return []artifact.Backend{applog.ArtifactBackend{}, pebblestore.ArtifactBackend{Logger: logger}}
}

// artifactSummary is what export, import and verify print about an
// artifact.
type artifactSummary struct {
	Artifact string `json:"artifact"`
	Backend  string `json:"backend"`
	Version  string `json:"backend_version"`
	Cursor   uint64 `json:"cursor"`
	Files    int    `json:"files"`
	Bytes    uint64 `json:"bytes"`
	Fold     string `json:"fold,omitempty"`
}

func summarize(dir string, m *artifact.Manifest) artifactSummary {
	return artifactSummary{
		Artifact: dir,
		Backend:  m.Backend,
		Version:  m.BackendVersion,
		Cursor:   m.Cursor.Rank(),
		Files:    len(m.Files),
		Bytes:    m.Size(),
	}
}

// print writes s as aligned lines, or one JSON object.
func (s artifactSummary) print(w io.Writer, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "artifact:\t%s\n", s.Artifact)
	if s.Fold != "" {
		fmt.Fprintf(tw, "fold:\t%s\n", s.Fold)
	}
	fmt.Fprintf(tw, "backend:\t%s (format %s)\n", s.Backend, s.Version)
	fmt.Fprintf(tw, "cursor:\t%d\n", s.Cursor)
	fmt.Fprintf(tw, "files:\t%d\n", s.Files)
	fmt.Fprintf(tw, "bytes:\t%d\n", s.Bytes)
	return tw.Flush()
}

// verifyArtifact verifies the artifact at dir with every known backend.
func verifyArtifact(dir string, logger *slog.Logger) (*artifact.Manifest, error) {
	m, err := artifact.Verify(dir, artifactBackends(logger)...)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	return m, nil
}
