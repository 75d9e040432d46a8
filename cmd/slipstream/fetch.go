package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/slipstream-kv/slipstream/objstore"
)

// FetchCommand downloads the artifact a key's pointer names.
type FetchCommand struct {
	m *Main

	from   string
	key    string
	out    string
	peek   bool
	asJSON bool
	store  storeFlags
	logs   logFlags
}

// fetchResult is the -json output of `slipstream fetch`.
type fetchResult struct {
	Key            string `json:"key"`
	Out            string `json:"out,omitempty"`
	Cursor         uint64 `json:"cursor"`
	Backend        string `json:"backend"`
	BackendVersion string `json:"backend_version"`
	Files          int    `json:"files"`
}

func (c *FetchCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("fetch")
	fs.StringVar(&c.from, "from", "", "store `URL` (required; see below)")
	fs.StringVar(&c.key, "key", "", "logical `key` of the published artifact (required)")
	fs.StringVar(&c.out, "out", "", "artifact `directory` to create: absent or empty (required unless -peek)")
	fs.BoolVar(&c.peek, "peek", false, "only print the published manifest's cursor and backend")
	fs.BoolVar(&c.asJSON, "json", false, "print a JSON object")
	c.store.register(fs)
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *FetchCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("fetch", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	switch {
	case c.from == "":
		return usageErrorf("fetch", "-from is required")
	case c.key == "":
		return usageErrorf("fetch", "-key is required")
	case c.out == "" && !c.peek:
		return usageErrorf("fetch", "-out is required")
	case c.out != "" && c.peek:
		return usageErrorf("fetch", "-out and -peek do not go together")
	case len(args) != 0:
		return usageErrorf("fetch", "unexpected argument %q", args[0])
	}
	logger, err := c.m.logger("fetch", c.logs)
	if err != nil {
		return err
	}
	target, err := c.store.open(ctx, c.m.Getenv, "fetch", c.from, c.key)
	if err != nil {
		return err
	}
	defer target.Close()
	tr := target.Transport()
	tr.Logger = logger
	res := fetchResult{Key: c.key}
	if c.peek {
		m, err := tr.Manifest(ctx, c.key)
		if errors.Is(err, objstore.ErrNotPublished) {
			return underStore(err, c.from)
		}
		if err != nil {
			return fmt.Errorf("fetch %s from %s: %w", c.key, c.from, err)
		}
		res.Cursor, res.Backend, res.BackendVersion, res.Files = m.Cursor.Rank(), m.Backend, m.BackendVersion, len(m.Files)
	} else {
		out, err := filepath.Abs(c.out)
		if err != nil {
			return err
		}
		m, err := tr.Download(ctx, c.key, out)
		if errors.Is(err, objstore.ErrNotPublished) {
			return underStore(err, c.from)
		}
		if err != nil {
			return fmt.Errorf("fetch %s from %s: %w", c.key, c.from, err)
		}
		res.Out = c.out
		res.Cursor, res.Backend, res.BackendVersion, res.Files = m.Cursor.Rank(), m.Backend, m.BackendVersion, len(m.Files)
	}
	if c.asJSON {
		return json.NewEncoder(c.m.Stdout).Encode(res)
	}
	if c.peek {
		_, err = fmt.Fprintf(c.m.Stdout, "%s: cursor %d, backend %s (version %s), %d files\n", c.key, res.Cursor, res.Backend, res.BackendVersion, res.Files)
		return err
	}
	_, err = fmt.Fprintf(c.m.Stdout, "fetched %s into %s: cursor %d, backend %s (version %s), %d files (not yet verified: import verifies)\n",
		c.key, c.out, res.Cursor, res.Backend, res.BackendVersion, res.Files)
	return err
}

// Usage prints the command's help.
func (c *FetchCommand) Usage() {
	printUsage(c.m.Stdout, `
Download the artifact KEY's pointer names into a new directory, checking
the archive on the way (regular files and directories only, nothing outside
the directory, embedded manifest equal to the pointer). File contents are
verified by 'slipstream import' (or 'verify'), not here.

Usage:

	slipstream fetch --from URL --key KEY --out DIR [-json]
	slipstream fetch --from URL --key KEY -peek [-json]
`+storeURLHelp, c.flagSet())
}
