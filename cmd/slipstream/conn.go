package main

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultDisconnectGrace is mirror's -disconnect-grace: how long the NATS
// connection may stay down before /readyz reports not ready. A server
// restart or a failover reconnects in about a second (nats.go retries every
// 2 s), so 5 s rides out one missed attempt; an outage longer than that
// means the fold falls behind the bucket for as long as it lasts, and a
// load balancer should prefer a replica that is connected.
const DefaultDisconnectGrace = 5 * time.Second

// errDisconnected is the reason /readyz gives while NATS has been
// disconnected for longer than the grace.
var errDisconnected = errors.New("disconnected from NATS")

// connState follows a mirror's NATS connection through nats.go's status
// callbacks: it logs each outage (WARN when it starts, WARN again when it
// outlasts the grace, INFO with its duration when it ends), and reports it
// to /readyz, /v1/status and /metrics. The callbacks run on nats.go's
// goroutine; the readers on HTTP handlers.
type connState struct {
	log   *slog.Logger
	grace time.Duration // set before the first callback

	disconnects atomic.Uint64 // outages so far

	mu struct {
		sync.Mutex
		down  bool
		since time.Time   // start of the current outage
		timer *time.Timer // the grace's WARN
	}
}

// attach installs the callbacks on nc (connected when attached). Closing
// nc (the mirror's shutdown) also calls the disconnect callback: that is no
// outage.
func (c *connState) attach(nc *nats.Conn) {
	nc.SetDisconnectErrHandler(func(nc *nats.Conn, err error) {
		if !nc.IsClosed() {
			c.disconnected(err)
		}
	})
	nc.SetReconnectHandler(func(nc *nats.Conn) { c.reconnected(nc.ConnectedUrlRedacted()) })
}

// disconnected starts an outage; a second call during one is ignored.
func (c *connState) disconnected(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.down {
		return
	}
	c.mu.down, c.mu.since = true, time.Now()
	c.disconnects.Add(1)
	c.log.Warn("NATS disconnected; reconnecting", "err", err, "not_ready_after", c.grace)
	since := c.mu.since
	c.mu.timer = time.AfterFunc(c.grace, func() { c.graceExpired(since) })
}

// graceExpired logs an outage that outlasted the grace, unless it ended.
func (c *connState) graceExpired(since time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.down && c.mu.since.Equal(since) {
		c.log.Warn("NATS still disconnected: /readyz reports not ready until it reconnects",
			"for", time.Since(since).Round(time.Millisecond))
	}
}

// reconnected ends the current outage.
func (c *connState) reconnected(url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.down {
		return
	}
	outage := time.Since(c.mu.since)
	c.mu.down = false
	c.mu.timer.Stop()
	c.log.Info("NATS reconnected", "url", url, "outage", outage.Round(time.Millisecond))
}

// state returns whether the connection is up and, when it is not, since
// when it is down.
func (c *connState) state() (connected bool, since time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.down {
		return false, c.mu.since
	}
	return true, time.Time{}
}

// readyErr returns an error wrapping errDisconnected once the connection
// has been down for the grace or longer, else nil.
func (c *connState) readyErr() error {
	ok, since := c.state()
	if ok {
		return nil
	}
	if d := time.Since(since); d >= c.grace {
		return fmt.Errorf("%w for %v", errDisconnected, d.Round(time.Second))
	}
	return nil
}
