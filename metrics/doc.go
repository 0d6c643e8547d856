// Package metrics exposes Switchyard over HTTP: /metrics in the Prometheus
// text format, /healthz (the process answers) and /readyz (a writable
// master is known). Gauges are read from snapshots at scrape time; only
// per-statement counters and latencies are updated on the hot path.
package metrics
