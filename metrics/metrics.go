package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/backend"
)

// Sources are read at scrape time.
type Sources struct {
	Cluster  *backend.Cluster
	Counters func() map[string]uint64 // proxy counters (connections_total, …)
	Sessions func() int
	// Failovers returns (succeeded, failed) topology changes.
	Failovers func() (ok, failed int)
	// Coordinated is false when coordination (etcd) is configured and
	// unreachable; Leader is true when this instance leads (always when
	// it runs alone). Nil when not coordinated.
	Coordinated func() bool
	Leader      func() bool
	// UsableReplicas counts the replicas the router would send a read to
	// now (switchyard_replicas_usable).
	UsableReplicas func() int
	// MaxConnections is pool.max_connections per server and account.
	MaxConnections int
}

// Metrics owns the registry and the statement instruments.
type Metrics struct {
	reg     *prometheus.Registry
	queries *prometheus.CounterVec
	errors  *prometheus.CounterVec
	latency *prometheus.HistogramVec
	src     Sources
	routes  [2]routeMetrics // replica, master
}

// New registers every metric.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), src: src}
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_queries_total", Help: "Statements relayed, by route (master/replica) and kind (read, write, begin, …).",
	}, []string{"route", "kind"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_query_errors_total", Help: "Statements that ended in an error packet, by route.",
	}, []string{"route"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "switchyard_query_duration_seconds", Help: "Statement latency through the proxy, by route.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	for i, name := range []string{"replica", "master"} {
		m.routes[i].name = name
		m.routes[i].errors = m.errors.WithLabelValues(name)
		m.routes[i].latency = m.latency.WithLabelValues(name)
	}
	m.reg.MustRegister(m.queries, m.errors, m.latency, &snapshot{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveStatement records one statement (called by the proxy, once per
// statement: the labelled children are looked up once and kept).
func (m *Metrics) ObserveStatement(kind string, toMaster, ok bool, d time.Duration) {
	r := &m.routes[0]
	if toMaster {
		r = &m.routes[1]
	}
	c, found := r.byKind.Load(kind)
	if !found {
		c, _ = r.byKind.LoadOrStore(kind, m.queries.WithLabelValues(r.name, kind))
	}
	c.(prometheus.Counter).Inc()
	if !ok {
		r.errors.Inc()
	}
	r.latency.Observe(d.Seconds())
}

// routeMetrics are the children of one route label (replica, master).
type routeMetrics struct {
	name    string
	byKind  sync.Map // kind → prometheus.Counter
	errors  prometheus.Counter
	latency prometheus.Observer
}

// Handler serves the registry in the Prometheus text format (the web
// package mounts it at /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Ready says whether the proxy can take writes now, and why not
// (/readyz).
func (m *Metrics) Ready() (bool, string) {
	t := m.src.Cluster.Topology()
	st := t.Server(t.Master)
	switch {
	case t.Master == "" || st == nil:
		return false, "no master known"
	case !st.Up:
		return false, "master " + t.Master + " is down"
	case st.ReadOnly:
		return false, "master " + t.Master + " is read-only"
	case t.Holding:
		return false, "writes held for a topology change"
	case m.src.Coordinated != nil && !m.src.Coordinated():
		return false, "etcd unreachable: serving with the last known topology"
	}
	return true, ""
}

// snapshot is a collector that reads the topology and counters at scrape.
type snapshot struct{ m *Metrics }

var (
	descUp       = prometheus.NewDesc("switchyard_backend_up", "1 when the monitor's last check succeeded.", []string{"backend"}, nil)
	descRole     = prometheus.NewDesc("switchyard_backend_master", "1 for the current master.", []string{"backend"}, nil)
	descReadOnly = prometheus.NewDesc("switchyard_backend_read_only", "The server's read_only.", []string{"backend"}, nil)
	descOffline  = prometheus.NewDesc("switchyard_backend_offline", "1 when set OFFLINE by the operator.", []string{"backend"}, nil)
	descLag      = prometheus.NewDesc("switchyard_backend_replication_lag_seconds", "Seconds_Behind_Master (absent when unknown).", []string{"backend"}, nil)
	descRouted   = prometheus.NewDesc("switchyard_backend_queries_routed_total", "Statements routed to the backend.", []string{"backend"}, nil)
	descPoolOpen = prometheus.NewDesc("switchyard_pool_connections", "Backend connections by state.", []string{"backend", "state"}, nil)
	descEpoch    = prometheus.NewDesc("switchyard_topology_epoch", "Topology epoch (bumped on every master change).", nil, nil)
	descHolding  = prometheus.NewDesc("switchyard_writes_held", "1 while writes wait for a topology change.", nil, nil)
	descSessions = prometheus.NewDesc("switchyard_client_connections", "Client sessions now.", nil, nil)
	descCounter  = prometheus.NewDesc("switchyard_events_total", "Proxy counters (connections, auth failures, backend errors, …).", []string{"event"}, nil)
	descFailover = prometheus.NewDesc("switchyard_failovers_total", "Failovers and switchovers by outcome.", []string{"outcome"}, nil)
	descDiverged = prometheus.NewDesc("switchyard_backend_diverged", "1 when the server holds transactions the master never had.", []string{"backend"}, nil)
	descUsable   = prometheus.NewDesc("switchyard_replicas_usable", "Replicas that take reads now: up, online, replicating and within routing.max_replica_lag.", nil, nil)
	descPoolMax  = prometheus.NewDesc("switchyard_pool_max_connections", "pool.max_connections: the limit of each pool (per server and backend account).", nil, nil)
	descCoordOK  = prometheus.NewDesc("switchyard_coordination_healthy", "1 when etcd answers (coordinated instances only).", nil, nil)
	descLeader   = prometheus.NewDesc("switchyard_coordination_leader", "1 when this instance is the coordination leader (coordinated instances only).", nil, nil)
)

func (s *snapshot) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRole, descReadOnly, descOffline, descLag, descRouted, descPoolOpen,
		descEpoch, descHolding, descSessions, descCounter, descFailover, descDiverged, descUsable, descPoolMax, descCoordOK, descLeader} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (s *snapshot) Collect(ch chan<- prometheus.Metric) {
	c := s.m.src.Cluster
	t := c.Topology()
	for _, st := range t.Servers {
		n := st.Name
		ch <- prometheus.MustNewConstMetric(descDiverged, prometheus.GaugeValue, b2f(st.Diverged), n)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, b2f(st.Up), n)
		ch <- prometheus.MustNewConstMetric(descRole, prometheus.GaugeValue, b2f(n == t.Master), n)
		ch <- prometheus.MustNewConstMetric(descReadOnly, prometheus.GaugeValue, b2f(st.ReadOnly), n)
		ch <- prometheus.MustNewConstMetric(descOffline, prometheus.GaugeValue, b2f(st.Offline), n)
		if lag := st.LagSeconds(); lag >= 0 {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(lag), n)
		}
		ch <- prometheus.MustNewConstMetric(descRouted, prometheus.CounterValue, float64(c.Routed(n)), n)
		var open, idle, waiting int
		for _, p := range c.PoolsOf(n) {
			ps := p.Stats()
			open, idle, waiting = open+ps.Open, idle+ps.Idle, waiting+ps.Waiting
		}
		ch <- prometheus.MustNewConstMetric(descPoolOpen, prometheus.GaugeValue, float64(open-idle), n, "in_use")
		ch <- prometheus.MustNewConstMetric(descPoolOpen, prometheus.GaugeValue, float64(idle), n, "idle")
		ch <- prometheus.MustNewConstMetric(descPoolOpen, prometheus.GaugeValue, float64(waiting), n, "waiting")
	}
	if s.m.src.UsableReplicas != nil {
		ch <- prometheus.MustNewConstMetric(descUsable, prometheus.GaugeValue, float64(s.m.src.UsableReplicas()))
	}
	if s.m.src.MaxConnections > 0 {
		ch <- prometheus.MustNewConstMetric(descPoolMax, prometheus.GaugeValue, float64(s.m.src.MaxConnections))
	}
	if s.m.src.Coordinated != nil {
		ch <- prometheus.MustNewConstMetric(descCoordOK, prometheus.GaugeValue, b2f(s.m.src.Coordinated()))
	}
	if s.m.src.Leader != nil {
		ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, b2f(s.m.src.Leader()))
	}
	ch <- prometheus.MustNewConstMetric(descEpoch, prometheus.GaugeValue, float64(t.Epoch))
	ch <- prometheus.MustNewConstMetric(descHolding, prometheus.GaugeValue, b2f(t.Holding))
	if s.m.src.Sessions != nil {
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(s.m.src.Sessions()))
	}
	if s.m.src.Counters != nil {
		for k, v := range s.m.src.Counters() {
			ch <- prometheus.MustNewConstMetric(descCounter, prometheus.CounterValue, float64(v), k)
		}
	}
	if s.m.src.Failovers != nil {
		ok, failed := s.m.src.Failovers()
		ch <- prometheus.MustNewConstMetric(descFailover, prometheus.CounterValue, float64(ok), "succeeded")
		ch <- prometheus.MustNewConstMetric(descFailover, prometheus.CounterValue, float64(failed), "failed")
	}
}
