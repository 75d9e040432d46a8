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

// PublishCommand uploads an artifact and moves the key's pointer to it unless
// a newer artifact is already published.
type PublishCommand struct {
	m *Main

	artifact  string
	to        string
	key       string
	nonAtomic bool
	asJSON    bool
	store     storeFlags
	logs      logFlags
}

// publishResult is the -json output of `slipstream publish`.
type publishResult struct {
	Outcome      string `json:"outcome"`
	Key          string `json:"key"`
	Cursor       uint64 `json:"cursor"`
	RemoteCursor uint64 `json:"remote_cursor"`
	Payload      string `json:"payload"`
}

func (c *PublishCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("publish")
	fs.StringVar(&c.artifact, "artifact", "", "artifact `directory` to publish (required)")
	fs.StringVar(&c.to, "to", "", "store `URL` (required; see below)")
	fs.StringVar(&c.key, "key", "", "logical `key` of the published artifact, e.g. edge/us-east/latest (required)")
	fs.BoolVar(&c.nonAtomic, "non-atomic-pointer-fallback", false, "on a store without conditional replace (file://), overwrite the pointer without CAS: racing publishers may then move it backwards")
	fs.BoolVar(&c.asJSON, "json", false, "print a JSON object")
	c.store.register(fs)
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *PublishCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("publish", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	switch {
	case c.artifact == "":
		return usageErrorf("publish", "-artifact is required")
	case c.to == "":
		return usageErrorf("publish", "-to is required")
	case c.key == "":
		return usageErrorf("publish", "-key is required")
	case len(args) != 0:
		return usageErrorf("publish", "unexpected argument %q", args[0])
	}
	logger, err := c.m.logger("publish", c.logs)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(c.artifact)
	if err != nil {
		return err
	}
	target, err := c.store.open(ctx, c.m.Getenv, "publish", c.to, c.key)
	if err != nil {
		return err
	}
	defer target.Close()
	// A damaged artifact must not become what the fleet's pointer names:
	// every node bootstrapping from it would refuse it at import.
	if _, err := verifyArtifact(c.artifact, logger); err != nil {
		return fmt.Errorf("publish %s: not published: %w", c.artifact, err)
	}
	tr := target.Transport()
	tr.NonAtomicPointerFallback = c.nonAtomic
	tr.Logger = logger
	res, err := tr.Upload(ctx, c.key, dir)
	if errors.Is(err, objstore.ErrNotImplemented) {
		return fmt.Errorf("publish %s to %s: the pointer of %s exists and this store cannot replace it atomically; "+
			"if no other publisher writes this key, rerun with -non-atomic-pointer-fallback (%w)", c.artifact, c.to, c.key, objstore.ErrNotImplemented)
	}
	if err != nil {
		return fmt.Errorf("publish %s to %s: %w", c.artifact, c.to, err)
	}
	out := publishResult{
		Outcome: res.Outcome.String(),
		Key:     c.key,
		Cursor:  res.Manifest.Cursor.Rank(),
		Payload: res.Payload,
	}
	out.RemoteCursor = out.Cursor
	if res.Outcome == objstore.Superseded {
		out.RemoteCursor = res.Remote.Rank()
	}
	if c.asJSON {
		return json.NewEncoder(c.m.Stdout).Encode(out)
	}
	if res.Outcome == objstore.Superseded {
		_, err = fmt.Fprintf(c.m.Stdout, "superseded %s: artifact cursor %d, remote cursor %d is newer (pointer unchanged; prune collects payload %s)\n",
			c.key, out.Cursor, out.RemoteCursor, out.Payload)
		return err
	}
	_, err = fmt.Fprintf(c.m.Stdout, "published %s: artifact cursor %d, remote cursor %d (payload %s)\n", c.key, out.Cursor, out.RemoteCursor, out.Payload)
	return err
}

// Usage prints the command's help.
func (c *PublishCommand) Usage() {
	printUsage(c.m.Stdout, `
Publish an artifact (see 'slipstream export') under KEY: verify it as
'slipstream verify' does (a damaged artifact is refused, exit 1), upload it as
a payload object, then move KEY's pointer to it with a conditional write, unless the
pointer already names a strictly newer cursor. Prints "published" or
"superseded" with the artifact's and the remote cursor; both exit 0. The
pointer never moves backwards and always names an uploaded payload.

Usage:

	slipstream publish --artifact DIR --to URL --key KEY [-json]
`+storeURLHelp, c.flagSet())
}
