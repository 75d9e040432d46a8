package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"
)

// Main is the slipstream command: it dispatches to one subcommand.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// SetDefaultLogger makes a subcommand install the logger built from its
	// -log-level and -log-format flags as slog's default. main sets it;
	// in-process tests leave it off.
	SetDefaultLogger bool

	// StderrIsTerminal reports whether Stderr is an interactive terminal
	// (progress bars instead of periodic log lines). Nil means false.
	StderrIsTerminal func() bool

	// Getenv looks up the environment defaults of the NATS connection
	// flags (NATS_URL, NATS_CREDS, …). Nil means no environment: in-process
	// tests stay independent of the caller's.
	Getenv func(string) string

	// Executable is the slipstream binary that commands start as helper
	// processes (bench's live publisher). Empty means os.Executable().
	Executable string
}

// NewMain returns a Main on the process's standard streams.
func NewMain() *Main {
	return &Main{
		Stdin:            os.Stdin,
		Stdout:           os.Stdout,
		Stderr:           os.Stderr,
		StderrIsTerminal: func() bool { return term.IsTerminal(int(os.Stderr.Fd())) },
		Getenv:           os.Getenv,
	}
}

// Run executes the subcommand named by args[0].
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		m.Usage(m.Stderr)
		return usageErrorf("", "no command given")
	}
	name, args := args[0], args[1:]
	switch name {
	case "mirror":
		return (&MirrorCommand{m: m}).Run(ctx, args)
	case "get":
		return (&GetCommand{m: m}).Run(ctx, args)
	case "range":
		return (&RangeCommand{m: m}).Run(ctx, args)
	case "stat":
		return (&StatCommand{m: m}).Run(ctx, args)
	case "kv":
		return (&KVCommand{m: m}).Run(ctx, args)
	case "export":
		return (&ExportCommand{m: m}).Run(ctx, args)
	case "import":
		return (&ImportCommand{m: m}).Run(ctx, args)
	case "verify":
		return (&VerifyCommand{m: m}).Run(ctx, args)
	case "publish":
		return (&PublishCommand{m: m}).Run(ctx, args)
	case "fetch":
		return (&FetchCommand{m: m}).Run(ctx, args)
	case "prune":
		return (&PruneCommand{m: m}).Run(ctx, args)
	case "audit":
		return (&AuditCommand{m: m}).Run(ctx, args)
	case "bench":
		return (&BenchCommand{m: m}).Run(ctx, args)
	case benchPublisherCommand: // bench's own helper process; not listed in the help
		return (&benchPublisher{m: m}).Run(ctx, args)
	case "version", "-version", "--version": // natscli and most tools answer --version
		return (&VersionCommand{m: m}).Run(ctx, args)
	case "help", "-h", "-help", "--help":
		if len(args) > 0 && args[0] != "help" && !strings.HasPrefix(args[0], "-") {
			return m.Run(ctx, []string{args[0], "-h"})
		}
		m.Usage(m.Stdout)
		return flag.ErrHelp
	default:
		return usageErrorf("", "unknown command %q", name)
	}
}

// Usage prints the top-level help.
func (m *Main) Usage(w io.Writer) {
	fmt.Fprint(w, `slipstream keeps a local, durable replica (a fold) of a NATS JetStream KV
bucket in step with the bucket, and serves and queries it.

Usage:

	slipstream <command> [flags] [arguments]

Commands:

	mirror   mirror a bucket into a fold and keep it in sync (optionally serve it over HTTP)
	get      print one key's value from a fold (offline)
	range    print a fold's entries as JSON lines (offline)
	stat     print a fold's cursor, key count, backend and size (offline)
	export   write an artifact of a closed fold, or download one from a running mirror
	import   install an artifact as a new fold (mirror then resumes from its cursor)
	verify   check an artifact: manifest, sizes, BLAKE3 digests, cursor
	kv       put, get, del, purge or ls keys in a bucket (a small NATS KV client)
	publish  upload an artifact to an object store and move its key's pointer
	fetch    download the artifact a key's pointer names
	prune    delete a key's payloads that its pointer can no longer name
	audit    compare a fold with its bucket key by key; -repair fixes it
	bench    measure hydration throughput against raw nats.go WatchAll
	version  print the version

Run 'slipstream <command> -h' for a command's flags.
`)
}

// usageError is a command-line mistake: main prints it on one line and exits 2.
type usageError struct {
	cmd string // subcommand name, "" for the top level
	msg string
}

func (e *usageError) Error() string {
	hint := "slipstream -h"
	if e.cmd != "" {
		hint = "slipstream " + e.cmd + " -h"
	}
	return fmt.Sprintf("%s (see '%s')", e.msg, hint)
}

func usageErrorf(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// exitCode maps a Run error to the process exit status: 0 for success and
// -h, 2 for usage errors, 1 for everything else.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(*usageError)):
		return 2
	default:
		return 1
	}
}

// errorLine renders err as the one line main prints, prefixed with
// "slipstream: " once; it is empty for nil and -h. The sentinels' own
// "slipstream: " prefixes inside a wrapped chain ("publish X: slipstream:
// operation failed: …") are dropped: the line names the program once.
func errorLine(err error) string {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return ""
	}
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	msg = strings.TrimPrefix(msg, "slipstream: ")
	msg = strings.ReplaceAll(msg, ": slipstream: ", ": ")
	return "slipstream: " + msg
}

// newFlagSet returns a silent flag set: parse errors are returned (and
// turned into one-line usage errors), never printed.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("slipstream get KEY --fold DIR"); "--" ends flag parsing. It returns the
// positional arguments. -h yields flag.ErrHelp after usage was printed.
func parseFlags(cmd string, fs *flag.FlagSet, args []string, usage func()) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage()
				return nil, flag.ErrHelp
			}
			return nil, usageErrorf(cmd, "%s", err.Error())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// logFlags are the -log-level and -log-format flags every subcommand takes.
type logFlags struct {
	level  string
	format string
}

func (lf *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&lf.level, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&lf.format, "log-format", "text", "log `format`: text or json")
}

// logger builds the command's one slog handler, writing to Stderr. It is the
// only place a handler is built; with SetDefaultLogger it becomes slog's
// default too.
func (m *Main) logger(cmd string, lf logFlags) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lf.level)); err != nil {
		return nil, usageErrorf(cmd, "invalid -log-level %q: want debug, info, warn or error", lf.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch lf.format {
	case "text":
		h = slog.NewTextHandler(m.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(m.Stderr, opts)
	default:
		return nil, usageErrorf(cmd, "invalid -log-format %q: want text or json", lf.format)
	}
	l := slog.New(h)
	if m.SetDefaultLogger {
		slog.SetDefault(l)
	}
	return l, nil
}

func (m *Main) stderrIsTerminal() bool {
	return m.StderrIsTerminal != nil && m.StderrIsTerminal()
}

// printUsage writes a command's synopsis followed by its flags.
func printUsage(w io.Writer, synopsis string, fs *flag.FlagSet) {
	fmt.Fprint(w, strings.TrimLeft(synopsis, "\n"))
	fmt.Fprintln(w, "\nFlags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// notice prints an informational line on Stderr.
func (m *Main) notice(msg string) {
	fmt.Fprintln(m.Stderr, "slipstream: "+msg)
}
