package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/natskv"
)

// KVCommand is a small NATS KV client: put, get, del, purge and ls.
type KVCommand struct {
	m *Main

	bucket  string
	conn    natsFlags
	timeout time.Duration
	asJSON  bool
	logs    logFlags
}

func (c *KVCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("kv")
	fs.StringVar(&c.bucket, "bucket", "", "bucket `name` (required; put creates it if missing)")
	c.conn.register(fs, "NATS server `URL` (default "+DefaultNATSURL+", a local mirror's embedded server)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "bound on the whole operation")
	fs.BoolVar(&c.asJSON, "json", false, "get: print a JSON object {key, value (base64), revision}; put: {revision}")
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *KVCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("kv", "missing action: put, get, del, purge or ls")
	}
	action := args[0]
	if action == "-h" || action == "-help" || action == "--help" || action == "help" {
		c.Usage()
		return flag.ErrHelp
	}
	var minArgs, maxArgs int
	switch action {
	case "put":
		minArgs, maxArgs = 1, 2
	case "get", "del", "purge":
		minArgs, maxArgs = 1, 1
	case "ls":
		minArgs, maxArgs = 0, 1
	default:
		return usageErrorf("kv", "unknown action %q: want put, get, del, purge or ls", action)
	}
	args, err := parseFlags("kv", c.flagSet(), args[1:], c.Usage)
	if err != nil {
		return err
	}
	c.conn.applyEnv(c.m.Getenv)
	switch {
	case c.bucket == "":
		return usageErrorf("kv", "-bucket is required")
	case !bucketNameRE.MatchString(c.bucket):
		return usageErrorf("kv", "invalid -bucket %q: use letters, digits, '-' and '_'", c.bucket)
	case len(args) < minArgs || len(args) > maxArgs:
		return usageErrorf("kv", "kv %s: wrong number of arguments (%d)", action, len(args))
	case c.timeout <= 0:
		return usageErrorf("kv", "-timeout must be > 0")
	}
	logger, err := c.m.logger("kv", c.logs)
	if err != nil {
		return err
	}

	// Read stdin before connecting: a slow producer does not hold a
	// connection open against the timeout.
	var value []byte
	if action == "put" {
		if len(args) == 2 {
			value = []byte(args[1])
		} else if value, err = io.ReadAll(c.m.Stdin); err != nil {
			return fmt.Errorf("read value from stdin: %w", err)
		}
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	dialCfg, err := c.conn.dialConfig(DefaultNATSURL, "slipstream kv")
	if err != nil {
		return err
	}
	nc, err := natskv.Dial(dialCfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	if action != "put" {
		// Only put creates the bucket: reading or deleting from a mistyped
		// bucket name must not create it on the server.
		if err := bucketExists(ctx, nc, c.bucket); err != nil {
			return err
		}
	}
	b, err := natskv.Open(ctx, nc, natskv.Config{Bucket: c.bucket, MaxBytes: DefaultBucketMaxBytes, Timeout: c.timeout, Logger: logger})
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", c.bucket, err)
	}

	key := ""
	if len(args) > 0 {
		key = args[0]
	}
	switch action {
	case "put":
		rev, err := b.Put(ctx, key, value)
		if err != nil {
			return fmt.Errorf("put %q: %w", key, err)
		}
		if c.asJSON {
			return json.NewEncoder(c.m.Stdout).Encode(struct {
				Revision uint64 `json:"revision"`
			}{rev})
		}
		_, err = fmt.Fprintln(c.m.Stdout, rev)
		return err
	case "get":
		e, ok, err := b.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("get %q: %w", key, err)
		}
		if !ok {
			return fmt.Errorf("%w: %q", slipstream.ErrNotFound, key)
		}
		if c.asJSON {
			return json.NewEncoder(c.m.Stdout).Encode(newRangeLine(e))
		}
		_, err = c.m.Stdout.Write(e.Value)
		return err
	case "del":
		if _, err := b.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete %q: %w", key, err)
		}
		return nil
	case "purge":
		if _, err := b.Purge(ctx, key); err != nil {
			return fmt.Errorf("purge %q: %w", key, err)
		}
		return nil
	default: // ls
		keys, err := b.Keys(ctx, key)
		if err != nil {
			return fmt.Errorf("list keys: %w", err)
		}
		slices.Sort(keys)
		w := bufio.NewWriter(c.m.Stdout)
		for _, k := range keys {
			fmt.Fprintln(w, k)
		}
		return w.Flush()
	}
}

// Usage prints the command's help.
func (c *KVCommand) Usage() {
	printUsage(c.m.Stdout, `
A small NATS KV client, so scripts need nothing else installed. By default it
talks to nats://127.0.0.1:4222, the embedded server of a mirror started
without -nats. The connection flags are natscli's; each falls back to the
environment variable shown, then to the -context. put creates the bucket if
it is missing; get, del, purge and ls on a missing bucket exit 1.

Usage:

	slipstream kv put   --bucket NAME KEY [VALUE]   (VALUE from stdin if omitted; prints the revision)
	slipstream kv get   --bucket NAME KEY           (prints the value's bytes; a missing key exits 1)
	slipstream kv del   --bucket NAME KEY           (writes a delete marker)
	slipstream kv purge --bucket NAME KEY           (removes the key and its history)
	slipstream kv ls    --bucket NAME [PREFIX]      (prints live keys, sorted)
`, c.flagSet())
}

// bucketExists returns an error naming bucket when it does not exist on nc's
// server (or cannot be looked up); it never creates it.
func bucketExists(ctx context.Context, nc *nats.Conn, bucket string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	_, err = js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("bucket %s does not exist (%w)", bucket, err)
	}
	if err != nil {
		return fmt.Errorf("look up bucket %s: %w", bucket, err)
	}
	return nil
}
