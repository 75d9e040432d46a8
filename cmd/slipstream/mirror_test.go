package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// inProcessMirror is `slipstream mirror` running in the test process (so the
// race detector sees it).
type inProcessMirror struct {
	stdout, stderr syncBuffer
	cancel         context.CancelFunc
	done           chan error
}

func startInProcess(t *testing.T, args ...string) *inProcessMirror {
	t.Helper()
	mp := &inProcessMirror{done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	mp.cancel = cancel
	m := &Main{Stdin: strings.NewReader(""), Stdout: &mp.stdout, Stderr: &mp.stderr}
	go func() { mp.done <- m.Run(ctx, append([]string{"mirror"}, args...)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-mp.done:
		case <-time.After(30 * time.Second):
			t.Errorf("mirror did not stop")
		}
	})
	return mp
}

var httpAddrRE = regexp.MustCompile(`msg="serving http" addr=(\S+)`)

func (mp *inProcessMirror) httpBase(t *testing.T) string {
	t.Helper()
	var base string
	poll.Until(t, 30*time.Second, func() (bool, string) {
		select {
		case err := <-mp.done:
			t.Fatalf("mirror exited early: %v\n%s", err, mp.stderr.String())
		default:
		}
		m := httpAddrRE.FindStringSubmatch(mp.stderr.String())
		if m == nil {
			return false, "no http address logged:\n" + mp.stderr.String()
		}
		base = "http://" + m[1]
		return true, ""
	})
	return base
}

// stop cancels the mirror (SIGINT) and returns its printed final cursor.
func (mp *inProcessMirror) stop(t *testing.T) uint64 {
	t.Helper()
	mp.cancel()
	select {
	case err := <-mp.done:
		mp.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("mirror: %v\n%s", err, mp.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mirror did not stop")
	}
	cur, err := strconv.ParseUint(strings.TrimSpace(mp.stdout.String()), 10, 64)
	if err != nil {
		t.Fatalf("final cursor: stdout %q: %v", mp.stdout.String(), err)
	}
	return cur
}

func openBucket(t *testing.T, url string, cfg natskv.Config) *natskv.Bucket {
	t.Helper()
	nc := natstest.Connect(t, url)
	b, err := natskv.Open(t.Context(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, b *natskv.Bucket, key, val string) uint64 {
	t.Helper()
	rev, err := b.Put(t.Context(), key, []byte(val))
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return rev
}

func TestMirror_InProcess(t *testing.T) {
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			srv := natstest.Start(t)
			b := openBucket(t, srv.URL(), natskv.Config{Bucket: "inproc"})
			for i := range 50 {
				put(t, b, fmt.Sprintf("k.%03d", i), fmt.Sprint("v", i))
			}
			fold := t.TempDir() + "/fold"
			args := []string{"-bucket", "inproc", "-fold", fold, "-nats", srv.URL(), "-http", "127.0.0.1:0",
				"-backend", backend, "-batch-window", "1ms", "-batch-max", "7"}
			mp := startInProcess(t, args...)
			base := mp.httpBase(t)
			waitCaughtUp(t, base, b)
			if d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), b)); d != "" {
				t.Fatalf("after the initial sync: %s", d)
			}

			// Live changes, then a server restart under the running mirror:
			// it keeps (or re-establishes) its watch and converges.
			put(t, b, "k.000", "changed")
			if _, err := b.Delete(t.Context(), "k.001"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Purge(t.Context(), "k.002"); err != nil {
				t.Fatal(err)
			}
			waitCaughtUp(t, base, b)
			if backend == backendAppLog { // slow (the watch notices after missed heartbeats): once is enough
				srv.Restart(t)
			}
			for i := 50; i < 60; i++ {
				put(t, b, fmt.Sprintf("k.%03d", i), fmt.Sprint("v", i))
			}
			st := waitCaughtUp(t, base, b)
			if d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), b)); d != "" {
				t.Fatalf("after a server restart: %s", d)
			}
			if st.Backend != backend || st.Bucket != "inproc" || !st.Ready || st.Lag != 0 {
				t.Errorf("status %+v", st)
			}
			final := mp.stop(t)
			bs, _ := b.Status(t.Context())
			if final != bs.LastSeq {
				t.Fatalf("final cursor %d, bucket last seq %d", final, bs.LastSeq)
			}

			// Offline, changes made while it was down arrive on restart
			// (resume from the fold's cursor: delta only).
			put(t, b, "k.003", "while down")
			if _, err := b.Delete(t.Context(), "k.004"); err != nil {
				t.Fatal(err)
			}
			mp = startInProcess(t, args...)
			base = mp.httpBase(t)
			waitCaughtUp(t, base, b)
			if d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), b)); d != "" {
				t.Fatalf("after a resume: %s", d)
			}
			if !strings.Contains(mp.stderr.String(), "follower resuming") {
				t.Errorf("the restart did not resume from the fold's cursor:\n%s", mp.stderr.String())
			}
			mp.stop(t)
		})
	}
}

// Several prefixes are mirrored on one consumer; keys outside them never
// reach the fold.
func TestMirror_Prefixes(t *testing.T) {
	srv := natstest.Start(t)
	b := openBucket(t, srv.URL(), natskv.Config{Bucket: "prefixes"})
	for _, k := range []string{"a.1", "a.2", "b.1", "c.1", "ab.1"} {
		put(t, b, k, "v")
	}
	fold := t.TempDir() + "/fold"
	mp := startInProcess(t, "-bucket", "prefixes", "-fold", fold, "-nats", srv.URL(), "-http", "127.0.0.1:0",
		"-prefix", "a.", "-prefix", "b.", "-batch-window", "1ms")
	base := mp.httpBase(t)
	poll.Until(t, 30*time.Second, func() (bool, string) {
		st, ok := getStatus(base)
		return ok && st.Ready, fmt.Sprintf("status %+v", st)
	})
	put(t, b, "c.2", "v")
	put(t, b, "b.2", "v")
	var keys string
	poll.Until(t, 30*time.Second, func() (bool, string) {
		var ks []string
		for _, l := range httpRange(t, base, "") {
			ks = append(ks, l.Key)
		}
		keys = strings.Join(ks, ",")
		return keys == "a.1,a.2,b.1,b.2", "fold keys " + keys
	})
	st, _ := getStatus(base)
	if strings.Join(st.Scope, ",") != "a.,b." {
		t.Errorf("status scope %q", st.Scope)
	}
	mp.stop(t)
}

// An unreachable server fails fast with one line and exit 1; a fold held by
// another mirror is refused before anything else starts.
func TestMirror_FailsFast(t *testing.T) {
	fold := t.TempDir() + "/fold"
	start := time.Now()
	_, _, err := runMain(t, "", "mirror", "-bucket", "b", "-fold", fold, "-nats", "nats://127.0.0.1:1")
	if err == nil || exitCode(err) != 1 || !strings.Contains(errorLine(err), "connection failed") {
		t.Fatalf("unreachable server: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v to fail", d)
	}

	// The embedded server's port is taken: one line, exit 1, no hang.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, stderr, err := runMain(t, "", "mirror", "-bucket", "b", "-fold", fold, "-listen", ln.Addr().String(),
		"-nats-store", t.TempDir())
	if err == nil || exitCode(err) != 1 || !strings.Contains(errorLine(err), "address already in use") {
		t.Fatalf("port in use: %v", err)
	}
	if stderr != "" {
		t.Errorf("the failure was also logged: %q", stderr)
	}

	held, err := openFold(fold, "", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, _, err = runMain(t, "", "mirror", "-bucket", "b", "-fold", fold, "-nats", "nats://127.0.0.1:1")
	if err == nil || exitCode(err) != 1 || !strings.Contains(errorLine(err), "held by another process") {
		t.Fatalf("held fold: %v", err)
	}
}
