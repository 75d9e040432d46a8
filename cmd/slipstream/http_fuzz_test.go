package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

// natsKey is what NATS accepts as a KV key (nats.go's rule): the keys a
// fold can hold.
var natsKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func validNATSKey(k string) bool {
	return natsKey.MatchString(k) && !strings.HasPrefix(k, ".") && !strings.HasSuffix(k, ".")
}

// httpKeys reads testdata/http_keys.txt.
func httpKeys(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/http_keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			keys = append(keys, line)
		}
	}
	if err := sc.Err(); err != nil || len(keys) == 0 {
		t.Fatalf("testdata/http_keys.txt: %d keys, %v", len(keys), err)
	}
	return keys
}

// keyFold serves an applog fold holding every key of testdata/http_keys.txt
// that NATS accepts, with the value "v:"+key.
func keyFold(t testing.TB) (http.Handler, map[string]bool) {
	t.Helper()
	var kv []string
	stored := map[string]bool{}
	for _, k := range httpKeys(t) {
		if validNATSKey(k) {
			kv = append(kv, k, "v:"+k)
			stored[k] = true
		}
	}
	api, _ := newAPI(t, backendAppLog, kv...)
	return api.handler(), stored
}

// checkKeyRead asserts that GET of path reads exactly key: its value when
// the fold holds it, 404 otherwise, and never another key's value or a
// redirect to one.
func checkKeyRead(t *testing.T, h http.Handler, stored map[string]bool, key, path string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://fold"+path, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body := rec.Body.String()
	switch {
	case stored[key]:
		if rec.Code != http.StatusOK || body != "v:"+key {
			t.Fatalf("GET %s (key %q): %d %q, want 200 %q", path, key, rec.Code, body, "v:"+key)
		}
	case rec.Code != http.StatusNotFound:
		t.Fatalf("GET %s (absent key %q): %d %q, want 404", path, key, rec.Code, body)
	}
}

// Every stored key reads back by its raw path and by its escaped path,
// including keys a ServeMux would clean into other keys (a//b → a/b,
// x/../y → y).
func TestHTTPKeyPaths(t *testing.T) {
	h, stored := keyFold(t)
	for k := range stored {
		checkKeyRead(t, h, stored, k, keyPath+k)
		checkKeyRead(t, h, stored, k, keyPath+url.PathEscape(k))
	}
	checkKeyRead(t, h, stored, "a/./b", keyPath+"a/./b") // absent, though it cleans to a/b
}

// FuzzHTTPKey: for any key NATS accepts, GET /v1/kv/ + the key, raw or
// escaped, answers that key and nothing else; any other path below
// /v1/kv/ answers without a server error.
func FuzzHTTPKey(f *testing.F) {
	for _, k := range httpKeys(f) {
		f.Add(k)
	}
	h, stored := keyFold(f)
	f.Fuzz(func(t *testing.T, key string) {
		if !validNATSKey(key) {
			req, err := http.NewRequest(http.MethodGet, "http://fold"+keyPath+url.PathEscape(key), nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("GET of key %q: %d %q", key, rec.Code, rec.Body.String())
			}
			return
		}
		checkKeyRead(t, h, stored, key, keyPath+key)
		checkKeyRead(t, h, stored, key, keyPath+url.PathEscape(key))
	})
}
