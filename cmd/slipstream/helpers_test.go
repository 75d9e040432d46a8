package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// binDir holds the slipstream binary the end-to-end tests build once.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "slipstream-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// binary builds the command (once per test run) and returns its path.
func binary(t testing.TB) string {
	t.Helper()
	path := filepath.Join(binDir, "slipstream")
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return path
}

// syncBuffer is a goroutine-safe bytes.Buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runMain runs the command in-process and returns its output and error.
func runMain(t testing.TB, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut}
	err = m.Run(t.Context(), args)
	return out.String(), errOut.String(), err
}

// proc is a slipstream process started by a test.
type proc struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error
}

// binEnv is the test process's environment without the NATS_* defaults
// of the connection flags, so that a developer's NATS_URL or NATS_CONTEXT
// does not redirect the binaries the tests start.
func binEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATS_") {
			env = append(env, kv)
		}
	}
	return env
}

// startProc starts the binary with args. It is killed when the test ends.
func startProc(t testing.TB, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Env = binEnv()
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit error.
func (p *proc) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("process did not exit within %v; stderr:\n%s", timeout, p.stderr.String())
		return nil
	}
}

// kill sends SIGKILL and waits for the process to die.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t, 10*time.Second)
}

// stop sends SIGTERM, requires a clean exit and returns the final cursor the
// mirror printed.
func (p *proc) stop(t testing.TB) uint64 {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("mirror exited with %v; stderr:\n%s", err, p.stderr.String())
	}
	var cur uint64
	if _, err := fmt.Sscan(p.stdout.String(), &cur); err != nil {
		t.Fatalf("mirror stdout %q: no final cursor: %v", p.stdout.String(), err)
	}
	return cur
}

// logValue waits until the process logged msg and returns that line's
// attribute key (text handler).
func (p *proc) logValue(t testing.TB, msg, key string) string {
	t.Helper()
	re := regexp.MustCompile(`msg="?` + regexp.QuoteMeta(msg) + `"?\s.*\b` + regexp.QuoteMeta(key) + `=(\S+)`)
	var v string
	poll.Until(t, 60*time.Second, func() (bool, string) {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			v = m[1]
			return true, ""
		}
		select {
		case <-p.done:
			t.Fatalf("process exited (%v) before logging %q; stderr:\n%s", p.err, msg, p.stderr.String())
		default:
		}
		return false, fmt.Sprintf("no %q log line yet; stderr:\n%s", msg, p.stderr.String())
	})
	return v
}

// httpBase returns the mirror's HTTP base URL, from its log.
func (p *proc) httpBase(t testing.TB) string {
	t.Helper()
	return "http://" + p.logValue(t, "serving http", "addr")
}

// getStatus fetches /v1/status; false when the mirror does not answer.
func getStatus(base string) (statusDoc, bool) {
	var st statusDoc
	resp, err := http.Get(base + "/v1/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return st, false
	}
	return st, true
}

// waitCaughtUp waits until the mirror at base is synced at the bucket's last
// sequence.
func waitCaughtUp(t testing.TB, base string, b *natskv.Bucket) statusDoc {
	t.Helper()
	var st statusDoc
	poll.Until(t, 60*time.Second, func() (bool, string) {
		bs, err := b.Status(t.Context())
		if err != nil {
			return false, err.Error()
		}
		var ok bool
		st, ok = getStatus(base)
		if !ok {
			return false, "status unavailable"
		}
		return st.State == stateSynced && st.Cursor == bs.LastSeq,
			fmt.Sprintf("status %+v, bucket last seq %d", st, bs.LastSeq)
	})
	return st
}

// parseLines decodes JSON lines of range output.
func parseLines(t testing.TB, r io.Reader) []rangeLine {
	t.Helper()
	var out []rangeLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l rangeLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// httpRange fetches GET /v1/kv?prefix= from the mirror.
func httpRange(t testing.TB, base, prefix string) []rangeLine {
	t.Helper()
	resp, err := http.Get(base + "/v1/kv?prefix=" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/kv: %s", resp.Status)
	}
	return parseLines(t, resp.Body)
}

// bucketLines scans the bucket into range lines, sorted by key.
func bucketLines(t testing.TB, ctx context.Context, b *natskv.Bucket) []rangeLine {
	t.Helper()
	var out []rangeLine
	err := b.Scan(ctx, "", func(e slipstream.Entry) error {
		out = append(out, newRangeLine(e))
		return nil
	})
	if err != nil {
		t.Fatalf("scan bucket: %v", err)
	}
	slices.SortFunc(out, func(a, b rangeLine) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// diffLines describes the differences between a fold and a bucket listing.
func diffLines(fold, bucket []rangeLine) string {
	fm := map[string]rangeLine{}
	for _, l := range fold {
		fm[l.Key] = l
	}
	bm := map[string]rangeLine{}
	for _, l := range bucket {
		bm[l.Key] = l
	}
	var d []string
	for k, b := range bm {
		f, ok := fm[k]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("missing %s@%d", k, b.Revision))
		case f.Revision != b.Revision || !bytes.Equal(f.Value, b.Value):
			d = append(d, fmt.Sprintf("stale %s: fold @%d, bucket @%d", k, f.Revision, b.Revision))
		}
	}
	for k, f := range fm {
		if _, ok := bm[k]; !ok {
			d = append(d, fmt.Sprintf("extra %s@%d", k, f.Revision))
		}
	}
	for i := 1; i < len(fold); i++ {
		if fold[i-1].Key >= fold[i].Key {
			d = append(d, fmt.Sprintf("fold out of order at %q", fold[i].Key))
		}
	}
	slices.Sort(d)
	if len(d) > 20 {
		d = append(d[:20], fmt.Sprintf("… and %d more", len(d)-20))
	}
	return strings.Join(d, "; ")
}
