package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream/internal/natstest"
)

// runBench runs the bench in process, with the built binary as its live
// publisher.
func runBench(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Executable: binary(t)}
	err = m.Run(t.Context(), append([]string{"bench"}, args...))
	return out.String(), errOut.String(), err
}

// TestPublisherOutput pins the live publisher's report format and refuses
// anything else.
func TestPublisherOutput(t *testing.T) {
	acks, sent, err := parsePublisherOutput([]byte("sent 1500\n7 1000000000\n9 1000000500\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sent != 1500 || len(acks) != 2 || acks[0].seq != 7 || acks[1].seq != 9 || acks[1].at.Sub(acks[0].at) != 500 {
		t.Fatalf("sent %v, acks %+v", sent, acks)
	}
	for _, bad := range []string{"7\n", "x 1\n", "7 y\n", "sent z\n", "1 2 3\n"} {
		if _, _, err := parsePublisherOutput([]byte(bad)); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
}

// checkBenchReport checks the structure of a bench report: every round's
// phases present in order, every count as asked, every figure positive and
// consistent, the summaries the medians of their runs.
func checkBenchReport(t *testing.T, rep benchReport, rounds, keys, delta, puts int, backends ...string) {
	t.Helper()
	if rep.Rounds != rounds || len(rep.Phases) != rounds*(len(backends)+1)+1 {
		t.Fatalf("%d rounds, %d hydration phases, want %d rounds of raw, %v, then raw", rep.Rounds, len(rep.Phases), rounds, backends)
	}
	for i, p := range rep.Phases {
		want, round := "", i/(len(backends)+1)+1
		if j := i % (len(backends) + 1); j > 0 {
			want = backends[j-1]
		}
		if p.Backend != want || p.Round != round || p.Keys != keys || p.Seconds <= 0 || p.KeysPerSec <= 0 || p.Ratio <= 0 || p.Ratio > 1.0001 && want == "" {
			t.Fatalf("phase %d: %+v (want backend %q, round %d, %d keys)", i, p, want, round, keys)
		}
	}
	if len(rep.Hydration) != len(backends)+1 {
		t.Fatalf("%d summaries, want raw and %v", len(rep.Hydration), backends)
	}
	for i, h := range rep.Hydration {
		want, runs := "", rounds+1
		if i > 0 {
			want, runs = backends[i-1], rounds
		}
		if h.Backend != want || h.Runs != runs || h.MedianSeconds <= 0 || h.MedianPerSec <= 0 {
			t.Fatalf("summary %d: %+v (want backend %q, %d runs)", i, h, want, runs)
		}
		if want != "" && (h.MinRatio > h.MedianRatio || h.MedianRatio > h.MaxRatio || h.MinRatio <= 0) {
			t.Fatalf("summary %d ratios out of order: %+v", i, h)
		}
	}
	if len(rep.Restarts) != len(backends) || len(rep.Live) != len(backends)+1 {
		t.Fatalf("%d restarts and %d live phases, want %d restarts and raw plus %[3]d live phases", len(rep.Restarts), len(rep.Live), len(backends))
	}
	if l := rep.Live[0]; l.Backend != "" || l.Puts != puts || l.AchievedRate <= 0 || l.P50Millis > l.P99Millis || l.P99Millis > l.MaxMillis {
		t.Fatalf("raw live: %+v", l)
	}
	for i, b := range backends {
		r := rep.Restarts[i]
		if r.Backend != b || r.Delta != delta || r.Seconds <= 0 || r.FreshSeconds != rep.Hydration[i+1].MedianSeconds || r.Ratio <= 0 {
			t.Fatalf("restart %d: %+v", i, r)
		}
		l := rep.Live[i+1]
		if l.Backend != b || l.Puts != puts || l.AchievedRate <= 0 || l.P50Millis < 0 || l.P50Millis > l.P99Millis || l.P99Millis > l.MaxMillis {
			t.Fatalf("live %d: %+v", i, l)
		}
	}
}

// TestBenchSummary pins the ratios and medians: a mirror run against the
// faster raw run around its round, the median over rounds, a restart
// against its backend's median fresh hydration.
func TestBenchSummary(t *testing.T) {
	rep := benchReport{
		Phases: []benchPhase{
			{Name: "raw WatchAll", Round: 1, Seconds: 1, KeysPerSec: 100},
			{Name: "mirror", Round: 1, Backend: "applog", Seconds: 2, KeysPerSec: 90},
			{Name: "raw WatchAll", Round: 2, Seconds: 1, KeysPerSec: 50},
			{Name: "mirror", Round: 2, Backend: "applog", Seconds: 4, KeysPerSec: 40},
			{Name: "raw WatchAll", Round: 3, Seconds: 1, KeysPerSec: 80},
			{Name: "mirror", Round: 3, Backend: "applog", Seconds: 3, KeysPerSec: 60},
			{Name: "raw WatchAll", Round: 4, Seconds: 1, KeysPerSec: 40},
		},
		Restarts: []benchRestart{{Backend: "applog", Seconds: 0.3}},
	}
	rep.summarize()
	// round 1: 90/max(100,50); round 2: 40/max(50,80); round 3: 60/max(80,40)
	wantRatios := []float64{0.9, 0.5, 0.75}
	for i, w := range wantRatios {
		if got := rep.Phases[2*i+1].Ratio; math.Abs(got-w) > 1e-9 {
			t.Fatalf("round %d ratio %v, want %v", i+1, got, w)
		}
	}
	if got := rep.Phases[2].Ratio; got != 0.5 {
		t.Fatalf("raw ratio %v, want 0.5 of the fastest raw", got)
	}
	h := rep.Hydration[1]
	if h.Backend != "applog" || h.Runs != 3 || h.MedianRatio != 0.75 || h.MinRatio != 0.5 || h.MaxRatio != 0.9 || h.MedianSeconds != 3 || h.MedianPerSec != 60 {
		t.Fatalf("summary %+v", h)
	}
	if r := rep.Restarts[0]; r.FreshSeconds != 3 || math.Abs(r.Ratio-0.1) > 1e-9 {
		t.Fatalf("restart %+v, want 0.3 s against the median fresh 3 s", r)
	}
	if raw := rep.Hydration[0]; raw.Runs != 4 || raw.MedianPerSec != 65 {
		t.Fatalf("raw summary %+v, want 4 runs, median 65", raw)
	}
}

// TestBenchEmbedded runs the whole bench, small, on its embedded server.
func TestBenchEmbedded(t *testing.T) {
	out, _, err := runBench(t, "-keys", "3000", "-rounds", "2", "-delta", "200", "-live-rate", "1000",
		"-live-duration", "300ms", "-json", "-log-level", "warn", "-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if !strings.HasPrefix(rep.Server, "embedded") || rep.Keys != 3000 || rep.RawBytes != 3000*(11+256) {
		t.Fatalf("report header: %+v", rep)
	}
	checkBenchReport(t, rep, 2, 3000, 200, 300, backendAppLog, backendPebble)
}

// TestBenchAgainstASeparateServer runs the bench against a given server
// whose bench bucket already holds a stray key: the bucket is recreated, so
// every count is the bench's own. The table names the server.
func TestBenchAgainstASeparateServer(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.URL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: benchBucket})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "stray", []byte("x")); err != nil {
		t.Fatal(err)
	}
	out, _, err := runBench(t, "-nats", srv.URL(), "-backend", "applog", "-keys", "2000",
		"-rounds", "1", "-delta", "50", "-live-rate", "500", "-live-duration", "200ms", "-log-level", "warn", "-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{srv.URL(), "hydration, mirror", "restart after a 50-key delta", "live lag p50 / p99", "raw watch"} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
	if _, err := kv.Get(ctx, "stray"); !errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the stray key survived the bench: %v", err)
	}
}

// TestLiveLags pins the matching of acknowledged puts to applies: the first
// apply whose cursor covers the put's sequence, a put applied before its
// acknowledgement counted as 0, a put no apply covers an error.
func TestLiveLags(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	marks := []applyMark{{cursor: 10, at: at(20)}, {cursor: 12, at: at(30)}, {cursor: 20, at: at(50)}}
	acks := []ackMark{
		{seq: 10, at: at(15)}, // first apply: 5ms
		{seq: 11, at: at(18)}, // cursor 12: 12ms
		{seq: 13, at: at(49)}, // cursor 20: 1ms
		{seq: 20, at: at(60)}, // applied before the ack: 0
	}
	lags, early, err := liveLags(acks, marks)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 12 * time.Millisecond}
	if early != 1 || len(lags) != len(want) {
		t.Fatalf("lags %v early %d", lags, early)
	}
	for i := range want {
		if lags[i] != want[i] {
			t.Fatalf("lags %v, want %v", lags, want)
		}
	}
	if p := percentile(lags, 0.5); p != time.Millisecond {
		t.Fatalf("p50 %v", p)
	}
	if p := percentile(lags, 0.99); p != 12*time.Millisecond {
		t.Fatalf("p99 %v", p)
	}
	if _, _, err := liveLags([]ackMark{{seq: 21, at: at(1)}}, marks); err == nil {
		t.Fatal("a put no apply covers was matched")
	}
}
