package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/slipstream-kv/slipstream/artifact"
)

// ImportCommand installs an artifact as a new fold.
type ImportCommand struct {
	m *Main

	art     string
	foldDir string
	asJSON  bool
	logs    logFlags
}

func (c *ImportCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("import")
	fs.StringVar(&c.art, "artifact", "", "artifact `directory` to import (required)")
	fs.StringVar(&c.foldDir, "fold", "", "fold `directory` to create (required; absent or empty)")
	fs.BoolVar(&c.asJSON, "json", false, "print a JSON object")
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *ImportCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("import", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	switch {
	case len(args) != 0:
		return usageErrorf("import", "unexpected argument %q", args[0])
	case c.art == "":
		return usageErrorf("import", "-artifact is required")
	case c.foldDir == "":
		return usageErrorf("import", "-fold is required")
	}
	logger, err := c.m.logger("import", c.logs)
	if err != nil {
		return err
	}
	m, err := artifact.Import(c.art, c.foldDir, artifactBackends(logger)...)
	if err != nil {
		return fmt.Errorf("import %s: %w", c.art, err)
	}
	s := summarize(c.art, m)
	s.Fold = c.foldDir
	return s.print(c.m.Stdout, c.asJSON)
}

// Usage prints the command's help.
func (c *ImportCommand) Usage() {
	printUsage(c.m.Stdout, `
Import an artifact as a new fold at -fold, which must not exist or be an
empty directory. The artifact is verified as 'slipstream verify' does while
its files are copied (and fsynced) into a hidden directory beside -fold; the
copy is opened by its backend and must recover the manifest's cursor; only
then is it renamed into place. On failure -fold is left as it was and the
artifact is never modified.

Then 'slipstream mirror --fold DIR' resumes from the artifact's cursor and
receives only the updates after it. An artifact does not name its bucket:
the mirror compares the imported fold with its -bucket first (a fold of
another bucket is refused), and reports ready only once its audit has
verified the fold; it then records the bucket in the fold.

Usage:

	slipstream import --artifact ARTIFACT --fold DIR [-json]
`, c.flagSet())
}
