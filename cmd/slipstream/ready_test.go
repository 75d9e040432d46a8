package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/natskv"
)

// waitFirstReady polls /readyz as fast as it answers and returns once it
// first answers 200; every earlier answer must be 503.
func waitFirstReady(t *testing.T, m *proc, base string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-m.done:
			t.Fatalf("mirror exited (%v) before it was ready; stderr:\n%s", m.err, m.stderr.String())
		default:
		}
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return
		case http.StatusServiceUnavailable:
		default:
			t.Fatalf("readyz answered %s", resp.Status)
		}
	}
	t.Fatalf("not ready within 60s; stderr:\n%s", m.stderr.String())
}

// readAll reads every key the mirror serves, over GET /v1/kv?prefix=.
func readAll(t *testing.T, base string) map[string]string {
	t.Helper()
	resp, err := http.Get(base + "/v1/kv?prefix=")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("range: %s", resp.Status)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l rangeLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("range line %q: %v", sc.Text(), err)
		}
		got[l.Key] = string(l.Value)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func wantAll(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	missing, wrong := 0, 0
	for k, v := range want {
		switch g, ok := got[k]; {
		case !ok:
			missing++
		case g != v:
			wrong++
		}
	}
	if missing > 0 || wrong > 0 || len(got) != len(want) {
		t.Fatalf("%s: %d of %d keys missing, %d with an old value, %d served in all", what, missing, len(want), wrong, len(got))
	}
}

// TestReadyMeansCaughtUp runs the built binary on a pre-filled bucket and
// reads every key the moment /readyz first answers 200: ready must mean
// caught up, for a first state sync and for a resume after a restart. The
// batch window is long (2 s) and the batch size larger than the bucket, so
// updates received sit unfolded for two seconds: a mirror that reported
// ready on receipt rather than on the fold would be caught every time.
func TestReadyMeansCaughtUp(t *testing.T) {
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			srv := natstest.Start(t)
			const bucket = "ready"
			b := openBucket(t, srv.URL(), natskv.Config{Bucket: bucket, MaxBytes: -1})
			want := map[string]string{}
			fill := func(from, to int) {
				for i := from; i < to; i++ {
					k, v := fmt.Sprintf("k.%05d", i), fmt.Sprintf("v%d-%d", i, from)
					put(t, b, k, v)
					want[k] = v
				}
			}
			fill(0, 3000)
			fold := t.TempDir()
			args := []string{"mirror", "-bucket", bucket, "-fold", fold, "-nats", srv.URL(),
				"-http", "127.0.0.1:0", "-backend", backend, "-batch-window", "2s", "-batch-max", "100000"}

			m := startProc(t, args...)
			base := m.httpBase(t)
			waitFirstReady(t, m, base)
			wantAll(t, "state sync: at the first ready", readAll(t, base), want)
			m.stop(t)

			// Rewrite half the keys and add more while the mirror is down;
			// the restart resumes from the fold's cursor.
			fill(1500, 4500)
			m = startProc(t, args...)
			base = m.httpBase(t)
			waitFirstReady(t, m, base)
			wantAll(t, "resume: at the first ready", readAll(t, base), want)
			m.stop(t)
		})
	}
}

// failingApplies is a fold store whose Apply fails while fail is set.
type failingApplies struct {
	store
	fail atomic.Bool
}

func (s *failingApplies) Apply(batch []slipstream.Update, c slipstream.Cursor) error {
	if s.fail.Load() {
		return errors.New("injected store failure")
	}
	return s.store.Apply(batch, c)
}

// TestReadyWaitsForTheFold: a failed store write re-queues the batch, and
// the loop's cursor runs ahead of the fold's until a later flush commits it.
// Readiness and the reported cursor follow the fold — what readers see —
// not the loop.
func TestReadyWaitsForTheFold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, fb := newSupervised(t, func(int) error { return nil })
		st := &failingApplies{store: m.fold.store}
		m.fold.store = st
		ctx := t.Context()
		for i := range 50 {
			fb.Put(ctx, fmt.Sprintf("k.%02d", i), []byte("v"))
		}
		st.fail.Store(true)
		runCtx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- m.run(runCtx) }()
		time.Sleep(time.Second)
		synctest.Wait()
		if n, _ := m.fold.Keys(); n != 0 {
			t.Fatalf("premise: the fold holds %d keys after failed writes", n)
		}
		if m.t.ready.Load() {
			t.Fatal("ready while the fold holds nothing: readiness followed the loop's cursor, not the fold's")
		}
		if a := m.t.applied.Load(); a != 0 {
			t.Fatalf("reported applied cursor %d, the fold's is 0", a)
		}
		// The next flush commits the re-queued batch with the new update.
		st.fail.Store(false)
		fb.Put(ctx, "k.new", []byte("v"))
		time.Sleep(time.Second)
		synctest.Wait()
		if !m.t.ready.Load() {
			t.Fatal("not ready once the fold caught up")
		}
		if n, _ := m.fold.Keys(); n != 51 {
			t.Fatalf("fold holds %d keys, want 51", n)
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("run: %v", err)
		}
	})
}
