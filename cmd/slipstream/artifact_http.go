package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
)

// artifactPath serves a fresh artifact of the running mirror's fold.
const artifactPath = "/v1/artifact"

// CursorHeader carries the artifact's cursor on GET /v1/artifact.
const CursorHeader = "Slipstream-Cursor"

// scratchPrefix names the temporary directory an artifact request exports
// into, beside the fold.
const scratchPrefix = ".slipstream-http-artifact-"

// artifactHandler answers GET /v1/artifact: it exports the fold through the
// running follower (flush first, between batches) into a temporary
// directory beside the fold, streams it as a tar, and removes the directory
// on every path.
type artifactHandler struct {
	// export takes an artifact through the running follower into dir.
	export  func(ctx context.Context, dir string) (*artifact.Manifest, error)
	scratch string // directory for the temporary artifact: the fold's parent
	log     *slog.Logger
}

func (h *artifactHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tmp, err := os.MkdirTemp(h.scratch, scratchPrefix+"*")
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, fmt.Errorf("create scratch directory: %w", err))
		return
	}
	defer func() {
		if err := os.RemoveAll(tmp); err != nil {
			h.log.Error("remove artifact scratch directory", "dir", tmp, "err", err)
		}
	}()
	art := filepath.Join(tmp, "artifact")
	// Not cancelled by a client that goes away: once the loop exports into
	// tmp, the export must end before tmp can be removed.
	m, err := h.export(context.WithoutCancel(r.Context()), art)
	switch {
	case errors.Is(err, slipstream.ErrNotRunning) || errors.Is(err, errNoFollower):
		h.fail(w, r, http.StatusServiceUnavailable, fmt.Errorf("the mirror is restarting its follower; retry: %w", err))
		return
	case err != nil:
		h.fail(w, r, http.StatusInternalServerError, fmt.Errorf("export: %w", err))
		return
	}
	size, err := artifact.TarSize(art)
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/x-tar")
	hd.Set("Content-Length", strconv.FormatInt(size, 10))
	hd.Set("Content-Disposition", `attachment; filename="slipstream-artifact.tar"`)
	hd.Set(CursorHeader, strconv.FormatUint(m.Cursor.Rank(), 10))
	if r.Method == http.MethodHead {
		return
	}
	if _, err := artifact.WriteTar(w, art); err != nil {
		// Headers are gone: the cut stream is the client's signal.
		h.log.Warn("artifact stream cut short", "err", err)
		return
	}
	h.log.Info("artifact served", slipstream.LogKeyCursor, m.Cursor.String(), "bytes", size)
}

func (h *artifactHandler) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	h.log.Error("http request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, err.Error(), code)
}

// errNoFollower is returned while the mirror has no follower running.
var errNoFollower = errors.New("no follower running")
