package natskv_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/natskv"
)

// updateTimeout is how long a test waits for one expected update.
const updateTimeout = 5 * time.Second

// quietLogger drops records below Error, keeping test output readable.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) { return len(p), nil }

// env is one embedded server and a client connection to it.
type env struct {
	srv *natstest.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := natstest.Start(t)
	return envFor(t, srv, srv.Conn(t))
}

func envFor(t testing.TB, srv *natstest.Server, nc *nats.Conn) *env {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, nc: nc, js: js}
}

// open opens (creating) a bucket with a quiet logger unless cfg has one.
func (e *env) open(t testing.TB, cfg natskv.Config) *natskv.Bucket {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	b, err := natskv.Open(t.Context(), e.nc, cfg)
	if err != nil {
		t.Fatalf("open %q: %v", cfg.Bucket, err)
	}
	return b
}

// rawKV binds nats.go's own handle on a bucket, for the raw halves of the
// behaviour pins and for out-of-band changes.
func (e *env) rawKV(t testing.TB, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := e.js.KeyValue(t.Context(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func (e *env) stream(t testing.TB, bucket string) jetstream.Stream {
	t.Helper()
	s, err := e.js.Stream(t.Context(), "KV_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) streamInfo(t testing.TB, bucket string) *jetstream.StreamInfo {
	t.Helper()
	info, err := e.stream(t, bucket).Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func put(t testing.TB, b *natskv.Bucket, key, value string) uint64 {
	t.Helper()
	rev, err := b.Put(t.Context(), key, []byte(value))
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return rev
}

// watch runs b.Watch on its own goroutine until the test ends (or stop is
// called) and returns its updates and its result.
type watchRun struct {
	updates chan slipstream.Update
	result  chan error
	stop    context.CancelFunc
}

func startWatch(t testing.TB, b *natskv.Bucket, scope slipstream.Scope, after slipstream.Cursor) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watchRun{updates: make(chan slipstream.Update, 1024), result: make(chan error, 1), stop: cancel}
	go func() { w.result <- b.Watch(ctx, scope, after, w.updates) }()
	t.Cleanup(func() {
		cancel()
		<-w.result
	})
	return w
}

// next returns the next update or fails the test.
func (w *watchRun) next(t testing.TB) slipstream.Update {
	t.Helper()
	select {
	case u := <-w.updates:
		return u
	case err := <-w.result:
		t.Fatalf("watch ended while waiting for an update: %v", err)
	case <-time.After(updateTimeout):
		t.Fatal("no update within 5s")
	}
	return slipstream.Update{}
}

// none asserts that no update arrives within d.
func (w *watchRun) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case u := <-w.updates:
		t.Fatalf("unexpected update %s %s@%s", u.Op, u.Key, u.Version)
	case err := <-w.result:
		t.Fatalf("watch ended: %v", err)
	case <-time.After(d):
	}
}

// waitResult waits for the watch to return.
func (w *watchRun) waitResult(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case err := <-w.result:
		w.result <- err // for the cleanup
		return err
	case <-time.After(d):
		t.Fatalf("watch did not return within %v", d)
	}
	return nil
}

func rev(u slipstream.Update) uint64 {
	r, _ := u.Version.Uint64()
	return r
}

// initialDone returns an OnProgress hook and a channel closed when the
// initial values are done.
func initialDone() (func(natskv.Progress), <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	return func(p natskv.Progress) {
		if p.InitialDone {
			once.Do(func() { close(ch) })
		}
	}, ch
}

func waitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(updateTimeout):
		t.Fatalf("%s not signalled within 5s", what)
	}
}

func isErr(err, target error) bool { return errors.Is(err, target) }

func keyN(prefix string, i int) string { return prefix + strconv.Itoa(i) }

func contextCancelled(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}

// fill writes n keys "k<i>" of size bytes with asynchronous publishes.
func fill(t testing.TB, e *env, bucket string, n, size int) {
	t.Helper()
	fillKeys(t, e, bucket, "k", 0, n, size)
}

// fillKeys writes keys prefix<from>..prefix<to-1> with asynchronous
// publishes in windows of 4,096, returning when all are acknowledged.
func fillKeys(t testing.TB, e *env, bucket, prefix string, from, to, size int) {
	t.Helper()
	fillFunc(t, e, bucket, to-from, size, func(i int) string { return prefix + strconv.Itoa(from+i) })
}

// fillInterleaved writes per keys under each prefix, interleaved
// (p0+"0", p1+"0", ..., p0+"1", p1+"1", ...).
func fillInterleaved(t testing.TB, e *env, bucket string, prefixes []string, per, size int) {
	t.Helper()
	fillFunc(t, e, bucket, per*len(prefixes), size, func(i int) string {
		return prefixes[i%len(prefixes)] + strconv.Itoa(i/len(prefixes))
	})
}

// fillFunc writes the n keys key(0)..key(n-1), in that order, with
// asynchronous publishes in windows of 4,096, returning when all are
// acknowledged.
func fillFunc(t testing.TB, e *env, bucket string, n, size int, key func(int) string) {
	t.Helper()
	const window = 4096
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), size)
	futures := make([]jetstream.PubAckFuture, 0, window)
	for i := 0; i < n; {
		futures = futures[:0]
		for ; i < n && len(futures) < window; i++ {
			f, err := js.PublishAsync("$KV."+bucket+"."+key(i), value)
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, f)
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			t.Fatal("async publishes not acknowledged")
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("async publish: %v", err)
			}
		}
	}
}
