package main

import (
	"context"
	"flag"
)

// VerifyCommand checks an artifact.
type VerifyCommand struct {
	m *Main

	asJSON bool
	logs   logFlags
}

func (c *VerifyCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("verify")
	fs.BoolVar(&c.asJSON, "json", false, "print a JSON object")
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *VerifyCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("verify", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usageErrorf("verify", "want exactly one ARTIFACT directory, got %d arguments", len(args))
	}
	logger, err := c.m.logger("verify", c.logs)
	if err != nil {
		return err
	}
	m, err := verifyArtifact(args[0], logger)
	if err != nil {
		return err
	}
	return summarize(args[0], m).print(c.m.Stdout, c.asJSON)
}

// Usage prints the command's help.
func (c *VerifyCommand) Usage() {
	printUsage(c.m.Stdout, `
Verify an artifact in place, without modifying it: the manifest parses
strictly; the backend and its format generation are known; the payload holds
only the declared regular files, each with the declared size and BLAKE3
digest; and the backend opens the payload at exactly the manifest's cursor.
Prints the backend, cursor, files and bytes and exits 0 when valid; exits 1
with the reason when not.

Usage:

	slipstream verify [-json] ARTIFACT
`, c.flagSet())
}
