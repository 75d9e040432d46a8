package main

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/churn"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/natskv"
)

// crashIterations is how many churn-and-kill rounds TestCrash runs per
// backend: 5 by default, SLIPSTREAM_CRASH_ITERATIONS for a long run.
func crashIterations(t *testing.T) int {
	n := 5
	if s := os.Getenv("SLIPSTREAM_CRASH_ITERATIONS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("SLIPSTREAM_CRASH_ITERATIONS=%q: want a positive integer", s)
		}
		n = v
	}
	return n
}

// TestCrash kills the mirror process with SIGKILL at random moments while
// puts, deletes and purges keep arriving, restarting it each time. After
// every round the churn stops, a final mirror catches up, and the fold must
// equal the bucket exactly (no missing, extra or stale key) — over HTTP
// while it runs and with `range` after it stops.
func TestCrash(t *testing.T) {
	iterations := crashIterations(t)
	binary(t) // build before the clock matters
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			srv := natstest.Start(t)
			bucketName := "crash_" + backend
			b := openBucket(t, srv.URL(), natskv.Config{Bucket: bucketName, MaxBytes: -1})
			fold := filepath.Join(t.TempDir(), "fold")
			args := []string{"mirror", "-bucket", bucketName, "-fold", fold, "-nats", srv.URL(),
				"-http", "127.0.0.1:0", "-backend", backend, "-batch-window", "2ms", "-batch-max", "50"}
			kills, totalOps := 0, 0
			for it := range iterations {
				ctx, stopChurn := context.WithCancel(t.Context())
				var wg sync.WaitGroup
				var churnErr error
				var ops int
				churnRNG := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
				wg.Go(func() { ops, churnErr = churn.Generator{Rand: churnRNG}.Run(ctx, b) })

				for range 1 + rng.IntN(3) {
					m := startProc(t, args...)
					// Anywhere from startup (before the fold is even open)
					// to well into the live watch.
					time.Sleep(time.Duration(rng.IntN(600)) * time.Millisecond)
					m.kill(t)
					kills++
				}
				stopChurn()
				wg.Wait()
				if churnErr != nil {
					t.Fatal(churnErr)
				}
				totalOps += ops

				m := startProc(t, args...)
				base := m.httpBase(t)
				st := waitCaughtUp(t, base, b)
				want := bucketLines(t, t.Context(), b)
				if d := diffLines(httpRange(t, base, ""), want); d != "" {
					t.Fatalf("iteration %d (after %d kills, %d ops): fold over HTTP ≠ bucket: %s\nmirror log:\n%s", it, kills, totalOps, d, m.stderr.String())
				}
				final := m.stop(t)
				if final != st.Cursor {
					t.Fatalf("iteration %d: final cursor %d, status said %d", it, final, st.Cursor)
				}
				out := mustBin(t, "", "range", "-fold", fold)
				if d := diffLines(parseLines(t, strings.NewReader(out)), want); d != "" {
					t.Fatalf("iteration %d: `range` after stop ≠ bucket: %s", it, d)
				}
				t.Logf("iteration %d: %d ops, %d kills so far, %d live keys, cursor %d, resyncs %d", it, ops, kills, len(want), final, st.Resyncs)
			}
			t.Logf("%d iterations, %d kills, %d operations: fold == bucket after every one", iterations, kills, totalOps)
		})
	}
}
