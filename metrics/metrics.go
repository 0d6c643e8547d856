package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
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
	// unreachable.
	Coordinated func() bool
	// Pprof mounts net/http/pprof under /debug/pprof/ (http.pprof).
	Pprof bool
}

// Metrics owns the registry and the statement instruments.
type Metrics struct {
	reg     *prometheus.Registry
	queries *prometheus.CounterVec
	errors  *prometheus.CounterVec
	latency *prometheus.HistogramVec
	srv     *http.Server
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

// Handler serves /metrics, /healthz and /readyz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := m.ready(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(why + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if m.src.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	}
	return mux
}

func (m *Metrics) ready() (bool, string) {
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

// Serve listens on addr until Close.
func (m *Metrics) Serve(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	m.srv = &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := m.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err
		}
	}()
	return nil
}

// Close stops the HTTP listener.
func (m *Metrics) Close() {
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = m.srv.Shutdown(ctx)
	}
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
)

func (s *snapshot) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRole, descReadOnly, descOffline, descLag, descRouted, descPoolOpen,
		descEpoch, descHolding, descSessions, descCounter, descFailover} {
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
