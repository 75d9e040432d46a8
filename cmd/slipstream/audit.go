package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/audit"
	"github.com/slipstream-kv/slipstream/natskv"
)

// AuditCommand compares a fold that no mirror holds with its bucket.
type AuditCommand struct {
	m *Main

	foldDir   string
	bucket    string
	conn      natsFlags
	natsStore string
	prefixes  stringList
	repair    bool
	logs      logFlags
}

func (c *AuditCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("audit")
	fs.StringVar(&c.foldDir, "fold", "", "fold `directory` (required; not held by a running mirror)")
	fs.StringVar(&c.bucket, "bucket", "", "bucket `name` (required; never created)")
	c.conn.register(fs, "NATS server `URL`; with neither it nor -context, an embedded server is started on <fold>.nats, as mirror does")
	fs.StringVar(&c.natsStore, "nats-store", "", "embedded server: JetStream store `directory` (default <fold>.nats)")
	fs.Var(&c.prefixes, "prefix", "the fold's scope: keys under `prefix` (ending in \".\"); repeatable, as given to mirror")
	fs.BoolVar(&c.repair, "repair", false, "fix the divergent keys in place (the cursor does not move)")
	c.logs.register(fs)
	return fs
}

// errDivergent is returned when the audit found divergences: exit status 1.
var errDivergent = errors.New("the fold diverges from its bucket")

// auditLine is one JSON line of `slipstream audit`: a divergent key, or (with
// FoldCursor and ServerLast instead of a key) the fold's cursor past the
// server's last sequence.
type auditLine struct {
	Class          string `json:"class"`
	Key            string `json:"key,omitempty"`
	FoldRevision   uint64 `json:"fold_revision,omitempty"`
	ServerRevision uint64 `json:"server_revision,omitempty"`
	ServerOp       string `json:"server_op,omitempty"`
	FoldCursor     uint64 `json:"fold_cursor,omitempty"`
	ServerLast     uint64 `json:"server_last,omitempty"`
}

func newAuditLine(d audit.Divergence) auditLine {
	if d.Key == "" {
		return auditLine{Class: d.Class.String(), FoldCursor: d.FoldRevision, ServerLast: d.ServerRevision}
	}
	l := auditLine{Class: d.Class.String(), Key: d.Key, FoldRevision: d.FoldRevision, ServerRevision: d.ServerRevision}
	if d.ServerOp != 0 {
		l.ServerOp = d.ServerOp.String()
	}
	return l
}

// auditSummary describes one audit: the last line of `slipstream audit`
// (under "summary") and the last_audit object of GET /v1/status.
type auditSummary struct {
	Time       time.Time `json:"time"`
	DurationMS int64     `json:"duration_ms"`
	Equal      bool      `json:"equal"`
	Cursor     uint64    `json:"cursor"`
	ServerLast uint64    `json:"server_last"`
	FoldKeys   int       `json:"fold_keys"`
	Checked    int       `json:"checked"`
	InFlight   int       `json:"in_flight"`
	Stale      int       `json:"stale"`
	Missed     int       `json:"missed"`
	Backwards  int       `json:"backwards"`
	Repaired   int       `json:"repaired"`
	Skipped    int       `json:"skipped,omitempty"`
	Error      string    `json:"error,omitempty"`
}

func newAuditSummary(rep audit.Report, ri slipstream.RepairInfo) auditSummary {
	return auditSummary{
		Time:       rep.Started,
		DurationMS: rep.Duration.Milliseconds(),
		Equal:      rep.Equal(),
		Cursor:     rep.Cursor.Rank(),
		ServerLast: rep.ServerLast,
		FoldKeys:   rep.FoldKeys,
		Checked:    rep.Checked,
		InFlight:   rep.InFlight,
		Stale:      rep.Count(audit.Stale),
		Missed:     rep.Count(audit.Missed),
		Backwards:  rep.Count(audit.Backwards),
		Repaired:   ri.Folded,
		Skipped:    ri.Skipped,
	}
}

// Run executes the command.
func (c *AuditCommand) Run(ctx context.Context, args []string) (err error) {
	fs := c.flagSet()
	args, err = parseFlags("audit", fs, args, c.Usage)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.conn.applyEnv(c.m.Getenv)
	if err := c.conn.check("audit"); err != nil {
		return err
	}
	switch {
	case len(args) != 0:
		return usageErrorf("audit", "unexpected argument %q", args[0])
	case c.foldDir == "":
		return usageErrorf("audit", "-fold is required")
	case c.bucket == "":
		return usageErrorf("audit", "-bucket is required")
	case !bucketNameRE.MatchString(c.bucket):
		return usageErrorf("audit", "invalid -bucket %q: use letters, digits, '-' and '_'", c.bucket)
	case c.conn.remote() && set["nats-store"]:
		return usageErrorf("audit", "-nats-store configures the embedded server; it does not go with -nats or -context")
	}
	scope := scopeOf(c.prefixes)
	if err := scope.Validate(); err != nil {
		return usageErrorf("audit", "%v", err)
	}
	logger, err := c.m.logger("audit", c.logs)
	if err != nil {
		return err
	}

	backend, err := detectBackend(c.foldDir)
	if err != nil {
		return err
	}
	if backend == "" {
		return fmt.Errorf("%w at %s", errNoFold, c.foldDir)
	}
	// Auditing (or repairing) a fold against another bucket than the one
	// it mirrors would report (or rewrite) every key: refuse it.
	if b, err := readBinding(c.foldDir); err != nil {
		return err
	} else if b != nil && b.Bucket != c.bucket {
		return fmt.Errorf("%w: fold %s mirrors bucket %q, not %q; use another -fold", errFoldOfOtherBucket, c.foldDir, b.Bucket, c.bucket)
	}
	fd, err := openBackend(c.foldDir, backend, logger)
	if errors.Is(err, slipstream.ErrLocked) {
		return fmt.Errorf("fold %s is held by a running mirror, which audits it itself (see its /v1/status): %w", c.foldDir, err)
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := fd.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close fold: %w", cerr)
		}
	}()

	dialCfg, err := c.conn.dialConfig("", "slipstream audit "+c.bucket)
	if err != nil {
		return err
	}
	if !c.conn.remote() {
		emb, _, err := startFoldServer(ctx, "127.0.0.1:0", c.natsStore, c.foldDir, logger)
		if err != nil {
			return err
		}
		defer emb.Shutdown()
		dialCfg.URL = emb.ClientURL()
	}
	nc, err := natskv.Dial(dialCfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	// An audit never creates the bucket it checks.
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := js.KeyValue(ctx, c.bucket); err != nil {
		return fmt.Errorf("bucket %s: %w", c.bucket, err)
	}
	bucket, err := natskv.Open(ctx, nc, natskv.Config{Bucket: c.bucket, Logger: logger})
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", c.bucket, err)
	}

	// Every finding is printed below, and a divergence is the command's
	// error: the auditor's Error-level log of backwards findings (the
	// mirror's report) would say it a second time, as a log line.
	rep, err := (&audit.Auditor{Bucket: bucket, Fold: fd, Scope: scope, Logger: slog.New(slog.DiscardHandler)}).Run(ctx)
	if err != nil {
		return err
	}
	var ri slipstream.RepairInfo
	if c.repair && !rep.Equal() {
		ri, err = audit.RepairStore(ctx, fd, bucket, rep)
		if err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		logger.Info("fold repaired", "keys", ri.Keys, "folded", ri.Folded, slipstream.LogKeyCursor, fd.Cursor().String())
	}
	enc := json.NewEncoder(c.m.Stdout)
	for _, d := range rep.Divergences {
		if err := enc.Encode(newAuditLine(d)); err != nil {
			return err
		}
	}
	if err := enc.Encode(struct {
		Summary auditSummary `json:"summary"`
	}{newAuditSummary(rep, ri)}); err != nil {
		return err
	}
	if rep.Equal() {
		return nil
	}
	verdict := "not repaired (run with -repair)"
	if c.repair {
		verdict = fmt.Sprintf("repaired %d keys", ri.Folded)
	}
	return fmt.Errorf("%w: %d stale, %d missed, %d backwards; %s", errDivergent,
		rep.Count(audit.Stale), rep.Count(audit.Missed), rep.Count(audit.Backwards), verdict)
}

// Usage prints the command's help.
func (c *AuditCommand) Usage() {
	printUsage(c.m.Stdout, `
Compare a fold that no mirror holds with its bucket, key by key (headers only:
each key's latest revision and operation), and print every divergence as a
JSON line, then a summary line {"summary": …}. Exit 0 when the fold equals
the bucket, 1 when it diverges (even when -repair fixed it) or on error.

Classes: stale (the fold holds a key the bucket deleted or no longer holds),
missed (the bucket holds a value, at a revision the fold's cursor covers, that
the fold lacks or holds older), backwards (the bucket's revision is below the
fold's: the server lost a write; or the fold's cursor is past the server's
last sequence: the bucket was recreated or restored). Records above the
fold's cursor are in flight and ignored. -prefix must repeat the mirror's.

With -repair each divergent key is re-read and folded in place; the cursor
does not move, except when it is past the server's last sequence: then it is
reset, and the next mirror re-lists the bucket.

Usage:

	slipstream audit --fold DIR --bucket NAME [--nats URL | --context NAME] [--prefix P]... [--repair]
`, c.flagSet())
}
