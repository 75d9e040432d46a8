package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime/debug"
)

// VersionCommand prints the build's version.
type VersionCommand struct {
	m *Main

	asJSON bool
}

// buildVersion describes the running binary.
type buildVersion struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Revision  string `json:"vcs_revision,omitempty"`
	Time      string `json:"vcs_time,omitempty"`
	Modified  bool   `json:"vcs_modified,omitempty"`
}

// readBuildVersion reads the module version and VCS stamp from the binary.
func readBuildVersion() buildVersion {
	v := buildVersion{Version: "(devel)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.GoVersion = bi.GoVersion
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String renders v on one line.
func (v buildVersion) String() string {
	s := "slipstream " + v.Version
	if v.GoVersion != "" {
		s += " " + v.GoVersion
	}
	if v.Revision != "" {
		s += " " + v.Revision
		if v.Modified {
			s += "+dirty"
		}
	}
	return s
}

func (c *VersionCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("version")
	fs.BoolVar(&c.asJSON, "json", false, "print a JSON object")
	return fs
}

// Run executes the command.
func (c *VersionCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("version", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageErrorf("version", "unexpected argument %q", args[0])
	}
	v := readBuildVersion()
	if c.asJSON {
		return json.NewEncoder(c.m.Stdout).Encode(v)
	}
	_, err = fmt.Fprintln(c.m.Stdout, v.String())
	return err
}

// Usage prints the command's help.
func (c *VersionCommand) Usage() {
	printUsage(c.m.Stdout, `
Print the version of this build (module version, Go version, VCS revision).

Usage:

	slipstream version [-json]
`, c.flagSet())
}
