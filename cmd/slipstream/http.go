package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/slipstream-kv/slipstream"
)

// RevisionHeader carries an entry's revision on GET /v1/kv/{key}.
const RevisionHeader = "Slipstream-Revision"

// statusDoc is the body of GET /v1/status.
type statusDoc struct {
	Bucket     string   `json:"bucket"`
	Fold       string   `json:"fold"`
	Backend    string   `json:"backend"`
	Scope      []string `json:"scope"`
	State      string   `json:"state"`
	Ready      bool     `json:"ready"`
	Cursor     uint64   `json:"cursor"`
	Keys       int      `json:"keys"`
	ServerHead uint64   `json:"server_head"`
	// CaughtUpTo is what lag is measured from: the cursor, or higher when
	// the records between the cursor and the head the watch started at
	// were removed before they could be delivered. Never persisted.
	CaughtUpTo uint64 `json:"caught_up_to"`
	Lag        uint64 `json:"lag"`
	Pending    uint64 `json:"pending"`
	Resyncs    uint64 `json:"resyncs"`
	Restarts   uint64 `json:"restarts"`
	Connected  bool   `json:"nats_connected"`
	// DisconnectedSince is when the current NATS outage began.
	DisconnectedSince *time.Time `json:"nats_disconnected_since,omitempty"`
	// Disconnects counts the NATS outages since the mirror started.
	Disconnects uint64 `json:"nats_disconnects"`
	LastError   string `json:"last_error,omitempty"`
	// Verifying says why the fold is not bound to the bucket yet (state
	// verifying, not ready); empty once it is (binding.go).
	Verifying string `json:"verifying,omitempty"`
	auditStatus
	// Fleet is set with -export-to or -bootstrap-from (fleet.go).
	Fleet *fleetStatus `json:"fleet,omitempty"`
}

// httpAPI serves a fold and its mirror's state over HTTP, read-only.
type httpAPI struct {
	store   slipstream.Store
	status  func(ctx context.Context) (statusDoc, error)
	ready   func() error // nil when ready, else the reason
	metrics http.Handler // nil: 404
	// artifacts serves GET /v1/artifact (artifact_http.go); nil: 404.
	artifacts http.Handler
	log       *slog.Logger
	// token, when set, is the bearer token every route but /healthz and
	// /readyz requires.
	token []byte
}

// openPaths are served without the bearer token: probes must work
// without credentials.
var openPaths = map[string]bool{"/healthz": true, "/readyz": true}

// keyPath is the path prefix of single-key reads.
const keyPath = "/v1/kv/"

// handler returns the API's routes.
//
// Key reads are routed before the ServeMux: NATS keys may hold "//", "/./"
// and "/../" (both '/' and '.' are key characters), and the mux would clean
// such a path and redirect it to a different key. The key is the rest of
// the escaped path, unescaped, so /v1/kv/a//b and /v1/kv/a%2F%2Fb both
// read the key "a//b".
func (a *httpAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/kv", a.listKeys)
	mux.HandleFunc("GET /v1/status", a.getStatus)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if a.metrics != nil {
		mux.Handle("GET /metrics", a.metrics)
	}
	if a.artifacts != nil {
		mux.Handle("GET "+artifactPath, a.artifacts)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.token != nil && !openPaths[r.URL.Path] && !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="slipstream"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), keyPath)
		if !ok {
			mux.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		key, err := url.PathUnescape(rest)
		if err != nil {
			http.Error(w, "bad key escape: "+err.Error(), http.StatusBadRequest)
			return
		}
		a.getKey(w, r, key)
	})
}

// authorized reports whether r carries the bearer token, compared in
// constant time.
func (a *httpAPI) authorized(r *http.Request) bool {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), a.token) == 1
}

// readTokenFile reads a bearer token: the file's content without
// surrounding whitespace, which must be non-empty, printable ASCII.
func readTokenFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read http token file: %w", err)
	}
	tok := bytes.TrimSpace(b)
	if len(tok) == 0 {
		return nil, fmt.Errorf("http token file %s is empty", path)
	}
	for _, c := range tok {
		if c <= ' ' || c > '~' {
			return nil, fmt.Errorf("http token file %s: the token must be one word of printable ASCII", path)
		}
	}
	return tok, nil
}

// loadTLS loads the HTTP server's certificate and key, so that a bad pair
// fails at startup rather than at the first handshake.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load http TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func (a *httpAPI) getKey(w http.ResponseWriter, r *http.Request, key string) {
	if key == "" {
		http.Error(w, "missing key", http.StatusBadRequest)
		return
	}
	e, ok, err := a.store.Get(key)
	if err != nil {
		a.fail(w, r, fmt.Errorf("get %q: %w", key, err))
		return
	}
	if !ok {
		http.Error(w, "key not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(e.Value)))
	h.Set(RevisionHeader, strconv.FormatUint(revision(e.Version), 10))
	w.Write(e.Value)
}

// listKeys streams the entries under ?prefix= as JSON lines, in key order.
// An error after the first line can only cut the stream short.
func (a *httpAPI) listKeys(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Query().Get("prefix")
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 32<<10)
	wrote := false
	err := a.store.ForEachInRange(prefix, func(e slipstream.Entry) error {
		if err := r.Context().Err(); err != nil {
			return err
		}
		wrote = true
		b, err := json.Marshal(newRangeLine(e))
		if err != nil {
			return err
		}
		bw.Write(b)
		return bw.WriteByte('\n')
	})
	if err != nil {
		if !wrote {
			a.fail(w, r, fmt.Errorf("range %q: %w", prefix, err))
			return
		}
		a.log.Warn("range stream cut short", "prefix", prefix, "err", err)
		return
	}
	bw.Flush()
}

func (a *httpAPI) getStatus(w http.ResponseWriter, r *http.Request) {
	st, err := a.status(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st)
}

func (a *httpAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("http request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// serveHTTP serves h on ln until ctx is done, then shuts down gracefully
// (in-flight requests get shutdownTimeout). A non-nil tlsCfg serves HTTPS.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, tlsCfg *tls.Config, log *slog.Logger) error {
	const shutdownTimeout = 5 * time.Second
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsCfg,
	}
	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("shut down http: %w", err)
	}
	return nil
}
