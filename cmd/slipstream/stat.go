package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
)

// StatCommand prints a fold's cursor, key count, backend and size, offline.
type StatCommand struct {
	m *Main

	foldDir string
	asJSON  bool
	logs    logFlags
}

// foldStat is the output of `slipstream stat`.
type foldStat struct {
	Fold     string `json:"fold"`
	Backend  string `json:"backend"`
	Cursor   uint64 `json:"cursor"`
	Keys     int    `json:"keys"`
	Bytes    int64  `json:"bytes"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Binding is the bucket and scope the fold is bound to (binding.go);
	// nil when it has none.
	Binding *foldBinding `json:"binding,omitempty"`
}

func (c *StatCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("stat")
	fs.StringVar(&c.foldDir, "fold", "", "fold `directory` (required)")
	fs.BoolVar(&c.asJSON, "json", false, "print a JSON object")
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *StatCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("stat", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	if c.foldDir == "" {
		return usageErrorf("stat", "-fold is required")
	}
	if len(args) != 0 {
		return usageErrorf("stat", "unexpected argument %q", args[0])
	}
	f, err := c.m.openOffline("stat", c.foldDir, c.logs)
	if err != nil {
		return err
	}
	defer f.Close()
	keys, err := f.Keys()
	if err != nil {
		return fmt.Errorf("count keys: %w", err)
	}
	size, err := f.Size()
	if err != nil {
		return err
	}
	bd, err := readBinding(c.foldDir)
	if err != nil {
		return err
	}
	st := foldStat{
		Fold:     c.foldDir,
		Backend:  f.Backend,
		Cursor:   f.Cursor().Rank(),
		Keys:     keys,
		Bytes:    size,
		ReadOnly: f.ReadOnly,
		Binding:  bd,
	}
	if c.asJSON {
		return json.NewEncoder(c.m.Stdout).Encode(st)
	}
	tw := tabwriter.NewWriter(c.m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "fold:\t%s\n", st.Fold)
	fmt.Fprintf(tw, "backend:\t%s\n", st.Backend)
	fmt.Fprintf(tw, "cursor:\t%d\n", st.Cursor)
	fmt.Fprintf(tw, "keys:\t%d\n", st.Keys)
	fmt.Fprintf(tw, "bytes:\t%d\n", st.Bytes)
	if bd != nil {
		fmt.Fprintf(tw, "bucket:\t%s (%s)\n", bd.Bucket, bd.scopeText())
	} else {
		fmt.Fprintf(tw, "bucket:\tnone recorded (imported, or not yet verified by a mirror)\n")
	}
	return tw.Flush()
}

// Usage prints the command's help.
func (c *StatCommand) Usage() {
	printUsage(c.m.Stdout, `
Print a fold's cursor (the last revision folded; 0 for none), live key count,
backend, size on disk, and the bucket and scope it is bound to, offline.

Usage:

	slipstream stat --fold DIR [-json]
`, c.flagSet())
}
