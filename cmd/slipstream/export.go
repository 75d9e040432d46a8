package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
)

// ExportCommand takes an artifact of a closed fold, or downloads one from a
// running mirror.
type ExportCommand struct {
	m *Main

	foldDir   string
	from      string
	out       string
	tokenFile string
	caFile    string
	asJSON    bool
	logs      logFlags
}

func (c *ExportCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("export")
	fs.StringVar(&c.foldDir, "fold", "", "export the closed fold in `directory`")
	fs.StringVar(&c.from, "from", "", "download a fresh artifact from the running mirror at `URL` (its -http address)")
	fs.StringVar(&c.out, "out", "", "artifact `directory` to create (required; absent or empty)")
	fs.StringVar(&c.tokenFile, "token-file", "", "with -from: send 'Authorization: Bearer <token>', the token being this `file`'s content (the mirror's -http-token-file)")
	fs.StringVar(&c.caFile, "cacert", "", "with an https -from: trust the PEM certificates in `file` (e.g. the mirror's self-signed -http-tls-cert)")
	fs.BoolVar(&c.asJSON, "json", false, "print a JSON object")
	c.logs.register(fs)
	return fs
}

// Run executes the command.
func (c *ExportCommand) Run(ctx context.Context, args []string) error {
	args, err := parseFlags("export", c.flagSet(), args, c.Usage)
	if err != nil {
		return err
	}
	switch {
	case len(args) != 0:
		return usageErrorf("export", "unexpected argument %q", args[0])
	case c.out == "":
		return usageErrorf("export", "-out is required")
	case (c.foldDir == "") == (c.from == ""):
		return usageErrorf("export", "give exactly one of -fold and -from")
	case c.from == "" && (c.tokenFile != "" || c.caFile != ""):
		return usageErrorf("export", "-token-file and -cacert go with -from")
	}
	logger, err := c.m.logger("export", c.logs)
	if err != nil {
		return err
	}
	var m *artifact.Manifest
	if c.from != "" {
		m, err = c.download(ctx, logger)
	} else {
		m, err = c.exportFold(logger)
	}
	if err != nil {
		return err
	}
	return summarize(c.out, m).print(c.m.Stdout, c.asJSON)
}

// exportFold exports a fold no mirror holds.
func (c *ExportCommand) exportFold(logger *slog.Logger) (*artifact.Manifest, error) {
	backend, err := detectBackend(c.foldDir)
	if err != nil {
		return nil, err
	}
	if backend == "" {
		return nil, fmt.Errorf("%w at %s", errNoFold, c.foldDir)
	}
	f, err := openBackend(c.foldDir, backend, logger)
	if errors.Is(err, slipstream.ErrLocked) {
		return nil, fmt.Errorf("fold %s is held by a running mirror: export through it with -from http://ADDR (%w)", c.foldDir, err)
	}
	if err != nil {
		return nil, err
	}
	m, err := artifact.ExportStore(f, c.out)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close fold: %w", cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", c.foldDir, err)
	}
	return m, nil
}

// artifactURL returns the artifact endpoint of a mirror's base URL.
func artifactURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageErrorf("export", "invalid -from %q: want http://HOST:PORT", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + artifactPath
	return u.String(), nil
}

// download fetches GET /v1/artifact and unpacks it safely into -out,
// verifying it before it moves into place.
func (c *ExportCommand) download(ctx context.Context, logger *slog.Logger) (*artifact.Manifest, error) {
	u, err := artifactURL(c.from)
	if err != nil {
		return nil, err
	}
	// Refuse an occupied -out before the request: the request alone makes
	// the mirror flush and export its whole fold.
	if err := outAvailable(c.out); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", u, err)
	}
	client, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	if c.tokenFile != "" {
		token, err := readTokenFile(c.tokenFile)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+string(token))
	}
	var term io.Writer
	if c.m.stderrIsTerminal() && c.logs.format == "text" {
		term = c.m.Stderr
		// Nothing arrives until the mirror has exported: say why.
		fmt.Fprintf(term, "\r\033[Kwaiting for %s to flush and export its fold…", c.from)
	}
	resp, err := client.Do(req)
	if term != nil {
		fmt.Fprint(term, "\r\033[K")
	}
	if err != nil {
		if msg := err.Error(); strings.Contains(msg, "malformed HTTP ") {
			// Something that does not speak HTTP answered ("malformed
			// HTTP response", "… status code"): name it, without echoing
			// its greeting (a NATS server's INFO JSON).
			hint := ""
			if strings.Contains(msg, "INFO") || strings.Contains(msg, "server_id") {
				hint = ": it greets like a NATS server; give the mirror's -http address"
			}
			return nil, fmt.Errorf("download %s: %s is not a slipstream HTTP endpoint (it does not answer HTTP%s)", u, c.from, hint)
		}
		return nil, fmt.Errorf("download %s: %w", u, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode == http.StatusOK && ct != "application/x-tar" {
		return nil, fmt.Errorf("download %s: %s is not a slipstream HTTP endpoint (it answered %s with Content-Type %q, not an artifact tar)", u, c.from, resp.Status, ct)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized {
			hint = " (the mirror requires a bearer token: give its -http-token-file as -token-file)"
			if c.tokenFile != "" {
				hint = fmt.Sprintf(" (the mirror refused the token in %s)", c.tokenFile)
			}
		}
		return nil, fmt.Errorf("download %s: %s: %s%s", u, resp.Status, strings.TrimSpace(string(body)), hint)
	}
	p := newByteProgress(term, logger, resp.ContentLength)
	body := &countingReader{r: resp.Body, progress: p.update}
	m, err := artifact.ReadTar(body, c.out, artifactBackends(logger)...)
	p.finish(err == nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", u, err)
	}
	return m, nil
}

// outAvailable refuses a destination that exists and is not an empty
// directory, with the error artifact.ReadTar would give after the transfer.
func outAvailable(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("check -out: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("%w: destination %s already exists", slipstream.ErrArtifactInvalid, dir)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("check -out: %w", err)
	}
	if len(des) > 0 {
		return fmt.Errorf("%w: destination %s exists and is not empty", slipstream.ErrArtifactInvalid, dir)
	}
	return nil
}

// httpClient returns the download's client: the default one, or one that
// trusts -cacert's certificates.
func (c *ExportCommand) httpClient() (*http.Client, error) {
	if c.caFile == "" {
		return http.DefaultClient, nil
	}
	pem, err := os.ReadFile(c.caFile)
	if err != nil {
		return nil, fmt.Errorf("read -cacert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-cacert %s holds no PEM certificate", c.caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// Usage prints the command's help.
func (c *ExportCommand) Usage() {
	printUsage(c.m.Stdout, `
Write an artifact: a directory holding MANIFEST.json (backend, cursor, size
and BLAKE3 digest of every file) and the fold's payload under data/, to be
verified and imported anywhere ('slipstream verify', 'slipstream import').

With -fold, export a fold no mirror is running on. With -from, download a
fresh artifact from a running mirror's -http address (GET /v1/artifact: the
mirror flushes and exports between two batches; -token-file and -cacert
for a mirror with -http-token-file and -http-tls-cert); the archive is unpacked
safely (regular files and directories only, nothing outside -out) and
verified before it is moved into place. Progress is shown on a terminal.

-out must not exist or be an empty directory. The artifact is assembled in a
hidden directory beside it and renamed into place only when complete: on
failure or interruption -out is left as it was.

Usage:

	slipstream export --fold DIR --out ARTIFACT [-json]
	slipstream export --from http://HOST:PORT --out ARTIFACT [-token-file FILE] [-cacert FILE] [-json]
`, c.flagSet())
}

// countingReader reports the bytes read through it.
type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.progress(c.n)
	return n, err
}

// byteProgress shows a download's progress: a bar redrawn in place on a
// terminal, else a log line every progressLogEvery.
type byteProgress struct {
	term  io.Writer // nil: log lines
	log   *slog.Logger
	total int64 // -1: unknown
	start time.Time

	mu    sync.Mutex
	last  time.Time
	drawn bool
	n     int64
}

func newByteProgress(term io.Writer, log *slog.Logger, total int64) *byteProgress {
	now := time.Now()
	return &byteProgress{term: term, log: log, total: total, start: now, last: now}
}

func (p *byteProgress) update(n int64) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n = n
	every := progressLogEvery
	if p.term != nil {
		every = progressDrawEvery
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	rate := float64(n) / max(now.Sub(p.start).Seconds(), 1e-9)
	if p.term == nil {
		attrs := []any{"bytes", n, "bytes_per_sec", int64(rate)}
		if p.total > 0 {
			attrs = append(attrs, "total", p.total)
		}
		p.log.Info("downloading artifact", attrs...)
		return
	}
	line := fmt.Sprintf("download  %s  %s/s", sizeText(float64(n)), sizeText(rate))
	if p.total > 0 {
		const width = 30
		frac := float64(n) / float64(p.total)
		fill := min(int(frac*width), width)
		line = fmt.Sprintf("download  [%s%s] %3.0f%%  %s/%s  %s/s", strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
			frac*100, sizeText(float64(n)), sizeText(float64(p.total)), sizeText(rate))
		if rate > 0 && p.total > n {
			line += "  ETA " + eta(uint64(p.total-n), rate).String()
		}
	}
	fmt.Fprintf(p.term, "\r\033[K%s", line)
	p.drawn = true
}

// finish clears the bar, or replaces it with a summary line.
func (p *byteProgress) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.term == nil || !p.drawn {
		return
	}
	if !ok {
		fmt.Fprint(p.term, "\r\033[K")
		return
	}
	took := time.Since(p.start)
	fmt.Fprintf(p.term, "\r\033[Kdownload done: %s in %s (%s/s)\n", sizeText(float64(p.n)), took.Round(time.Millisecond),
		sizeText(float64(p.n)/max(took.Seconds(), 1e-9)))
}

// sizeText renders n bytes with a binary suffix.
func sizeText(n float64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", n/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", n)
	}
}
