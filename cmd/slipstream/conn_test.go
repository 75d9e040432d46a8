package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// An outage is logged at WARN when it starts and again when it outlasts
// the grace; /readyz (readyErr) turns not ready exactly at the grace and
// ready again at the reconnect, which is logged at INFO with the outage's
// duration. A short outage stays ready and gets no second WARN.
func TestConnState_OutageLogsAndReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		tr := newTracker(slipstream.AllKeys(), log, nil)
		tr.runStarting(slipstream.Cursor{})
		tr.watchStarting(slipstream.Cursor{}, slipstream.Cursor{}, 0, true) // caught up: ready
		if err := tr.readyErr(); err != nil {
			t.Fatalf("ready before the outage: %v", err)
		}

		tr.conn.disconnected(errors.New("connection reset"))
		if !strings.Contains(logs.String(), `level=WARN msg="NATS disconnected; reconnecting" err="connection reset" not_ready_after=5s`) {
			t.Fatalf("no WARN at the disconnect:\n%s", logs.String())
		}
		if ok, _ := tr.conn.state(); ok {
			t.Fatal("connected during the outage")
		}
		time.Sleep(DefaultDisconnectGrace - time.Millisecond)
		if err := tr.readyErr(); err != nil {
			t.Fatalf("not ready within the grace: %v", err)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if err := tr.readyErr(); !errors.Is(err, errDisconnected) {
			t.Fatalf("readyErr after the grace = %v, want errDisconnected", err)
		}
		if !strings.Contains(logs.String(), `level=WARN msg="NATS still disconnected: /readyz reports not ready until it reconnects" for=5s`) {
			t.Fatalf("no WARN at the grace:\n%s", logs.String())
		}
		time.Sleep(7 * time.Second)
		tr.conn.disconnected(errors.New("again")) // within the outage: ignored
		tr.conn.reconnected("nats://127.0.0.1:4222")
		if err := tr.readyErr(); err != nil {
			t.Fatalf("not ready after the reconnect: %v", err)
		}
		if !strings.Contains(logs.String(), `level=INFO msg="NATS reconnected" url=nats://127.0.0.1:4222 outage=12s`) {
			t.Fatalf("no INFO with the outage at the reconnect:\n%s", logs.String())
		}

		// A short outage.
		logs.Reset()
		tr.conn.disconnected(nil)
		time.Sleep(time.Second)
		tr.conn.reconnected("nats://127.0.0.1:4222")
		time.Sleep(time.Minute)
		synctest.Wait()
		if strings.Contains(logs.String(), "still disconnected") || !strings.Contains(logs.String(), "outage=1s") {
			t.Fatalf("a 1 s outage:\n%s", logs.String())
		}
		if n := tr.conn.disconnects.Load(); n != 2 {
			t.Fatalf("disconnects = %d, want 2", n)
		}
	})
}

// Before the first catch-up the reason is catching up, whatever the
// connection; a zero grace is not ready as soon as it disconnects.
func TestConnState_ZeroGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(slipstream.AllKeys(), discardLogger(), nil)
		tr.conn.grace = 0
		tr.conn.disconnected(nil)
		if err := tr.readyErr(); !errors.Is(err, errCatchingUp) {
			t.Fatalf("readyErr = %v, want errCatchingUp", err)
		}
		tr.runStarting(slipstream.Cursor{})
		tr.watchStarting(slipstream.Cursor{}, slipstream.Cursor{}, 0, true)
		if err := tr.readyErr(); !errors.Is(err, errDisconnected) {
			t.Fatalf("readyErr = %v, want errDisconnected", err)
		}
	})
}

// TestMirrorReportsNATSOutage: the mirror's server stops for longer than
// the grace. The mirror logs a WARN, /readyz turns 503 and /v1/status and
// /metrics show the outage; when the server is back it logs the reconnect
// with the outage's duration, is ready again and keeps following.
func TestMirrorReportsNATSOutage(t *testing.T) {
	srv := natstest.Start(t)
	b := openBucket(t, srv.URL(), natskv.Config{Bucket: "outage"})
	put(t, b, "k.1", "v")
	m := startProc(t, "mirror", "-bucket", "outage", "-fold", t.TempDir(), "-nats", srv.URL(),
		"-http", "127.0.0.1:0", "-batch-window", "1ms", "-disconnect-grace", "1s")
	base := m.httpBase(t)
	waitCaughtUp(t, base, b)
	readyz := func() (int, string) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		return resp.StatusCode, body.String()
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz before the outage: %d %q", code, body)
	}

	srv.Shutdown()
	poll.Until(t, 30*time.Second, func() (bool, string) {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "disconnected from NATS"),
			fmt.Sprintf("/readyz %d %q", code, body)
	})
	st, ok := getStatus(base)
	if !ok || st.Connected || st.DisconnectedSince == nil || st.Disconnects != 1 || st.Ready {
		t.Fatalf("status during the outage: %+v", st)
	}
	if v := metricValue(t, base, "slipstream_nats_connected"); v != 0 {
		t.Fatalf("slipstream_nats_connected %v during the outage", v)
	}
	if v := metricValue(t, base, "slipstream_ready"); v != 0 {
		t.Fatalf("slipstream_ready %v during the outage", v)
	}
	if !strings.Contains(m.stderr.String(), `level=WARN msg="NATS disconnected; reconnecting"`) {
		t.Fatalf("no WARN at the disconnect:\n%s", m.stderr.String())
	}

	srv.Restart(t)
	poll.Until(t, 30*time.Second, func() (bool, string) {
		code, body := readyz()
		return code == http.StatusOK, fmt.Sprintf("/readyz %d %q", code, body)
	})
	outage := m.logValue(t, "NATS reconnected", "outage")
	if d, err := time.ParseDuration(outage); err != nil || d < time.Second {
		t.Fatalf("reconnect logged outage=%q, want at least the 1 s grace", outage)
	}
	st, ok = getStatus(base)
	if !ok || !st.Connected || st.DisconnectedSince != nil || st.Disconnects != 1 {
		t.Fatalf("status after the reconnect: %+v", st)
	}
	b = openBucket(t, srv.URL(), natskv.Config{Bucket: "outage"})
	put(t, b, "k.2", "v")
	waitCaughtUp(t, base, b)
	m.stop(t)
}

// Closing the connection (the mirror's shutdown) is not an outage: no WARN,
// nothing counted.
func TestConnState_CloseIsNoOutage(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.URL())
	var logs syncBuffer
	tr := newTracker(slipstream.AllKeys(), slog.New(slog.NewTextHandler(&logs, nil)), nil)
	tr.conn.attach(nc)
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) }) // runs after the disconnect callback
	nc.Close()
	<-closed
	if n := tr.conn.disconnects.Load(); n != 0 || strings.Contains(logs.String(), "disconnected") {
		t.Fatalf("close counted as an outage (%d):\n%s", n, logs.String())
	}
}
