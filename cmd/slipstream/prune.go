package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"
)

// PruneCommand deletes a key's payloads that no pointer can name any more.
type PruneCommand struct {
	m *Main

	from   string
	key    string
	grace  time.Duration
	asJSON bool
	store  storeFlags
	logs   logFlags
}

// DefaultPruneGrace is prune's default grace: payloads younger than this are
// kept for readers that fetched an older pointer.
const DefaultPruneGrace = time.Hour

func (c *PruneCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("prune")
	fs.StringVar(&c.from, "from", "", "store `URL` (required; see below)")
	fs.StringVar(&c.key, "key", "", "logical `key` whose payloads to prune (required)")
	fs.DurationVar(&c.grace, "grace", DefaultPruneGrace, "keep payloads modified less than `duration` ago")
	fs.BoolVar(&c.asJSON, "json", false, "print a JSON object {key, deleted}")
	c.store.register(fs)
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *PruneCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("prune", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	switch {
	case c.from == "":
		return usageErrorf("prune", "-from is required")
	case c.key == "":
		return usageErrorf("prune", "-key is required")
	case c.grace < 0:
		return usageErrorf("prune", "-grace must be >= 0")
	case len(args) != 0:
		return usageErrorf("prune", "unexpected argument %q", args[0])
	}
	logger, err := c.m.logger("prune", c.logs)
	if err != nil {
		return err
	}
	target, err := c.store.open(ctx, c.m.Getenv, "prune", c.from, c.key)
	if err != nil {
		return err
	}
	defer target.Close()
	tr := target.Transport()
	tr.Logger = logger
	n, err := tr.Prune(ctx, c.key, c.grace)
	if err != nil {
		return fmt.Errorf("prune %s in %s (deleted %d): %w", c.key, c.from, n, err)
	}
	if c.asJSON {
		return json.NewEncoder(c.m.Stdout).Encode(struct {
			Key     string `json:"key"`
			Deleted int    `json:"deleted"`
		}{c.key, n})
	}
	_, err = fmt.Fprintf(c.m.Stdout, "pruned %s: deleted %d payloads\n", c.key, n)
	return err
}

// Usage prints the command's help.
func (c *PruneCommand) Usage() {
	printUsage(c.m.Stdout, `
Delete KEY's payloads that its pointer can no longer name: those of a cursor
strictly below the pointer's, not its target, and older than -grace. Payloads
above the pointer (an upload whose pointer write failed or is in flight) and
objects whose names do not parse are kept; an unreadable pointer deletes
nothing.

Usage:

	slipstream prune --from URL --key KEY [--grace DURATION] [-json]
`+storeURLHelp, c.flagSet())
}
