package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/coord"
	"github.com/switchyard/switchyard/failover"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/rules"
)

// clusterRuntime is one cluster as the process runs it: its state, its
// monitor, its failover engine and (with etcd) its coordinator. Nothing
// here is shared with another cluster.
type clusterRuntime struct {
	name    string
	cluster *backend.Cluster
	monitor *backend.Monitor
	engine  *failover.Engine
	coord   *coord.Cluster // nil when running alone
	// policy is the routing policy in force (read at scrape time without
	// a lock; a reload swaps it).
	policy atomic.Pointer[router.Policy]
	// version is the master's @@version at start-up (the handshake
	// follows the first cluster's).
	version string
}

// startCluster discovers a cluster's master, builds its state, and
// starts its monitor (one synchronous round: routing starts with a real
// picture). Its engine is made but runs only once everything is wired.
func startCluster(ctx context.Context, cc conf.Cluster, cfg *conf.Config, state *failover.StateFile, log *zap.Logger) (*clusterRuntime, error) {
	clog := log.With(zap.String("cluster", cc.Name))
	servers := serversOf(cc)
	found, err := discover(ctx, cc, servers, clog)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
	}
	backendTLS, err := backendTLSConfig(cc.Pool.TLS)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
	}
	r := &clusterRuntime{name: cc.Name, version: found.MasterVersion,
		cluster: backend.NewCluster(cc.Name, servers, found.Master, poolOptions(cc.Pool), backendTLS)}
	r.policy.Store(policyOf(cc.Routing))
	applyOffline(r, cc)
	r.monitor = backend.NewMonitor(r.cluster, monitorOptions(cc.Monitor), clog.Named("monitor"))
	flog := log.Named("failover") // New adds the cluster
	r.engine = failover.New(r.cluster, actuatorOf(cc, flog.With(zap.String("cluster", cc.Name))), engineSettings(cc, cfg.Hooks, state), flog)
	r.monitor.OnCheck = func(name string, h backend.Health) {
		if m, _ := r.cluster.Topo.Master(); name == m && !h.Up {
			r.engine.Notify()
		}
	}
	r.monitor.Start(ctx)
	return r, nil
}

// discover asks every server of a cluster who it is, so a restart never
// guesses the master.
func discover(ctx context.Context, cc conf.Cluster, servers []backend.Server, log *zap.Logger) (backend.Discovery, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	account := backend.Account{User: cc.Monitor.User, Password: cc.Monitor.Password.Value()}
	found, err := backend.Discover(dctx, servers, account, cc.Monitor.ConnectTimeout.D())
	for _, o := range found.Observations {
		if o.Err != nil {
			log.Warn("backend not reachable at start-up", zap.String("backend", o.Server.Name), zap.Error(o.Err))
		}
	}
	if found.Deduced {
		log.Warn("no writable master answers: the one the replicas follow is taken as master (down; the failover engine will act)",
			zap.String("master", found.Master))
	}
	return found, err
}

// backends is the cluster as the proxy's sessions use it: evidence of a
// refused connection makes the monitor check that server now.
func (r *clusterRuntime) backends() *proxy.Backends {
	return proxy.Cluster(r.cluster, r.monitor.CheckNow)
}

// usableReplicas counts the replicas the router would read from now.
func (r *clusterRuntime) usableReplicas() int {
	p := r.policy.Load()
	t := r.cluster.Topology()
	n := 0
	for i := range t.Servers {
		if router.Eligible(&t.Servers[i], t, *p) {
			n++
		}
	}
	return n
}

// leads: this instance may act on the cluster on its own (always alone).
func (r *clusterRuntime) leads() bool { return r.coord == nil || r.coord.Leader() }

// coordination describes the cluster's coordination for operators.
func (r *clusterRuntime) coordination() (string, bool) {
	if r.coord == nil {
		return "standalone", true
	}
	return r.coord.Describe(), r.coord.Healthy()
}

// applyOffline puts each backend offline or online as the config says
// (SET BACKEND … OFFLINE is kept there).
func applyOffline(r *clusterRuntime, cc conf.Cluster) {
	for _, b := range cc.Backends {
		_ = r.cluster.Topo.SetOffline(b.Name, b.Offline)
	}
}

func serversOf(cc conf.Cluster) []backend.Server {
	servers := make([]backend.Server, 0, len(cc.Backends))
	for _, b := range cc.Backends {
		servers = append(servers, backend.Server{Name: b.Name, Addr: b.Addr(), Weight: b.Weight})
	}
	return servers
}

func poolOptions(p conf.PoolSettings) backend.PoolOptions {
	return backend.PoolOptions{MaxOpen: p.MaxConnections, MaxIdle: p.MaxIdle, IdleTimeout: p.IdleTimeout.D(),
		MaxLifetime: p.MaxLifetime.D(), ConnectTimeout: p.ConnectTimeout.D(), IOTimeout: p.IOTimeout.D()}
}

func monitorOptions(m conf.Monitor) backend.MonitorOptions {
	return backend.MonitorOptions{Account: backend.Account{User: m.User, Password: m.Password.Value()},
		Interval: m.Interval.D(), Timeout: max(m.ConnectTimeout.D(), m.Interval.D()), FailCount: m.FailCount}
}

func actuatorOf(cc conf.Cluster, log *zap.Logger) *failover.Actuator {
	return &failover.Actuator{
		Log:         log,
		Admin:       backend.Account{User: cc.Monitor.User, Password: cc.Monitor.Password.Value()},
		Replication: backend.Account{User: cc.Failover.ReplicationUser, Password: cc.Failover.ReplicationPassword.Value()},
		Timeout:     cc.Monitor.ConnectTimeout.D(),
	}
}

func policyOf(r conf.Routing) *router.Policy {
	return &router.Policy{Split: r.ReadWriteSplit, ReadYourWrites: r.Consistency == "session", MaxLag: r.MaxReplicaLag.D(),
		ReplicaFallbackToMaster: r.NoReplica == "master", PerStatement: r.ReplicaChoice == "statement"}
}

// engineSettings are the parts of a cluster's config its failover engine
// uses.
func engineSettings(cc conf.Cluster, hooks conf.Hooks, state *failover.StateFile) failover.Settings {
	f, t := cc.Failover, cc.Failover.Timeouts
	set := failover.Settings{
		Enabled: f.Enabled, Cooldown: f.Cooldown.D(), ApplyTimeout: f.ApplyTimeout.D(),
		Interval: cc.Monitor.Interval.D(), FailCount: cc.Monitor.FailCount, State: state, SwitchoverDrain: f.SwitchoverDrain.D(),
		Hooks: failover.Hooks{PreFailover: hooks.PreFailover, PostFailover: hooks.PostFailover,
			PostSwitchover: hooks.PostSwitchover, Timeout: hooks.Timeout.D()},
		Timeouts: failover.Timeouts{Hold: t.Hold.D(), Inspect: t.Inspect.D(), Fence: t.Fence.D(), Promote: t.Promote.D(),
			Repoint: t.Repoint.D(), Verify: t.Verify.D(), Coordinate: t.Coordinate.D(), Undo: t.Undo.D(), Rejoin: t.Rejoin.D()},
	}
	for _, b := range cc.Backends {
		set.Servers = append(set.Servers, failover.ServerConfig{Name: b.Name, Addr: b.Addr(), Candidate: b.Candidate, NoMaster: b.NoMaster})
	}
	return set
}

// proxySettings are the parts of the config client sessions use.
// proxySettings translates the config for the proxy; rs are its rules,
// compiled, and qlog the query log (nil: none).
func proxySettings(c *conf.Config, rs *rules.Set, qlog *proxy.QueryLog) *proxy.Settings {
	set := &proxy.Settings{
		Rules:            rs,
		QueryLog:         qlog,
		SlowQuery:        c.Log.SlowQueryTime.D(),
		Users:            map[string]conf.User{},
		MaxAllowedPacket: int(c.MaxAllowedPacket),
		HandshakeTimeout: c.HandshakeTimeout.D(),
		MaxConnections:   c.MaxClientConnections,
		LoadDataLocal:    c.LoadDataLocal,
		Multiplexing:     c.Pool.Multiplexing,
		Routes:           router.ClusterMap{Schemas: map[string]string{}, Users: map[string]string{}, Default: c.DefaultCluster()},
		Clusters:         map[string]*proxy.ClusterSettings{},
	}
	for _, u := range c.Users {
		set.Users[u.Name] = u
		if u.Cluster != "" {
			set.Routes.Users[u.Name] = u.Cluster
		}
	}
	for db, cl := range c.Schemas {
		set.Routes.Schemas[lower(db)] = cl
	}
	for _, cc := range c.ClusterList() {
		set.Clusters[cc.Name] = &proxy.ClusterSettings{
			Policy: *policyOf(cc.Routing), IOTimeout: cc.Pool.IOTimeout.D(), QueryTimeout: cc.Pool.QueryTimeout.D(),
			AcquireTimeout: cc.Pool.AcquireTimeout.D(), GTIDWait: cc.Routing.GTIDWaitTimeout.D(), AvoidFor: 4 * cc.Monitor.Interval.D(),
			HoldTimeout: cc.Failover.HoldTimeout.D(),
			TxReplay:    proxy.TxReplay{Enabled: cc.Routing.TransactionReplay.Enabled, MaxSize: int(cc.Routing.TransactionReplay.MaxSize)},
		}
	}
	return set
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func backendTLSConfig(t conf.TLSClient) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator's choice
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("pool.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("pool.tls.ca: no certificate in %s", t.CA)
		}
		c.RootCAs = pool
	}
	return c, nil
}
