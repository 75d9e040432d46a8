package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// TestExpiry: the mirror is stopped, keys are deleted, and the history that
// held their delete markers expires (bucket max age). When the mirror
// restarts its cursor has expired; the resync drops those keys from the
// fold.
func TestExpiry(t *testing.T) {
	const maxAge = 2 * time.Second // the server's minimum is 100 ms
	binary(t)
	for _, backend := range allBackends {
		t.Run(backend, func(t *testing.T) {
			srv := natstest.Start(t)
			bucketName := "expiry_" + backend
			b := openBucket(t, srv.URL(), natskv.Config{Bucket: bucketName, MaxAge: maxAge})

			// live.* keys are re-put faster than they expire, so they stay
			// in the bucket for the whole test; gone.* are written once.
			live := []string{"live.0", "live.1", "live.2"}
			ctx, stopKeeper := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			var keepErr error
			wg.Go(func() {
				for n := 0; ; n++ {
					for _, k := range live {
						if _, err := b.Put(ctx, k, fmt.Appendf(nil, "v%d", n)); err != nil {
							if ctx.Err() == nil {
								keepErr = err
							}
							return
						}
					}
					select {
					case <-ctx.Done():
						return
					case <-time.After(maxAge / 8):
					}
				}
			})
			t.Cleanup(func() {
				stopKeeper()
				wg.Wait()
				if keepErr != nil {
					t.Errorf("keeper: %v", keepErr)
				}
			})
			gone := []string{"gone.0", "gone.1", "gone.2"}
			for _, k := range gone {
				put(t, b, k, "x")
			}

			fold := filepath.Join(t.TempDir(), "fold")
			args := []string{"mirror", "-bucket", bucketName, "-fold", fold, "-nats", srv.URL(),
				"-http", "127.0.0.1:0", "-backend", backend, "-batch-window", "1ms"}
			m := startProc(t, args...)
			base := m.httpBase(t)
			poll.Until(t, 30*time.Second, func() (bool, string) {
				keys := foldKeys(t, base)
				return slices.Equal(keys, append(slices.Clone(gone), live...)), fmt.Sprintf("fold keys %v", keys)
			})
			cursor := m.stop(t)

			var lastDelete uint64
			for _, k := range gone {
				if _, err := b.Delete(t.Context(), k); err != nil {
					t.Fatal(err)
				}
			}
			bs, err := b.Status(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			lastDelete = bs.LastSeq // at least the last delete marker
			poll.Until(t, 10*maxAge, func() (bool, string) {
				bs, err := b.Status(t.Context())
				return err == nil && bs.FirstSeq > lastDelete,
					fmt.Sprintf("first seq %d, waiting for the delete markers (≤ %d) to expire (%v)", bs.FirstSeq, lastDelete, err)
			})
			if lastDelete <= cursor {
				t.Fatalf("delete markers at ≤ %d are not after the cursor %d", lastDelete, cursor)
			}

			m = startProc(t, args...)
			base = m.httpBase(t)
			var st statusDoc
			poll.Until(t, 30*time.Second, func() (bool, string) {
				var ok bool
				st, ok = getStatus(base)
				return ok && st.State == stateSynced && st.Resyncs >= 1, fmt.Sprintf("status %+v", st)
			})
			if keys := foldKeys(t, base); !slices.Equal(keys, live) {
				t.Fatalf("after the resync the fold holds %v, want %v\nmirror log:\n%s", keys, live, m.stderr.String())
			}
			if !strings.Contains(m.stderr.String(), "cursor expired") {
				t.Errorf("the mirror did not log the cursor expiry:\n%s", m.stderr.String())
			}
			m.stop(t)
			var keys []string
			for _, l := range parseLines(t, strings.NewReader(mustBin(t, "", "range", "-fold", fold))) {
				keys = append(keys, l.Key)
			}
			if !slices.Equal(keys, live) {
				t.Fatalf("`range` after stop: %v, want %v", keys, live)
			}
		})
	}
}

func foldKeys(t *testing.T, base string) []string {
	t.Helper()
	var keys []string
	for _, l := range httpRange(t, base, "") {
		keys = append(keys, l.Key)
	}
	return keys
}
