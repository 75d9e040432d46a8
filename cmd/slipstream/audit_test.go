package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

// auditOutput is what `slipstream audit` printed.
type auditOutput struct {
	lines   []auditLine
	summary auditSummary
}

// findings renders the divergence lines as "class key" (or "class
// cursor>last" for the cursor finding), sorted.
func (o auditOutput) findings() []string {
	var out []string
	for _, l := range o.lines {
		if l.Key == "" {
			out = append(out, fmt.Sprintf("%s cursor %d>%d", l.Class, l.FoldCursor, l.ServerLast))
			continue
		}
		out = append(out, l.Class+" "+l.Key)
	}
	slices.Sort(out)
	return out
}

func parseAudit(t testing.TB, stdout string) auditOutput {
	t.Helper()
	var o auditOutput
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sawSummary := false
	for sc.Scan() {
		if sawSummary {
			t.Fatalf("output after the summary line: %q", sc.Text())
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		if s, ok := raw["summary"]; ok {
			if err := json.Unmarshal(s, &o.summary); err != nil {
				t.Fatal(err)
			}
			sawSummary = true
			continue
		}
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		o.lines = append(o.lines, l)
	}
	if !sawSummary {
		t.Fatalf("no summary line in %q", stdout)
	}
	return o
}

// runAudit runs `slipstream audit` with the binary and checks its exit
// status against the findings.
func runAudit(t testing.TB, natsURL, bucket, fold string, extra ...string) auditOutput {
	t.Helper()
	args := append([]string{"audit", "-fold", fold, "-bucket", bucket, "-nats", natsURL}, extra...)
	stdout, stderr, code := runBin(t, "", args...)
	o := parseAudit(t, stdout)
	want := 0
	if len(o.lines) > 0 {
		want = 1
	}
	if code != want || o.summary.Equal != (want == 0) {
		t.Fatalf("slipstream %v: exit %d with %d findings (summary %+v)\n%s", args, code, len(o.lines), o.summary, stderr)
	}
	if want == 1 && !strings.Contains(stderr, "diverges") {
		t.Fatalf("divergent audit: stderr %q lacks the verdict", stderr)
	}
	// The findings are on stdout and the verdict is the error: no log line
	// says either again.
	if strings.Contains(stderr, "level=ERROR") || strings.Count(stderr, "diverges") > 1 {
		t.Fatalf("slipstream %v: stderr repeats the findings or the verdict:\n%s", args, stderr)
	}
	return o
}

// auditEnv is a NATS server with its store in a known directory, a bucket
// handle, and a fold directory.
type auditEnv struct {
	backend string // of the fold the first sync creates
	srv     *natstest.Server
	dir     string // the server's store
	b       *natskv.Bucket
	cfg     natskv.Config
	fold    string
	js      jetstream.JetStream
	reopen  func() *natskv.Bucket
}

func newAuditEnv(t *testing.T, cfg natskv.Config) *auditEnv {
	t.Helper()
	binary(t)
	dir := t.TempDir()
	srv := natstest.StartWith(t, func(o *server.Options) { o.StoreDir = dir })
	e := &auditEnv{srv: srv, dir: dir, cfg: cfg, fold: filepath.Join(t.TempDir(), "fold")}
	e.reopen = func() *natskv.Bucket { return openBucket(t, srv.URL(), cfg) }
	e.b = e.reopen()
	js, err := jetstream.New(natstest.Connect(t, srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	e.js = js
	return e
}

// sync runs the mirror until it is synced and its fold equals the bucket,
// then stops it and returns its final cursor. (Its cursor need not reach the
// stream's last sequence: a resume over records removed since, expired
// markers say, delivers nothing.)
func (e *auditEnv) sync(t *testing.T) uint64 {
	t.Helper()
	args := []string{"mirror", "-bucket", e.cfg.Bucket, "-fold", e.fold, "-nats", e.srv.URL(),
		"-http", "127.0.0.1:0", "-batch-window", "1ms"}
	if e.backend != "" {
		args = append(args, "-backend", e.backend)
	}
	m := startProc(t, args...)
	base := m.httpBase(t)
	poll.Until(t, 30*time.Second, func() (bool, string) {
		st, ok := getStatus(base)
		if !ok || st.State != stateSynced {
			return false, fmt.Sprintf("status %+v", st)
		}
		d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), e.b))
		return d == "", "fold differs from the bucket: " + d
	})
	return m.stop(t)
}

// mirrorRepairs starts the mirror on the divergent fold and waits until its
// post-resume audit has found want (stale, missed, backwards) divergences
// and repaired them: the fold equals the bucket and /v1/status says it is
// verified; /metrics counts them by class. No divergences wanted: the
// mirror resyncs, and its audit finds the fold equal.
func (e *auditEnv) mirrorRepairs(t *testing.T, want [3]int) {
	t.Helper()
	m := startProc(t, "mirror", "-bucket", e.cfg.Bucket, "-fold", e.fold, "-nats", e.srv.URL(),
		"-http", "127.0.0.1:0", "-batch-window", "1ms")
	base := m.httpBase(t)
	var st statusDoc
	poll.Until(t, 30*time.Second, func() (bool, string) {
		var ok bool
		st, ok = getStatus(base)
		if !ok || !st.Verified || st.LastAudit == nil {
			return false, fmt.Sprintf("status %+v (last audit %+v)", st, st.LastAudit)
		}
		d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), e.b))
		return d == "", "fold differs from the bucket: " + d
	})
	la := st.LastAudit
	if want == [3]int{} {
		if !la.Equal || la.Repaired != 0 || st.Resyncs < 1 {
			t.Fatalf("the mirror: %+v (its audit %+v), want a resync and an audit finding the fold equal\n%s", st, la, m.stderr.String())
		}
		m.stop(t)
		return
	}
	if got := [3]int{la.Stale, la.Missed, la.Backwards}; got != want || la.Repaired != want[0]+want[1]+want[2] || la.Equal {
		t.Fatalf("the mirror's audit: %+v, want (stale, missed, backwards) %v all repaired\n%s", la, want, m.stderr.String())
	}
	if want[2] > 0 && !strings.Contains(m.stderr.String(), "level=ERROR") {
		t.Fatalf("a backwards finding was not logged at error level:\n%s", m.stderr.String())
	}
	_, metrics, _ := httpGet(t, base+"/metrics")
	for i, class := range []string{"stale", "missed", "backwards"} {
		line := fmt.Sprintf("slipstream_audit_divergences_total{class=%q} %d", class, want[i])
		if !strings.Contains(metrics, line) {
			t.Fatalf("/metrics lacks %q:\n%s", line, grepLines(metrics, "slipstream_audit"))
		}
	}
	if !strings.Contains(metrics, "slipstream_audits_total 1") || !strings.Contains(metrics, "slipstream_verified 1") {
		t.Fatalf("/metrics audit figures:\n%s", grepLines(metrics, "slipstream_audit", "slipstream_verified"))
	}
	m.stop(t)
}

func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// foldLines reads the fold with `slipstream range`.
func (e *auditEnv) foldLines(t *testing.T) []rangeLine {
	t.Helper()
	return parseLines(t, strings.NewReader(mustBin(t, "", "range", "-fold", e.fold)))
}

func (e *auditEnv) wantConverged(t *testing.T) {
	t.Helper()
	if d := diffLines(e.foldLines(t), bucketLines(t, t.Context(), e.b)); d != "" {
		t.Fatalf("fold differs from the bucket: %s", d)
	}
}

func keysN(prefix string, from, to int) []string {
	var ks []string
	for i := from; i < to; i++ {
		ks = append(ks, fmt.Sprintf("%s%d", prefix, i))
	}
	return ks
}

func withClass(class string, keys ...string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = class + " " + k
	}
	return out
}

func putAll(t *testing.T, b *natskv.Bucket, keys []string, val string) uint64 {
	t.Helper()
	var last uint64
	for _, k := range keys {
		last = put(t, b, k, val)
	}
	return last
}

// A history takes a bucket the mirror has followed (its fold synced, the
// mirror stopped) into a state the fold diverges from without any cursor
// check noticing, and returns the findings the audit must report.
type history struct {
	name string
	cfg  natskv.Config
	// before writes the bucket's initial state, which the mirror syncs.
	before func(t *testing.T, e *auditEnv)
	// diverge runs while the mirror is down.
	diverge func(t *testing.T, e *auditEnv, cursor uint64) []string
	// offline repairs with `slipstream audit -repair`; otherwise the
	// restarted mirror audits and repairs by itself, its audit finding
	// mirror (stale, missed, backwards) divergences (none: the mirror
	// resyncs, and its audit finds the fold equal).
	offline bool
	mirror  [3]int
}

var histories = []history{
	{
		name: "purged delete markers",
		cfg:  natskv.Config{Bucket: "purged", History: 5},
		before: func(t *testing.T, e *auditEnv) {
			putAll(t, e.b, keysN("k.", 0, 6), "1")
		},
		diverge: func(t *testing.T, e *auditEnv, _ uint64) []string {
			for _, k := range []string{"k.1", "k.4"} {
				mustBin(t, "", "kv", "del", "-bucket", e.cfg.Bucket, "-nats", e.srv.URL(), k)
			}
			put(t, e.b, "k.5", "2") // in flight: the resume delivers it
			kv, err := e.js.KeyValue(t.Context(), e.cfg.Bucket)
			if err != nil {
				t.Fatal(err)
			}
			if err := kv.PurgeDeletes(t.Context(), jetstream.DeleteMarkersOlderThan(-1)); err != nil {
				t.Fatal(err)
			}
			return withClass("stale", "k.1", "k.4")
		},
		mirror: [3]int{2, 0, 0},
	},
	{
		name: "expired TTL markers",
		cfg:  natskv.Config{Bucket: "ttl", AllowTTL: true, LimitMarkerTTL: time.Second},
		before: func(t *testing.T, e *auditEnv) {
			put(t, e.b, "keep", "1")
			for _, k := range []string{"ttl.a", "ttl.b"} {
				if _, err := e.b.PutTTL(t.Context(), k, []byte("short"), 2*time.Second); err != nil {
					t.Fatal(err)
				}
			}
		},
		diverge: func(t *testing.T, e *auditEnv, cursor uint64) []string {
			poll.Until(t, 20*time.Second, func() (bool, string) {
				st, err := e.b.Status(t.Context())
				return err == nil && st.Values == 1 && st.LastSeq > cursor,
					fmt.Sprintf("waiting for the TTLs and their markers to expire: %+v %v", st, err)
			})
			return withClass("stale", "ttl.a", "ttl.b")
		},
		offline: true,
	},
	{
		// Memory storage: the embedded server may resurrect a file-backed
		// bucket deleted and recreated at once (natskv documentation).
		name: "bucket recreated past the cursor",
		cfg:  natskv.Config{Bucket: "recreated", Storage: natskv.MemoryStorage},
		before: func(t *testing.T, e *auditEnv) {
			putAll(t, e.b, keysN("old.", 0, 5), "1") // revisions 1-5
		},
		diverge: func(t *testing.T, e *auditEnv, cursor uint64) []string {
			if err := e.js.DeleteKeyValue(t.Context(), e.cfg.Bucket); err != nil {
				t.Fatal(err)
			}
			e.b = e.reopen()
			putAll(t, e.b, keysN("new.", 0, 8), "2") // revisions 1-8: past the cursor 5
			return append(withClass("stale", keysN("old.", 0, 5)...), withClass("missed", keysN("new.", 0, 5)...)...)
		},
		// The fold's binding names the old stream: the restarted mirror
		// resyncs instead of resuming after 5 on the new one, and its
		// audit finds nothing to repair.
		mirror: [3]int{},
	},
	{
		name: "bucket recreated behind the cursor",
		cfg:  natskv.Config{Bucket: "recreated_behind", Storage: natskv.MemoryStorage},
		before: func(t *testing.T, e *auditEnv) {
			putAll(t, e.b, keysN("old.", 0, 5), "1")
		},
		diverge: func(t *testing.T, e *auditEnv, cursor uint64) []string {
			if err := e.js.DeleteKeyValue(t.Context(), e.cfg.Bucket); err != nil {
				t.Fatal(err)
			}
			e.b = e.reopen()
			putAll(t, e.b, keysN("new.", 0, 3), "2")
			return append(append(withClass("stale", keysN("old.", 0, 5)...), withClass("missed", keysN("new.", 0, 3)...)...),
				"backwards cursor 5>3")
		},
		offline: true, // the repair resets the cursor
	},
	{
		// The server loses acknowledged writes and reuses their revisions:
		// its store is restored from a copy taken before them.
		name: "store restored from an older copy",
		cfg:  natskv.Config{Bucket: "restored"},
		before: func(t *testing.T, e *auditEnv) {
			putAll(t, e.b, []string{"a", "b", "c"}, "1") // 1-3
			e.srv.Shutdown()
			copyTree(t, e.dir, filepath.Join(e.dir+".copy"))
			e.srv.Restart(t)
			putAll(t, e.b, keysN("lost.", 0, 5), "1") // 4-8, lost
			put(t, e.b, "a", "lost")                  // 9, lost
		},
		diverge: func(t *testing.T, e *auditEnv, cursor uint64) []string {
			e.srv.Shutdown()
			if err := os.RemoveAll(e.dir); err != nil {
				t.Fatal(err)
			}
			copyTree(t, e.dir+".copy", e.dir)
			e.srv.Restart(t)
			putAll(t, e.b, keysN("y.", 0, 6), "2") // 4-9: the lost revisions reused
			return append(append(withClass("stale", keysN("lost.", 0, 5)...), withClass("missed", keysN("y.", 0, 6)...)...),
				"backwards a")
		},
		mirror: [3]int{5, 6, 1},
	},
}

// TestAuditHistories builds each history with the built binary (mirror,
// kv, audit) against a real server: `slipstream audit` exits 1 and lists
// exactly the divergent keys with their classes; the restarted mirror's own
// audit (or `slipstream audit -repair`) converges the fold; audit then exits
// 0. The histories alternate between the fold backends.
func TestAuditHistories(t *testing.T) {
	for i, h := range histories {
		backend := allBackends[i%len(allBackends)]
		t.Run(h.name+"/"+backend, func(t *testing.T) {
			e := newAuditEnv(t, h.cfg)
			e.backend = backend
			h.before(t, e)
			cursor := e.sync(t)
			if o := runAudit(t, e.srv.URL(), e.cfg.Bucket, e.fold); len(o.lines) != 0 || o.summary.Cursor != cursor {
				t.Fatalf("audit of a synced fold: %q, summary %+v", o.findings(), o.summary)
			}
			want := h.diverge(t, e, cursor)
			slices.Sort(want)
			o := runAudit(t, e.srv.URL(), e.cfg.Bucket, e.fold)
			if got := o.findings(); !slices.Equal(got, want) {
				t.Fatalf("audit findings\n got %q\nwant %q", got, want)
			}
			if h.offline {
				o = runAudit(t, e.srv.URL(), e.cfg.Bucket, e.fold, "-repair")
				keys := 0
				for _, w := range want {
					if !strings.Contains(w, " cursor ") {
						keys++
					}
				}
				if o.summary.Repaired != keys {
					t.Fatalf("repair folded %d keys, want %d", o.summary.Repaired, keys)
				}
				// The resume delivers what was in flight (or, after a
				// cursor reset, re-lists the bucket).
				e.sync(t)
			} else {
				e.mirrorRepairs(t, h.mirror)
			}
			e.wantConverged(t)
			runAudit(t, e.srv.URL(), e.cfg.Bucket, e.fold)
		})
	}
}

// copyTree copies the regular files under src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// TestMirrorConvergesOnBucketRecreatedUnderIt: the bucket is deleted and
// recreated while the mirror runs, and the new stream passes the mirror's
// cursor. The running mirror notices (the stream's creation time changed),
// resyncs, and its fold converges to the new bucket without the process
// being restarted.
func TestMirrorConvergesOnBucketRecreatedUnderIt(t *testing.T) {
	cfg := natskv.Config{Bucket: "recreated_live", Storage: natskv.MemoryStorage}
	e := newAuditEnv(t, cfg)
	putAll(t, e.b, keysN("old.", 0, 5), "1")
	m := startProc(t, "mirror", "-bucket", cfg.Bucket, "-fold", e.fold, "-nats", e.srv.URL(),
		"-http", "127.0.0.1:0", "-batch-window", "1ms")
	base := m.httpBase(t)
	waitCaughtUp(t, base, e.b)

	if err := e.js.DeleteKeyValue(t.Context(), cfg.Bucket); err != nil {
		t.Fatal(err)
	}
	e.b = e.reopen()
	putAll(t, e.b, keysN("new.", 0, 8), "2") // past the mirror's cursor 5
	var st statusDoc
	poll.Until(t, 60*time.Second, func() (bool, string) {
		var ok bool
		st, ok = getStatus(base)
		if !ok || st.State != stateSynced || st.Resyncs < 1 {
			return false, fmt.Sprintf("status %+v", st)
		}
		d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), e.b))
		return d == "", "fold differs from the bucket: " + d
	})
	select {
	case <-m.done:
		t.Fatalf("the mirror exited: %v", m.err)
	default:
	}
	if !strings.Contains(m.stderr.String(), "recreated") {
		t.Fatalf("the mirror did not log the recreated stream:\n%s", m.stderr.String())
	}
	// The new stream's writes keep flowing.
	put(t, e.b, "new.live", "3")
	waitCaughtUp(t, base, e.b)
	m.stop(t)
}

// TestAuditCommandRefusals: usage errors exit 2; a missing fold, a fold a
// mirror holds and a missing bucket are errors, and the bucket is not
// created.
func TestAuditCommandRefusals(t *testing.T) {
	srv := natstest.Start(t)
	fold, _ := makeFold(t, backendAppLog, "a", "1")
	for _, args := range [][]string{
		{"audit", "-bucket", "b"},
		{"audit", "-fold", fold},
		{"audit", "-fold", fold, "-bucket", "bad name"},
		{"audit", "-fold", fold, "-bucket", "b", "-prefix", "node"},
		{"audit", "-fold", fold, "-bucket", "b", "extra"},
		{"audit", "-fold", fold, "-bucket", "b", "-nats", srv.URL(), "-nats-store", t.TempDir()},
	} {
		_, _, err := runMain(t, "", args...)
		if exitCode(err) != 2 {
			t.Errorf("%v: %v (exit %d), want a usage error", args, err, exitCode(err))
		}
	}
	if _, _, err := runMain(t, "", "audit", "-fold", filepath.Join(t.TempDir(), "none"), "-bucket", "b", "-nats", srv.URL()); !errors.Is(err, errNoFold) {
		t.Errorf("missing fold: %v", err)
	}
	_, _, err := runMain(t, "", "audit", "-fold", fold, "-bucket", "absent", "-nats", srv.URL())
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("missing bucket: %v, want ErrBucketNotFound", err)
	}
	js, err := jetstream.New(natstest.Connect(t, srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(t.Context(), "absent"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("the audit created the bucket it checked: %v", err)
	}
	held, err := openFold(fold, "", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	openBucket(t, srv.URL(), natskv.Config{Bucket: "b"})
	if _, _, err := runMain(t, "", "audit", "-fold", fold, "-bucket", "b", "-nats", srv.URL()); !errors.Is(err, slipstream.ErrLocked) {
		t.Errorf("held fold: %v, want ErrLocked", err)
	}
}

// TestMirrorResyncOfRecreatedBucketIsVerified: the bucket is recreated
// under a running mirror with fewer revisions than the mirror's cursor, one
// old key re-put at a sequence below its old revision. The resync alone
// leaves the fold equal to the new bucket at the new stream's last sequence
// (the old keys deleted, the re-put key at its new revision), so the audit
// that follows the resync finds it equal: no backwards finding, no repair,
// no error logged, and verified.
func TestMirrorResyncOfRecreatedBucketIsVerified(t *testing.T) {
	cfg := natskv.Config{Bucket: "recreated_low", Storage: natskv.MemoryStorage}
	e := newAuditEnv(t, cfg)
	putAll(t, e.b, keysN("old.", 0, 10), "1") // cursor 10
	m := startProc(t, "mirror", "-bucket", cfg.Bucket, "-fold", e.fold, "-nats", e.srv.URL(),
		"-http", "127.0.0.1:0", "-batch-window", "1ms")
	base := m.httpBase(t)
	waitCaughtUp(t, base, e.b)
	poll.Until(t, 30*time.Second, func() (bool, string) {
		st, ok := getStatus(base)
		return ok && st.Verified && st.Audits == 1, fmt.Sprintf("status %+v", st)
	})

	if err := e.js.DeleteKeyValue(t.Context(), cfg.Bucket); err != nil {
		t.Fatal(err)
	}
	e.b = e.reopen()
	put(t, e.b, "fresh.1", "f1")
	put(t, e.b, "old.9", "again") // revision 2; the fold holds it at 10
	put(t, e.b, "fresh.2", "f2")  // the new stream's last sequence: 3
	var st statusDoc
	poll.Until(t, 60*time.Second, func() (bool, string) {
		var ok bool
		st, ok = getStatus(base)
		return ok && st.Resyncs >= 1 && st.Audits >= 2 && st.State == stateSynced,
			fmt.Sprintf("status %+v (last audit %+v)", st, st.LastAudit)
	})
	la := st.LastAudit
	if !st.Verified || la == nil || !la.Equal || la.Backwards != 0 || la.Repaired != 0 || la.Cursor != 3 || la.ServerLast != 3 {
		t.Fatalf("the audit after the resync: %+v (last audit %+v), want equal at cursor 3, verified, nothing repaired\n%s",
			st, la, m.stderr.String())
	}
	if st.Cursor != 3 || st.Keys != 3 || st.Lag != 0 {
		t.Fatalf("status %+v, want cursor 3, 3 keys, lag 0", st)
	}
	if d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), e.b)); d != "" {
		t.Fatalf("fold differs from the bucket: %s", d)
	}
	if strings.Contains(m.stderr.String(), "level=ERROR") {
		t.Fatalf("the mirror logged an error:\n%s", m.stderr.String())
	}
	m.stop(t)
}

// TestMirrorLagZeroAfterTrailingMarkersExpired: while the mirror is down, a
// key is put with a 1 s TTL; it expires, the server writes a delete marker,
// and that marker expires too. The stream's last sequence (13) is then two
// past anything a watch can deliver, and past the fold's cursor (11). The
// restarted mirror is caught up and idle: it reports lag 0, with its cursor
// still 11 (nothing it did not apply is claimed), and the next write is
// folded at its own revision.
func TestMirrorLagZeroAfterTrailingMarkersExpired(t *testing.T) {
	srv := natstest.Start(t)
	cfg := natskv.Config{Bucket: "trailing", Storage: natskv.MemoryStorage, AllowTTL: true, LimitMarkerTTL: time.Second}
	b := openBucket(t, srv.URL(), cfg)
	putAll(t, b, keysN("k.", 0, 11), "v") // cursor 11
	fold := filepath.Join(t.TempDir(), "fold")
	args := []string{"mirror", "-bucket", cfg.Bucket, "-fold", fold, "-nats", srv.URL(), "-http", "127.0.0.1:0", "-batch-window", "1ms"}
	m := startProc(t, args...)
	waitCaughtUp(t, m.httpBase(t), b)
	if c := m.stop(t); c != 11 {
		t.Fatalf("final cursor %d, want 11", c)
	}

	if _, err := b.PutTTL(t.Context(), "brief", []byte("x"), time.Second); err != nil { // 12; its marker 13
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, func() (bool, string) {
		st, err := b.Status(t.Context())
		if err != nil {
			return false, err.Error()
		}
		return st.LastSeq == 13 && st.Values == 11, fmt.Sprintf("stream last %d, %d messages", st.LastSeq, st.Values)
	})

	m = startProc(t, args...)
	base := m.httpBase(t)
	var st statusDoc
	poll.Until(t, 30*time.Second, func() (bool, string) {
		var ok bool
		st, ok = getStatus(base)
		return ok && st.State == stateSynced && st.Verified, fmt.Sprintf("status %+v", st)
	})
	if st.Cursor != 11 || st.ServerHead != 13 || st.Lag != 0 || st.CaughtUpTo != 13 {
		t.Fatalf("status %+v, want cursor 11, server_head 13, caught_up_to 13, lag 0", st)
	}
	if v := metricValue(t, base, "slipstream_lag_revisions"); v != 0 {
		t.Fatalf("slipstream_lag_revisions %v, want 0", v)
	}
	if v := metricValue(t, base, "slipstream_applied_cursor"); v != 11 {
		t.Fatalf("slipstream_applied_cursor %v, want 11", v)
	}
	put(t, b, "k.new", "v") // 14
	st = waitCaughtUp(t, base, b)
	if st.Lag != 0 || st.Cursor != 14 {
		t.Fatalf("after a write: %+v, want cursor 14, lag 0", st)
	}
	if d := diffLines(httpRange(t, base, ""), bucketLines(t, t.Context(), b)); d != "" {
		t.Fatalf("fold differs from the bucket: %s", d)
	}
	m.stop(t)
}
