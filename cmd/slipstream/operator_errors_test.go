package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/natskv"
)

// TestNATSURLScheme: a -nats URL with a scheme nats.go cannot dial (it
// would dial http:// as plain NATS) is a usage error, exit 2, for every
// command that connects; the schemes NATS speaks and bare HOST:PORT pass.
func TestNATSURLScheme(t *testing.T) {
	binary(t)
	fold := filepath.Join(t.TempDir(), "f") // never created: the URL is refused first
	for _, args := range [][]string{
		{"kv", "get", "-bucket", "b", "k"},
		{"mirror", "-bucket", "b", "-fold", fold},
		{"audit", "-bucket", "b", "-fold", fold},
		{"fetch", "-from", "nats-object://arts/p", "-key", "k", "-peek"},
	} {
		for _, bad := range []string{"http://127.0.0.1:8080", "https://h:443", "nats://h:4222,http://h:8080"} {
			_, stderr, code := runBin(t, "", append(args, "-nats", bad)...)
			if code != 2 || !strings.Contains(stderr, "is not one NATS speaks") {
				t.Errorf("%v -nats %s: exit %d, stderr %q; want a usage error (exit 2) naming the scheme", args, bad, code, stderr)
			}
			if _, err := os.Stat(fold); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%v -nats %s: the fold was created before the URL was refused (%v)", args, bad, err)
			}
		}
	}
	for _, good := range []string{"nats://h:4222", "tls://h:4222", "ws://h:8080", "wss://h:443", "h:4222", "nats://a:1, tls://b:2", "NATS://h:4222"} {
		if err := checkNATSURL(good); err != nil {
			t.Errorf("checkNATSURL(%q) = %v, want nil", good, err)
		}
	}
}

// TestExportFromNonHTTP points export -from at a NATS client port: the
// error says the address is not a slipstream HTTP endpoint, without
// echoing the server's INFO JSON.
func TestExportFromNonHTTP(t *testing.T) {
	binary(t)
	srv := natstest.Start(t)
	from := "http://" + strings.TrimPrefix(srv.URL(), "nats://")
	_, stderr, code := runBin(t, "", "export", "-from", from, "-out", filepath.Join(t.TempDir(), "art"))
	if code != 1 || !strings.Contains(stderr, from+" is not a slipstream HTTP endpoint") || !strings.Contains(stderr, "NATS server") ||
		strings.Contains(stderr, "server_id") || strings.Contains(stderr, "INFO") {
		t.Fatalf("export -from a NATS port: exit %d, stderr %q; want exit 1 and 'not a slipstream HTTP endpoint'", code, stderr)
	}
}

// fakeNATS accepts NATS connections and answers PING, but never answers a
// JetStream API request: a mirror using it stays in its bucket open. It
// reports the first JetStream request on jsRequest.
func fakeNATS(t *testing.T) (url string, jsRequest <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	js := make(chan struct{})
	var once sync.Once
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.Write([]byte(`INFO {"server_id":"fake","version":"2.12.0","proto":1,"headers":true,"max_payload":1048576}` + "\r\n"))
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					line := sc.Text()
					switch {
					case strings.HasPrefix(line, "PING"):
						conn.Write([]byte("PONG\r\n"))
					case strings.HasPrefix(line, "PUB $JS.API.") || strings.HasPrefix(line, "HPUB $JS.API."):
						once.Do(func() { close(js) })
					}
				}
			}()
		}
	}()
	return "nats://" + ln.Addr().String(), js
}

// TestMirror_SIGTERMWhileOpeningBucket sends SIGTERM while the mirror waits
// for the server to open its bucket: a shutdown like any other (exit 0,
// the final cursor on stdout), not "context canceled".
func TestMirror_SIGTERMWhileOpeningBucket(t *testing.T) {
	binary(t)
	url, jsRequest := fakeNATS(t)
	p := startProc(t, "mirror", "-bucket", "b", "-create-bucket", "-fold", filepath.Join(t.TempDir(), "f"), "-nats", url)
	select {
	case <-jsRequest:
	case <-time.After(30 * time.Second):
		t.Fatalf("the mirror sent no JetStream request; stderr:\n%s", p.stderr.String())
	}
	if cur := p.stop(t); cur != 0 {
		t.Fatalf("final cursor %d, want 0", cur)
	}
	if s := p.stderr.String(); strings.Contains(s, "context canceled") {
		t.Fatalf("stderr mentions the cancellation:\n%s", s)
	}
}

// stallingProxy forwards NATS connections to the server at url, until a
// client publishes to a JetStream message-get subject (a read of one
// record): that request and all after it are held back, and got is closed.
func stallingProxy(t *testing.T, url string) (proxyURL string, got <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	addr := strings.TrimPrefix(url, "nats://")
	stalled := make(chan struct{})
	var once sync.Once
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", addr)
			if err != nil {
				client.Close()
				return
			}
			mu.Lock()
			conns = append(conns, client, server)
			mu.Unlock()
			go io.Copy(client, server)
			go func() {
				r := bufio.NewReader(client)
				for {
					line, err := r.ReadString('\n')
					if strings.Contains(line, ".MSG.GET.") || strings.Contains(line, ".DIRECT.GET.") {
						once.Do(func() { close(stalled) })
						io.Copy(io.Discard, r) // hold back this request and the rest
						return
					}
					if _, werr := server.Write([]byte(line)); werr != nil || err != nil {
						return
					}
				}
			}()
		}
	}()
	return "nats://" + ln.Addr().String(), stalled
}

// TestMirror_SIGTERMWhileVerifyingUnboundFold sends SIGTERM while the mirror
// compares a fold without a binding with the bucket (bindFold, a startup
// step like opening the bucket): a shutdown like any other, exit 0 and the
// fold's cursor on stdout.
func TestMirror_SIGTERMWhileVerifyingUnboundFold(t *testing.T) {
	binary(t)
	srv := natstest.Start(t)
	b := openBucket(t, srv.URL(), natskv.Config{Bucket: "legacy"})
	for i := range 3 {
		put(t, b, fmt.Sprintf("k.%d", i), "v")
	}
	fold := filepath.Join(t.TempDir(), "fold")
	mirrorUntilSynced(t, srv.URL(), b, fold)
	if err := os.Remove(filepath.Join(fold, bindingFile)); err != nil {
		t.Fatal(err)
	}
	url, stalled := stallingProxy(t, srv.URL())
	p := startProc(t, "mirror", "-bucket", "legacy", "-fold", fold, "-nats", url)
	select {
	case <-stalled:
	case <-time.After(30 * time.Second):
		t.Fatalf("the mirror read no record of the bucket; stderr:\n%s", p.stderr.String())
	}
	if cur, want := p.stop(t), lastSeq(t, b); cur != want {
		t.Fatalf("final cursor %d, want the fold's %d", cur, want)
	}
}
