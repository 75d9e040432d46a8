package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/pebblestore"
)

// Backend names accepted by -backend and reported by stat and /v1/status.
const (
	backendAppLog = "applog"
	backendPebble = "pebble"
)

var (
	// errFoldHeld is returned by offline commands on a fold that a running
	// mirror holds and whose backend cannot be read safely beside it.
	errFoldHeld = errors.New("fold is held by a running mirror (use --http)")
	// errNoFold is returned by commands that need an existing fold.
	errNoFold = errors.New("no fold")
	// errBackendMismatch is returned when -backend names another backend
	// than the fold's.
	errBackendMismatch = errors.New("fold backend mismatch")
)

// store is what the command needs of a fold beyond slipstream.Store; both
// backends have it.
type store interface {
	slipstream.Store
	// Len returns the number of live keys.
	Len() (int, error)
	// Size returns the fold's size on disk, in bytes.
	Size() (int64, error)
}

var (
	_ store = (*applog.Store)(nil)
	_ store = (*pebblestore.Store)(nil)
)

// fold is an open fold and how it was opened.
type fold struct {
	store
	Backend  string
	Dir      string
	ReadOnly bool // opened beside a running mirror (applog only)
}

// Keys returns the number of live keys.
func (f *fold) Keys() (int, error) { return f.Len() }

// detectBackend names the backend whose files dir holds: "" when dir is
// missing or empty, an error when it holds something else.
func detectBackend(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read fold directory: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == applog.FileName:
			return backendAppLog, nil
		case name == "CURRENT", strings.HasPrefix(name, "MANIFEST-"), strings.HasPrefix(name, "OPTIONS-"),
			strings.HasPrefix(name, "marker.manifest"):
			return backendPebble, nil
		}
	}
	for _, e := range ents {
		// Left alone, a lock file or a binding (binding.go) holds no fold.
		if n := e.Name(); n != "LOCK" && n != bindingFile && !strings.HasPrefix(n, "."+bindingFile+".tmp-") {
			return "", fmt.Errorf("%s holds neither an applog nor a pebble fold (found %q)", dir, e.Name())
		}
	}
	return "", nil
}

// openFold opens (creating if needed) the fold at dir for a mirror. An
// existing fold keeps its backend; backend, if not empty, must match it.
func openFold(dir, backend string, logger *slog.Logger) (*fold, error) {
	found, err := detectBackend(dir)
	if err != nil {
		return nil, err
	}
	switch {
	case found != "" && backend != "" && found != backend:
		return nil, fmt.Errorf("%w: fold %s uses the %s backend, not %s (-backend applies only to a new fold)", errBackendMismatch, dir, found, backend)
	case found != "":
		backend = found
	case backend == "":
		backend = backendAppLog
	}
	f, err := openBackend(dir, backend, logger)
	if errors.Is(err, slipstream.ErrLocked) {
		return nil, fmt.Errorf("fold %s is held by another process (a running mirror?): %w", dir, err)
	}
	return f, err
}

func openBackend(dir, backend string, logger *slog.Logger) (*fold, error) {
	switch backend {
	case backendAppLog:
		st, err := applog.Open(dir, &applog.Options{Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("open applog fold %s: %w", dir, err)
		}
		return &fold{store: st, Backend: backendAppLog, Dir: dir}, nil
	case backendPebble:
		st, err := pebblestore.Open(dir, &pebblestore.Options{Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("open pebble fold %s: %w", dir, err)
		}
		return &fold{store: st, Backend: backendPebble, Dir: dir}, nil
	default:
		return nil, fmt.Errorf("unknown backend %q", backend)
	}
}

// openOffline builds the logger of an offline query (get, range, stat) and
// opens its fold.
func (m *Main) openOffline(cmd, dir string, lf logFlags) (*fold, error) {
	logger, err := m.logger(cmd, lf)
	if err != nil {
		return nil, err
	}
	return openFoldOffline(dir, logger, m.notice)
}

// openFoldOffline opens an existing fold for the offline queries. A fold a
// running mirror holds is read through applog's read-only view (noted on
// notice), or refused with errFoldHeld for pebble.
func openFoldOffline(dir string, logger *slog.Logger, notice func(string)) (*fold, error) {
	backend, err := detectBackend(dir)
	if err != nil {
		return nil, err
	}
	if backend == "" {
		return nil, fmt.Errorf("%w at %s", errNoFold, dir)
	}
	f, err := openBackend(dir, backend, logger)
	if !errors.Is(err, slipstream.ErrLocked) {
		return f, err
	}
	if backend != backendAppLog {
		return nil, fmt.Errorf("%s: %w", dir, errFoldHeld)
	}
	st, err := applog.OpenReadOnly(dir)
	if err != nil {
		return nil, fmt.Errorf("open applog fold %s read-only: %w", dir, err)
	}
	notice("fold is held by a running mirror; reading it read-only (a snapshot as of now)")
	return &fold{store: st, Backend: backendAppLog, Dir: dir, ReadOnly: true}, nil
}

// revision returns a NATS revision from a version token (0 when it holds
// none).
func revision(v slipstream.Version) uint64 {
	r, _ := v.Uint64()
	return r
}

// rangeLine is one JSON line of `slipstream range` and GET /v1/kv?prefix=.
// Value is base64 in JSON.
type rangeLine struct {
	Key      string `json:"key"`
	Value    []byte `json:"value"`
	Revision uint64 `json:"revision"`
}

func newRangeLine(e slipstream.Entry) rangeLine {
	v := e.Value
	if v == nil {
		v = []byte{}
	}
	return rangeLine{Key: e.Key, Value: v, Revision: revision(e.Version)}
}
