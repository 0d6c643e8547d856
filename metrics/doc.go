// Package metrics exposes Switchyard to Prometheus: every series of a
// cluster carries a cluster label. Gauges are read from snapshots at
// scrape time (Sources, which cmd implements); only per-statement counters
// and latencies are updated on the hot path. Ready answers /readyz: every
// cluster has a writable master, etcd answers when configured, and no
// listener has stopped.
package metrics
