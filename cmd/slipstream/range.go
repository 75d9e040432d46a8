package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/slipstream-kv/slipstream"
)

// RangeCommand prints a fold's entries under a prefix as JSON lines, offline.
type RangeCommand struct {
	m *Main

	foldDir string
	logs    logFlags
}

func (c *RangeCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("range")
	fs.StringVar(&c.foldDir, "fold", "", "fold `directory` (required)")
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *RangeCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("range", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	if c.foldDir == "" {
		return usageErrorf("range", "-fold is required")
	}
	if len(args) > 1 {
		return usageErrorf("range", "want at most one PREFIX, got %d arguments", len(args))
	}
	var prefix string
	if len(args) == 1 {
		prefix = args[0]
	}
	f, err := c.m.openOffline("range", c.foldDir, c.logs)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(c.m.Stdout, 64<<10)
	if err := writeRange(ctx, w, f, prefix); err != nil {
		return err
	}
	return w.Flush()
}

// writeRange writes the entries under prefix as JSON lines, in key order.
func writeRange(ctx context.Context, w *bufio.Writer, st slipstream.Store, prefix string) error {
	enc := json.NewEncoder(w)
	err := st.ForEachInRange(prefix, func(e slipstream.Entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return enc.Encode(newRangeLine(e))
	})
	if err != nil {
		return fmt.Errorf("range %q: %w", prefix, err)
	}
	return nil
}

// Usage prints the command's help.
func (c *RangeCommand) Usage() {
	printUsage(c.m.Stdout, `
Print the entries of a fold whose keys start with PREFIX (all entries without
one) as JSON lines in key order, offline:

	{"key":"orders.1","value":"<base64>","revision":42}

Usage:

	slipstream range --fold DIR [PREFIX]
`, c.flagSet())
}
