package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
)

// apiRoutes are every route the API serves.
var apiRoutes = []string{"/v1/kv/a.2", "/v1/kv", "/v1/kv?prefix=a.", "/v1/status", "/healthz", "/readyz", "/metrics"}

func do(t *testing.T, c *http.Client, method, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestHTTPReadOnly: no route accepts a write method, and the fold is
// unchanged after trying them all.
func TestHTTPReadOnly(t *testing.T) {
	srv, ready := newTestAPI(t, backendAppLog)
	ready.Store(true)
	_, before := get(t, srv.URL+"/v1/kv")
	for _, route := range append(apiRoutes, "/v1/kv/new.key", "/v1/kv/") {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			resp, body := do(t, srv.Client(), m, srv.URL+route, "")
			if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s: %s %q, want 405", m, route, resp.Status, body)
			}
		}
	}
	if _, after := get(t, srv.URL+"/v1/kv"); after != before {
		t.Fatalf("the fold changed:\n%s\nwant\n%s", after, before)
	}
}

func TestHTTPBearerToken(t *testing.T) {
	api, ready := newAPI(t, backendAppLog, sample...)
	ready.Store(true)
	api.token = []byte("s3cret-t0ken")
	srv := httptest.NewServer(api.handler())
	defer srv.Close()
	c := srv.Client()
	for _, route := range apiRoutes {
		open := route == "/healthz" || route == "/readyz"
		for _, auth := range []string{"", "Bearer wrong", "Bearer s3cret-t0ke", "Basic s3cret-t0ken", "s3cret-t0ken", "Bearer s3cret-t0kenX"} {
			resp, _ := do(t, c, http.MethodGet, srv.URL+route, auth)
			switch {
			case open && resp.StatusCode != 200:
				t.Errorf("GET %s with %q: %s; probes stay open", route, auth, resp.Status)
			case !open && resp.StatusCode != http.StatusUnauthorized:
				t.Errorf("GET %s with %q: %s, want 401", route, auth, resp.Status)
			case !open && resp.Header.Get("WWW-Authenticate") != `Bearer realm="slipstream"`:
				t.Errorf("GET %s: WWW-Authenticate %q", route, resp.Header.Get("WWW-Authenticate"))
			}
		}
		for _, auth := range []string{"Bearer s3cret-t0ken", "bearer s3cret-t0ken"} {
			if resp, body := do(t, c, http.MethodGet, srv.URL+route, auth); resp.StatusCode != 200 {
				t.Errorf("GET %s with the token: %s %q", route, resp.Status, body)
			}
		}
	}
	// Path tricks do not reach a protected route without the token.
	for _, path := range []string{"/healthz/../v1/status", "/readyz/../v1/kv/a.2", "//v1/status", "/v1/kv/%2e%2e/status"} {
		resp, body := do(t, c, http.MethodGet, srv.URL+path, "")
		if resp.StatusCode == 200 {
			t.Errorf("GET %s without the token: %s %q", path, resp.Status, body)
		}
	}
	// The write refusal comes after authentication, and still holds with it.
	if resp, _ := do(t, c, http.MethodPut, srv.URL+"/v1/kv/a.2", "Bearer s3cret-t0ken"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT with the token: %s, want 405", resp.Status)
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "tok")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := readTokenFile(write("  abc.DEF-123_~\n")); err != nil || string(tok) != "abc.DEF-123_~" {
		t.Fatalf("readTokenFile = %q, %v", tok, err)
	}
	for _, bad := range []string{"", " \n\t", "two words", "caf\xc3\xa9"} {
		if _, err := readTokenFile(write(bad)); err == nil {
			t.Errorf("readTokenFile(%q) accepted", bad)
		}
	}
	if _, err := readTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("readTokenFile(missing) accepted")
	}
}

// tlsClient trusts only the PKI's CA.
func tlsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("bad CA PEM")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
}

func TestHTTPServeTLS(t *testing.T) {
	pki := natstest.NewPKI(t)
	cfg, err := loadTLS(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadTLS(pki.ServerCert, pki.ClientKey); err == nil {
		t.Fatal("loadTLS accepted a key that does not match the certificate")
	}
	api, ready := newAPI(t, backendAppLog, sample...)
	ready.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, ln, api.handler(), cfg, discardLogger()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveHTTP: %v", err)
		}
	}()
	base := "https://" + ln.Addr().String()
	resp, body := do(t, tlsClient(t, pki.CA), http.MethodGet, base+"/v1/kv/a.2", "")
	if resp.StatusCode != 200 || body != "two" || resp.TLS == nil {
		t.Fatalf("GET over TLS: %s %q", resp.Status, body)
	}
	// Plain HTTP to the TLS port is not served.
	resp, _ = do(t, &http.Client{Timeout: 10 * time.Second}, http.MethodGet, "http://"+ln.Addr().String()+"/v1/kv/a.2", "")
	if resp.StatusCode == 200 {
		t.Fatal("plain HTTP served the fold on the TLS port")
	}
	// A client that does not trust the CA refuses the server.
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("a client without the CA accepted the server's certificate")
	}
}

// TestMirrorHTTPTLSAndToken runs mirror with all three HTTP flags.
func TestMirrorHTTPTLSAndToken(t *testing.T) {
	pki := natstest.NewPKI(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("mirror-t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mp := startInProcess(t, "-bucket", "sec", "-fold", filepath.Join(dir, "fold"), "-listen", "127.0.0.1:0",
		"-http", "127.0.0.1:0", "-http-tls-cert", pki.ServerCert, "-http-tls-key", pki.ServerKey, "-http-token-file", tokenFile)
	base := strings.Replace(mp.httpBase(t), "http://", "https://", 1)
	c := tlsClient(t, pki.CA)
	poll.Until(t, 30*time.Second, func() (bool, string) {
		resp, body := do(t, c, http.MethodGet, base+"/readyz", "")
		return resp.StatusCode == 200, resp.Status + " " + body
	})
	if resp, _ := do(t, c, http.MethodGet, base+"/v1/status", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status without the token: %s", resp.Status)
	}
	if resp, body := do(t, c, http.MethodGet, base+"/v1/status", "Bearer mirror-t0ken"); resp.StatusCode != 200 || !strings.Contains(body, `"bucket": "sec"`) {
		t.Fatalf("status with the token: %s %q", resp.Status, body)
	}
	mp.stop(t)
}

func TestMirrorHTTPFlagUsage(t *testing.T) {
	fold := filepath.Join(t.TempDir(), "f")
	for _, args := range [][]string{
		{"-http", "127.0.0.1:0", "-http-tls-cert", "c.pem"},
		{"-http", "127.0.0.1:0", "-http-tls-key", "k.pem"},
		{"-http-token-file", "tok"},
		{"-http-tls-cert", "c.pem", "-http-tls-key", "k.pem"},
	} {
		_, _, err := runMain(t, "", append([]string{"mirror", "-bucket", "b", "-fold", fold}, args...)...)
		if exitCode(err) != 2 {
			t.Errorf("mirror %v = %v, want a usage error", args, err)
		}
	}
}
