package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/slipstream-kv/slipstream"
)

// GetCommand prints one key's value from a fold, offline.
type GetCommand struct {
	m *Main

	foldDir string
	asJSON  bool
	logs    logFlags
}

func (c *GetCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("get")
	fs.StringVar(&c.foldDir, "fold", "", "fold `directory` (required)")
	fs.BoolVar(&c.asJSON, "json", false, "print a JSON object {key, value (base64), revision} instead of the raw value")
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *GetCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("get", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	if c.foldDir == "" {
		return usageErrorf("get", "-fold is required")
	}
	if len(args) != 1 {
		return usageErrorf("get", "want exactly one KEY, got %d arguments", len(args))
	}
	f, err := c.m.openOffline("get", c.foldDir, c.logs)
	if err != nil {
		return err
	}
	defer f.Close()
	e, ok, err := f.Get(args[0])
	if err != nil {
		return fmt.Errorf("get %q: %w", args[0], err)
	}
	if !ok {
		return fmt.Errorf("%w: %q", slipstream.ErrNotFound, args[0])
	}
	if c.asJSON {
		return json.NewEncoder(c.m.Stdout).Encode(newRangeLine(e))
	}
	_, err = c.m.Stdout.Write(e.Value)
	return err
}

// Usage prints the command's help.
func (c *GetCommand) Usage() {
	printUsage(c.m.Stdout, `
Print the value of KEY from a fold, offline. The value's bytes are written to
stdout as they are; a missing key exits 1. A fold held by a running applog
mirror is read read-only; a pebble one is refused (query the mirror's --http).

Usage:

	slipstream get --fold DIR [-json] KEY
`, c.flagSet())
}
