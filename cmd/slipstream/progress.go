package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/slipstream-kv/slipstream/natskv"
)

// Progress display cadence.
const (
	progressDrawEvery = 100 * time.Millisecond // terminal bar redraw
	progressLogEvery  = 5 * time.Second        // structured log line otherwise
)

// progressReporter shows how a catching-up watch advances: a bar redrawn in
// place when term is set (stderr is a terminal), otherwise a structured log
// line every progressLogEvery. Keys done and pending come from the watch
// consumer (natskv.Progress); the ETA is pending ÷ the observed rate.
type progressReporter struct {
	term     io.Writer // nil: log lines
	log      *slog.Logger
	logEvery time.Duration

	mu struct {
		sync.Mutex
		start    time.Time // first update of the current watch
		last     time.Time // last draw or log line
		drawn    bool      // a bar is on screen
		lastSeen uint64    // delivered at the last update
	}
}

func newProgressReporter(term io.Writer, log *slog.Logger) *progressReporter {
	return &progressReporter{term: term, log: log, logEvery: progressLogEvery}
}

// reset starts measuring a new watch.
func (p *progressReporter) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	p.mu.start = time.Time{}
	p.mu.lastSeen = 0
}

// update reports the consumer's progress during a catch-up.
func (p *progressReporter) update(state string, pr natskv.Progress) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.start.IsZero() || pr.Delivered < p.mu.lastSeen {
		p.mu.start, p.mu.last = now, now
	}
	p.mu.lastSeen = pr.Delivered
	if p.term != nil {
		if now.Sub(p.mu.last) < progressDrawEvery || pr.Pending == 0 {
			return
		}
		p.mu.last = now
		p.drawLocked(state, pr, now)
		return
	}
	if now.Sub(p.mu.last) < p.logEvery || pr.Pending == 0 {
		return
	}
	p.mu.last = now
	rate := p.rateLocked(pr.Delivered, now)
	attrs := []any{"state", state, "keys_done", pr.Delivered, "pending", pr.Pending, "keys_per_sec", int64(rate)}
	if rate > 0 {
		attrs = append(attrs, "eta", eta(pr.Pending, rate))
	}
	p.log.Info("hydrating", attrs...)
}

func (p *progressReporter) rateLocked(delivered uint64, now time.Time) float64 {
	el := now.Sub(p.mu.start).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(delivered) / el
}

func eta(pending uint64, rate float64) time.Duration {
	return (time.Duration(float64(pending)/rate*float64(time.Second)) + 500*time.Millisecond).Truncate(time.Second)
}

func (p *progressReporter) drawLocked(state string, pr natskv.Progress, now time.Time) {
	const width = 30
	total := pr.Delivered + pr.Pending
	frac := float64(pr.Delivered) / float64(max(total, 1))
	fill := int(frac * width)
	rate := p.rateLocked(pr.Delivered, now)
	line := fmt.Sprintf("%-9s [%s%s] %3.0f%%  %d/%d keys  %s/s",
		state, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100,
		pr.Delivered, total, humanCount(rate))
	if rate > 0 {
		line += "  ETA " + eta(pr.Pending, rate).String()
	}
	fmt.Fprintf(p.term, "\r\033[K%s", line)
	p.mu.drawn = true
}

// finish ends a catch-up display with a summary line (terminal only; the
// tracker logs the same event).
func (p *progressReporter) finish(state string, delivered uint64, took time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.term == nil {
		return
	}
	if !p.mu.drawn {
		return
	}
	rate := float64(delivered) / max(took.Seconds(), 1e-9)
	fmt.Fprintf(p.term, "\r\033[K%s done: %d keys in %s (%s keys/s)\n", state, delivered, took.Round(time.Millisecond), humanCount(rate))
	p.mu.drawn = false
}

// abort clears a bar left on screen.
func (p *progressReporter) abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *progressReporter) clearLocked() {
	if p.term != nil && p.mu.drawn {
		fmt.Fprint(p.term, "\r\033[K")
		p.mu.drawn = false
	}
}

// humanCount renders n with a k/M suffix.
func humanCount(n float64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", n/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.0fk", n/1e3)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", n/1e3)
	default:
		return fmt.Sprintf("%.0f", n)
	}
}
