package metrics

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/internal/cowmap"
)

// Sources are what the metrics read at scrape time; cmd implements them.
type Sources interface {
	// Clusters are the clusters as they are now.
	Clusters() []Cluster
	// Counters are the proxy's cumulative counters (connections_total, …).
	Counters() map[string]uint64
	// Sessions is the number of client sessions now.
	Sessions() int
	// Coordination: configured (etcd is in the config) and healthy (it
	// answers).
	Coordination() (configured, healthy bool)
	// Serving is false once a listener stopped for good (the process is
	// about to exit).
	Serving() (bool, string)
}

// Cluster is one cluster's values at scrape time.
type Cluster struct {
	Name    string
	Backend *backend.Cluster
	// Succeeded and Failed count its failovers and switchovers.
	Succeeded, Failed int
	// BlockedKind says why a dead master is not replaced ("" when
	// nothing blocks a failover).
	BlockedKind string
	// Leader: this instance leads the cluster (always when alone).
	Leader bool
	// UsableReplicas counts the replicas the router would read from now.
	UsableReplicas int
}

// Metrics owns the registry and the statement instruments.
type Metrics struct {
	reg     *prometheus.Registry
	queries *prometheus.CounterVec
	errors  *prometheus.CounterVec
	latency *prometheus.HistogramVec
	src     Sources
	routes  cowmap.Map[string, *[2]routeMetrics] // by cluster: (replica, master)
}

// New registers every metric.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), src: src}
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_queries_total", Help: "Statements relayed, by cluster, route (master/replica) and kind (read, write, begin, …).",
	}, []string{"cluster", "route", "kind"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_query_errors_total", Help: "Statements that ended in an error packet, by cluster and route.",
	}, []string{"cluster", "route"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "switchyard_query_duration_seconds", Help: "Statement latency through the proxy, by cluster and route.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"cluster", "route"})
	m.reg.MustRegister(m.queries, m.errors, m.latency, &snapshot{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveStatement records one statement (called by the proxy, once per
// statement: the labelled children are looked up once per cluster and
// kept).
func (m *Metrics) ObserveStatement(cluster, kind string, toMaster, ok bool, d time.Duration) {
	// Load before LoadOrMake: the closures would cost an allocation per
	// statement.
	routes, found := m.routes.Load(cluster)
	if !found {
		routes = m.routes.LoadOrMake(cluster, func() *[2]routeMetrics {
			var rs [2]routeMetrics
			for i, name := range []string{"replica", "master"} {
				rs[i] = routeMetrics{name: name, errors: m.errors.WithLabelValues(cluster, name), latency: m.latency.WithLabelValues(cluster, name)}
			}
			return &rs
		})
	}
	r := &routes[0]
	if toMaster {
		r = &routes[1]
	}
	c, found := r.byKind.Load(kind)
	if !found {
		c = r.byKind.LoadOrMake(kind, func() prometheus.Counter { return m.queries.WithLabelValues(cluster, r.name, kind) })
	}
	c.Inc()
	if !ok {
		r.errors.Inc()
	}
	r.latency.Observe(d.Seconds())
}

// routeMetrics are the children of one cluster and route label.
type routeMetrics struct {
	name    string
	byKind  cowmap.Map[string, prometheus.Counter]
	errors  prometheus.Counter
	latency prometheus.Observer
}

// Handler serves the registry in the Prometheus text format (the web
// package mounts it at /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Ready says whether the proxy can take writes on every cluster now, and
// why not (/readyz).
func (m *Metrics) Ready() (bool, string) {
	if ok, why := m.src.Serving(); !ok {
		return false, why
	}
	var why []string
	for _, c := range m.src.Clusters() {
		if reason := notWritable(c.Backend.Topology()); reason != "" {
			why = append(why, "cluster "+c.Name+": "+reason)
		}
	}
	if configured, healthy := m.src.Coordination(); configured && !healthy {
		why = append(why, "etcd unreachable: serving with the last known topology")
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// notWritable says why a cluster takes no writes now ("" when it does).
func notWritable(t *backend.Topology) string {
	st := t.Server(t.Master)
	switch {
	case t.Master == "" || st == nil:
		return "no master known"
	case !st.Up:
		return "master " + t.Master + " is down"
	case st.ReadOnly:
		return "master " + t.Master + " is read-only"
	case t.Holding:
		return "writes held for a topology change"
	}
	return ""
}
