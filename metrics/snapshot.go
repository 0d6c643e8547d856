package metrics

import "github.com/prometheus/client_golang/prometheus"

// snapshot is a collector that reads the topology and counters at scrape.
type snapshot struct{ m *Metrics }

var (
	byBackend = []string{"cluster", "backend"}
	byCluster = []string{"cluster"}

	descUp       = prometheus.NewDesc("switchyard_backend_up", "1 when the monitor's last check succeeded.", byBackend, nil)
	descRole     = prometheus.NewDesc("switchyard_backend_master", "1 for the current master.", byBackend, nil)
	descReadOnly = prometheus.NewDesc("switchyard_backend_read_only", "The server's read_only.", byBackend, nil)
	descOffline  = prometheus.NewDesc("switchyard_backend_offline", "1 when set OFFLINE by the operator.", byBackend, nil)
	descLag      = prometheus.NewDesc("switchyard_backend_replication_lag_seconds", "Seconds_Behind_Master (absent when unknown).", byBackend, nil)
	descBacklog  = prometheus.NewDesc("switchyard_backend_apply_backlog", "Transactions a replica received and has not applied yet (what a failover to it waits for).", byBackend, nil)
	descRouted   = prometheus.NewDesc("switchyard_backend_queries_routed_total", "Statements routed to the backend.", byBackend, nil)
	descPoolOpen = prometheus.NewDesc("switchyard_pool_connections", "Backend connections by state.", []string{"cluster", "backend", "state"}, nil)
	descDiverged = prometheus.NewDesc("switchyard_backend_diverged", "1 when the server holds transactions the master never had.", byBackend, nil)
	descEpoch    = prometheus.NewDesc("switchyard_topology_epoch", "Topology epoch (bumped on every master change).", byCluster, nil)
	descHolding  = prometheus.NewDesc("switchyard_writes_held", "1 while writes wait for a topology change.", byCluster, nil)
	descUsable   = prometheus.NewDesc("switchyard_replicas_usable", "Replicas that take reads now: up, online, replicating and within routing.max_replica_lag.", byCluster, nil)
	descPoolMax  = prometheus.NewDesc("switchyard_pool_max_connections", "pool.max_connections: the limit of each pool (per server and backend account).", byCluster, nil)
	descFailover = prometheus.NewDesc("switchyard_failovers_total", "Failovers and switchovers by outcome.", []string{"cluster", "outcome"}, nil)
	descBlocked  = prometheus.NewDesc("switchyard_failover_blocked", "1 while the master is down and no automatic failover will replace it, by reason (disabled, cooldown, unconfirmed, no_candidate, coordination, failed).", []string{"cluster", "reason"}, nil)
	descLeader   = prometheus.NewDesc("switchyard_coordination_leader", "1 when this instance leads the cluster (always 1 when it runs alone).", byCluster, nil)
	descSessions = prometheus.NewDesc("switchyard_client_connections", "Client sessions now.", nil, nil)
	descCounter  = prometheus.NewDesc("switchyard_events_total", "Proxy counters (connections, auth failures, backend errors, accept errors …).", []string{"event"}, nil)
	descCoordOK  = prometheus.NewDesc("switchyard_coordination_healthy", "1 when etcd answers (always 1 when the instance runs alone).", nil, nil)
)

func (s *snapshot) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRole, descReadOnly, descOffline, descLag, descBacklog, descRouted, descPoolOpen,
		descDiverged, descEpoch, descHolding, descUsable, descPoolMax, descFailover, descBlocked, descLeader, descSessions,
		descCounter, descCoordOK} {
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
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	configured, healthy := s.m.src.Coordination()
	for _, c := range s.m.src.Clusters() {
		s.collectCluster(c, gauge, counter)
	}
	gauge(descCoordOK, b2f(!configured || healthy))
	gauge(descSessions, float64(s.m.src.Sessions()))
	for k, v := range s.m.src.Counters() {
		counter(descCounter, float64(v), k)
	}
}

type emit func(d *prometheus.Desc, v float64, labels ...string)

func (s *snapshot) collectCluster(c Cluster, gauge, counter emit) {
	t := c.Backend.Topology()
	for i := range t.Servers {
		st := &t.Servers[i]
		n := st.Name
		gauge(descDiverged, b2f(st.Diverged), c.Name, n)
		gauge(descUp, b2f(st.Up), c.Name, n)
		gauge(descRole, b2f(n == t.Master), c.Name, n)
		gauge(descReadOnly, b2f(st.ReadOnly), c.Name, n)
		gauge(descOffline, b2f(st.Offline), c.Name, n)
		if lag := st.LagSeconds(); lag >= 0 {
			gauge(descLag, float64(lag), c.Name, n)
		}
		if st.Replica != nil {
			gauge(descBacklog, float64(st.ApplyBacklog()), c.Name, n)
		}
		counter(descRouted, float64(c.Backend.Counters.Routed(n)), c.Name, n)
		ps := c.Backend.Pools.Stats(n)
		gauge(descPoolOpen, float64(ps.Open-ps.Idle), c.Name, n, "in_use")
		gauge(descPoolOpen, float64(ps.Idle), c.Name, n, "idle")
		gauge(descPoolOpen, float64(ps.Waiting), c.Name, n, "waiting")
	}
	gauge(descEpoch, float64(t.Epoch), c.Name)
	gauge(descHolding, b2f(t.Holding), c.Name)
	gauge(descUsable, float64(c.UsableReplicas), c.Name)
	gauge(descPoolMax, float64(c.Backend.Pools.Limit()), c.Name)
	counter(descFailover, float64(c.Succeeded), c.Name, "succeeded")
	counter(descFailover, float64(c.Failed), c.Name, "failed")
	// Always one series per cluster: reason "" and 0 while nothing
	// blocks a failover.
	gauge(descBlocked, b2f(c.BlockedKind != ""), c.Name, c.BlockedKind)
	gauge(descLeader, b2f(c.Leader), c.Name)
}
