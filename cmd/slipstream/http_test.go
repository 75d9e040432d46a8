package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/slipstream-kv/slipstream"
)

func newTestAPI(t *testing.T, backend string) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	api, ready := newAPI(t, backend, append(sample, "dir/with/slashes", "s", "x.y.z", "dots")...)
	srv := httptest.NewServer(api.handler())
	t.Cleanup(srv.Close)
	return srv, ready
}

// newAPI serves a fold of backend holding kv (see makeFold).
func newAPI(t testing.TB, backend string, kv ...string) (*httpAPI, *atomic.Bool) {
	t.Helper()
	dir, _ := makeFold(t, backend, kv...)
	f, err := openFold(dir, "", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
	var ready atomic.Bool
	api := &httpAPI{
		store: f,
		status: func(ctx context.Context) (statusDoc, error) {
			return statusDoc{Bucket: "b", Backend: f.Backend, State: stateSynced, Cursor: f.Cursor().Rank()}, nil
		},
		ready: func() error {
			if !ready.Load() {
				return errCatchingUp
			}
			return nil
		},
		metrics: newMetricsHandler(tr),
		log:     discardLogger(),
	}
	return api, &ready
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHTTP(t *testing.T) {
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			srv, ready := newTestAPI(t, backend)

			resp, body := get(t, srv.URL+"/v1/kv/a.2")
			if resp.StatusCode != 200 || body != "two" || resp.Header.Get(RevisionHeader) != "2" ||
				resp.Header.Get("Content-Type") != "application/octet-stream" {
				t.Errorf("GET a.2: %s %q rev %q", resp.Status, body, resp.Header.Get(RevisionHeader))
			}
			resp, body = get(t, srv.URL+"/v1/kv/dir/with/slashes")
			if resp.StatusCode != 200 || body != "s" {
				t.Errorf("GET a key with slashes: %s %q", resp.Status, body)
			}
			resp, body = get(t, srv.URL+"/v1/kv/empty")
			if resp.StatusCode != 200 || body != "" || resp.Header.Get(RevisionHeader) != "4" {
				t.Errorf("GET an empty value: %s %q", resp.Status, body)
			}
			for _, k := range []string{"gone", "missing"} {
				if resp, _ := get(t, srv.URL+"/v1/kv/"+k); resp.StatusCode != 404 {
					t.Errorf("GET %s: %s, want 404", k, resp.Status)
				}
			}
			if resp, _ := http.Post(srv.URL+"/v1/kv/a.1", "text/plain", strings.NewReader("x")); resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("POST: %s, want 405", resp.Status)
			}

			resp, body = get(t, srv.URL+"/v1/kv?prefix=a.")
			lines := parseLines(t, strings.NewReader(body))
			if resp.Header.Get("Content-Type") != "application/x-ndjson" || len(lines) != 2 ||
				lines[0].Key != "a.1" || lines[0].Revision != 1 || string(lines[0].Value) != "one" || lines[1].Key != "a.2" {
				t.Errorf("GET ?prefix=a.: %s", body)
			}
			_, body = get(t, srv.URL+"/v1/kv")
			var keys []string
			for _, l := range parseLines(t, strings.NewReader(body)) {
				keys = append(keys, l.Key)
			}
			if got := strings.Join(keys, ","); got != "a.1,a.2,b.1,dir/with/slashes,empty,x.y.z" {
				t.Errorf("GET /v1/kv keys = %s", got)
			}

			resp, body = get(t, srv.URL+"/v1/status")
			var st statusDoc
			if err := json.Unmarshal([]byte(body), &st); err != nil || resp.StatusCode != 200 || st.Backend != backend || st.Cursor == 0 {
				t.Errorf("GET /v1/status: %s %s (%v)", resp.Status, body, err)
			}

			if resp, body := get(t, srv.URL+"/healthz"); resp.StatusCode != 200 {
				t.Errorf("healthz: %s %s", resp.Status, body)
			}
			if resp, _ := get(t, srv.URL+"/readyz"); resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("readyz before catching up: %s, want 503", resp.Status)
			}
			ready.Store(true)
			if resp, _ := get(t, srv.URL+"/readyz"); resp.StatusCode != 200 {
				t.Errorf("readyz after catching up: %s", resp.Status)
			}

			_, body = get(t, srv.URL+"/metrics")
			for _, name := range []string{
				"slipstream_applied_cursor", "slipstream_server_head", "slipstream_lag_revisions",
				"slipstream_flush_batch_updates_bucket", "slipstream_flush_duration_seconds_bucket",
				"slipstream_store_failures_total", "slipstream_resyncs_total", "go_goroutines",
			} {
				if !strings.Contains(body, name) {
					t.Errorf("metrics lack %s", name)
				}
			}
		})
	}
}

// A store error is a 500, not a 404 or an empty listing.
func TestHTTP_StoreErrors(t *testing.T) {
	dir, _ := makeFold(t, backendAppLog, sample...)
	f, err := openFold(dir, "", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // every read now fails with ErrClosed
	api := &httpAPI{store: f, status: func(context.Context) (statusDoc, error) { return statusDoc{}, errors.New("boom") },
		ready: func() error { return errCatchingUp }, log: discardLogger()}
	s := httptest.NewServer(api.handler())
	defer s.Close()
	for _, path := range []string{"/v1/kv/a.1", "/v1/kv?prefix=a.", "/v1/status"} {
		if resp, body := get(t, s.URL+path); resp.StatusCode != 500 {
			t.Errorf("GET %s on a closed fold: %s %q, want 500", path, resp.Status, body)
		}
	}
	if resp, _ := get(t, s.URL+"/metrics"); resp.StatusCode != 404 {
		t.Errorf("metrics without a handler: %s, want 404", resp.Status)
	}
}
