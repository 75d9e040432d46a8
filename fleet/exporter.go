package fleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/lease"
)

// Report describes one scheduled export round, to [Exporter.OnRound].
type Report struct {
	// Start is when the round began.
	Start time.Time
	// Duration is how long it ran.
	Duration time.Duration
	// Skipped is set when the node had no live loop to export (still
	// hydrating, bootstrapping or restarting): no lease was tried.
	Skipped bool
	// Result is the round's result when Err is nil.
	Result Result
	// Err is the round's error.
	Err error
}

// Exporter runs a node's export rounds periodically: the first after a
// random delay within one period, then one every Every, jittered uniformly
// within ±25%, so that a fleet's nodes try at spread-out times. Every node of
// a fleet runs one on the same lease key; the lease, held for one period by
// the round that wins it, makes about one of them publish per period.
type Exporter struct {
	// Round is the round to run. Its Follower is replaced by Loop's
	// answer on every round; its TTL, when zero, is Every.
	Round ExportRound
	// Every is the period: at least lease.MinTTL. Required.
	Every time.Duration
	// Loop returns the node's live loop for the next round, or nil when
	// there is none worth exporting (the round is then skipped). Required.
	Loop func() *slipstream.Follower
	// OnRound, if set, receives every round's report, skipped ones
	// included. It is called on the exporter's goroutine.
	OnRound func(Report)
}

// Run runs rounds until ctx ends, then returns nil. A round's error is
// reported to OnRound, never returned: the next period tries again. A
// misconfigured Exporter returns an error wrapping
// slipstream.ErrInvalidConfig at once.
func (e *Exporter) Run(ctx context.Context) error {
	if e.Every < lease.MinTTL {
		return fmt.Errorf("%w: exporter: Every %v is below %v", slipstream.ErrInvalidConfig, e.Every, lease.MinTTL)
	}
	if e.Loop == nil {
		return fmt.Errorf("%w: exporter: no Loop", slipstream.ErrInvalidConfig)
	}
	round := e.Round
	if round.TTL == 0 {
		round.TTL = e.Every
	}
	if err := round.validate(); err != nil {
		return err
	}
	timer := time.NewTimer(rand.N(e.Every))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		rep := Report{Start: time.Now()}
		if f := e.Loop(); f == nil {
			rep.Skipped = true
		} else {
			round.Follower = f
			rep.Result, rep.Err = round.Run(ctx)
			round.Follower = nil
		}
		rep.Duration = time.Since(rep.Start)
		if ctx.Err() != nil {
			return nil
		}
		if e.OnRound != nil {
			e.OnRound(rep)
		}
		timer.Reset(Jitter(e.Every))
	}
}

// Jitter returns a duration drawn uniformly from [¾d, 1¼d): the wait
// between two of an [Exporter]'s rounds.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - d/4 + rand.N(d/2+1)
}
