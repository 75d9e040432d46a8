package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream/natskv"
)

// benchPublisherCommand is the hidden subcommand bench starts as a separate
// process for its live phase, so the paced puts do not share the measured
// mirror's scheduler and CPU accounting.
const benchPublisherCommand = "bench-publisher"

// runPublisher runs the live puts in a child process (this binary's
// bench-publisher) and returns each acknowledged put's sequence and the
// wall-clock time its acknowledgement arrived, and how long the puts took.
func (c *BenchCommand) runPublisher(ctx context.Context, dial natskv.DialConfig, total int) ([]ackMark, time.Duration, error) {
	exe := c.m.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, 0, fmt.Errorf("find this binary for the live publisher: %w", err)
		}
	}
	args := []string{benchPublisherCommand, "-nats", dial.URL, "-keys", strconv.Itoa(c.keys),
		"-value-size", strconv.Itoa(c.valueSize), "-puts", strconv.Itoa(total), "-rate", strconv.Itoa(c.liveRate)}
	if dial.CredsFile != "" {
		args = append(args, "-creds", dial.CredsFile)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, 0, fmt.Errorf("live publisher: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	acks, sent, err := parsePublisherOutput(stdout.Bytes())
	if err != nil {
		return nil, 0, fmt.Errorf("live publisher: %w", err)
	}
	if len(acks) != total {
		return nil, 0, fmt.Errorf("live publisher: %d acknowledged puts, want %d", len(acks), total)
	}
	if sent <= 0 {
		sent = time.Since(start)
	}
	return acks, sent, nil
}

// parsePublisherOutput reads the publisher's report: a line "sent NANOS",
// then one line "SEQ UNIXNANOS" per acknowledged put.
func parsePublisherOutput(b []byte) ([]ackMark, time.Duration, error) {
	var (
		acks []ackMark
		sent time.Duration
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			return nil, 0, fmt.Errorf("bad report line %q", sc.Text())
		}
		if f[0] == "sent" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("bad report line %q", sc.Text())
			}
			sent = time.Duration(n)
			continue
		}
		seq, err1 := strconv.ParseUint(f[0], 10, 64)
		at, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, 0, fmt.Errorf("bad report line %q", sc.Text())
		}
		acks = append(acks, ackMark{seq: seq, at: time.Unix(0, at)})
	}
	return acks, sent, sc.Err()
}

// benchPublisher paces puts of random existing bench keys at a rate from
// liveWorkers goroutines, each with its own connection and share of the
// rate (synchronous publishes, so each acknowledgement is timed as it
// arrives), and reports them on stdout for parsePublisherOutput.
type benchPublisher struct {
	m *Main

	natsURL   string
	creds     string
	keys      int
	valueSize int
	puts      int
	rate      int
}

func (c *benchPublisher) Run(ctx context.Context, args []string) error {
	fs := newFlagSet(benchPublisherCommand)
	fs.StringVar(&c.natsURL, "nats", "", "NATS server `URL`")
	fs.StringVar(&c.creds, "creds", "", "NATS credentials `file`")
	fs.IntVar(&c.keys, "keys", 0, "`number` of bench keys to overwrite at random")
	fs.IntVar(&c.valueSize, "value-size", 256, "value size in `bytes`")
	fs.IntVar(&c.puts, "puts", 0, "`number` of puts")
	fs.IntVar(&c.rate, "rate", 0, "puts per `second`")
	rest, err := parseFlags(benchPublisherCommand, fs, args, func() {})
	if err != nil {
		return err
	}
	switch {
	case len(rest) != 0:
		return usageErrorf(benchPublisherCommand, "unexpected argument %q", rest[0])
	case c.natsURL == "":
		return usageErrorf(benchPublisherCommand, "-nats is required")
	case c.keys <= 0 || c.puts <= 0 || c.rate <= 0 || c.valueSize <= 0:
		return usageErrorf(benchPublisherCommand, "-keys, -puts, -rate and -value-size must be > 0")
	}
	dial := natskv.DialConfig{URL: c.natsURL, CredsFile: c.creds}

	// Connect every worker before the clock starts.
	conns := make([]jetstream.JetStream, liveWorkers)
	for w := range liveWorkers {
		nc, err := natskv.Dial(withName(dial, fmt.Sprintf("slipstream bench live %d", w)))
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer nc.Close()
		if conns[w], err = jetstream.New(nc); err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
	}
	acks := make([][]ackMark, liveWorkers)
	errs := make([]error, liveWorkers)
	interval := time.Second / time.Duration(c.rate)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range liveWorkers {
		wg.Go(func() {
			rng := rand.New(rand.NewChaCha8([32]byte{byte(w), 2}))
			val := make([]byte, c.valueSize)
			for i := w; i < c.puts; i += liveWorkers {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				fillValue(rng, val)
				ack, err := conns[w].Publish(ctx, kvSubject(rng.IntN(c.keys)), val)
				if err != nil {
					errs[w] = fmt.Errorf("publish: %w", err)
					return
				}
				acks[w] = append(acks[w], ackMark{seq: ack.Sequence, at: time.Now()})
			}
		})
	}
	wg.Wait()
	sent := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	all := slices.Concat(acks...)
	bw := bufio.NewWriter(c.m.Stdout)
	fmt.Fprintf(bw, "sent %d\n", sent.Nanoseconds())
	for _, a := range all {
		fmt.Fprintf(bw, "%d %d\n", a.seq, a.at.UnixNano())
	}
	return bw.Flush()
}
