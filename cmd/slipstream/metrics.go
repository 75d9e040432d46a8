package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newMetricsHandler returns the /metrics handler of a mirror: its own
// registry (never the global one) with the tracker's figures, the Go runtime
// and the process collectors, and extra (the fleet's).
func newMetricsHandler(t *tracker, extra ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gauge("slipstream_applied_cursor", "Revision up to which every update has been applied and folded.",
			func() float64 { return float64(t.applied.Load()) }),
		gauge("slipstream_server_head", "Last sequence of the bucket's stream, as last observed.",
			func() float64 { return float64(t.head.Load()) }),
		gauge("slipstream_lag_revisions", "Server head minus what the mirror is caught up to (the applied cursor, or the head its watch proved caught up to: caught_up_to).",
			func() float64 { return float64(t.lag()) }),
		gauge("slipstream_ready", "1 while /readyz reports ready: caught up once (and verified a fold it had no binding for), and NATS not disconnected for longer than the grace.",
			func() float64 { return b2f(t.isReady()) }),
		gauge("slipstream_nats_connected", "1 while the NATS connection is up.",
			func() float64 { ok, _ := t.conn.state(); return b2f(ok) }),
		counter("slipstream_nats_disconnects_total", "NATS outages since the mirror started.",
			func() float64 { return float64(t.conn.disconnects.Load()) }),
		gauge("slipstream_watch_pending", "Messages the watch consumer still has to deliver.",
			func() float64 { _, p, _ := t.snapshot(); return float64(p) }),
		counter("slipstream_updates_total", "Updates folded into the fold.",
			func() float64 { return float64(t.updates.Load()) }),
		counter("slipstream_store_failures_total", "Transient fold write failures (the batch was re-queued).",
			func() float64 { return float64(t.failures.Load()) }),
		counter("slipstream_resyncs_total", "Cursor-expired resyncs.",
			func() float64 { return float64(t.resyncs.Load()) }),
		counter("slipstream_resync_stale_keys_total", "Fold keys deleted by resyncs because the bucket no longer held them.",
			func() float64 { return float64(t.stale.Load()) }),
		counter("slipstream_follower_restarts_total", "Follower restarts after a watch failure.",
			func() float64 { return float64(t.restarts.Load()) }),
		t.batchSizes,
		t.flushLatency,
	)
	registerAuditMetrics(reg, &t.audit)
	reg.MustRegister(extra...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
