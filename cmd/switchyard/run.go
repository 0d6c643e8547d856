package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/check"
	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/coord"
	"github.com/switchyard/switchyard/failover"
	"github.com/switchyard/switchyard/metrics"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/web"
)

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("config", "switchyard.yaml", "config file")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long busy sessions may finish")
	skipCheck := fs.Bool("skip-check", false, "start even if the pre-flight check finds errors")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := conf.Load(*path)
	if err != nil {
		return err
	}
	log, reopenLog, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if cfg.Threads > 0 {
		runtime.GOMAXPROCS(cfg.Threads)
	}
	// Signals are taken before anything listens: one that arrives while
	// the proxy starts (logrotate's SIGUSR1, a reload, a stop) waits for
	// the loop below instead of killing the process by default action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	if err := preflight(cfg, log, *skipCheck); err != nil {
		return err
	}
	app, err := start(cfg, log)
	if err != nil {
		return err
	}
	sdNotify("READY=1")
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			sdNotify("RELOADING=1")
			_ = app.reload(*path)
			sdNotify("READY=1")
			continue
		case syscall.SIGUSR1:
			if reopenLog != nil {
				if err := reopenLog(); err != nil {
					fmt.Fprintln(os.Stderr, "switchyard: reopen log:", err)
				}
				log.Info("log file reopened")
			}
			continue
		}
		sdNotify("STOPPING=1")
		log.Info("shutting down: draining sessions", zap.Duration("timeout", *drain))
		stopBounded(app, *drain, sigs, log)
		log.Info("stopped")
		return nil
	}
	return nil
}

// stopGrace is how long a stop may take beyond the drain timeout: every
// step after the drain is bounded on its own (etcd, backends, clients
// that do not answer), and this is the backstop if one is not.
const stopGrace = 10 * time.Second

// stopBounded stops the app within drain + stopGrace, whatever is down;
// a second SIGTERM or SIGINT stops at once.
func stopBounded(a *app, drain time.Duration, sigs <-chan os.Signal, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	done := make(chan struct{})
	go func() { a.stop(ctx); close(done) }()
	backstop := time.NewTimer(drain + stopGrace)
	defer backstop.Stop()
	for {
		select {
		case <-done:
			return
		case sig := <-sigs:
			if sig == syscall.SIGTERM || sig == syscall.SIGINT {
				log.Warn("second signal: stopping without waiting")
				return
			}
		case <-backstop.C:
			log.Error("stop did not finish in time: exiting anyway", zap.Duration("waited", drain+stopGrace))
			return
		}
	}
}

// preflight runs the pre-flight check: errors stop start-up (unless
// skipped), warnings are logged.
func preflight(cfg *conf.Config, log *zap.Logger, skip bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := check.Run(ctx, cfg)
	for _, f := range r.Findings {
		fields := []zap.Field{zap.String("backend", f.Backend), zap.String("remedy", f.Remedy)}
		if f.Severity == check.Error {
			log.Error("pre-flight: "+f.Problem, fields...)
		} else {
			log.Warn("pre-flight: "+f.Problem, fields...)
		}
	}
	if r.Errors() > 0 && !skip {
		return fmt.Errorf("pre-flight check found %d error(s) (see the log, or run 'switchyard check'); use --skip-check to start anyway", r.Errors())
	}
	return nil
}

// app is the running process: everything cmd wired together.
type app struct {
	mu         sync.Mutex // guards cfg
	cfg        *conf.Config
	started    time.Time
	admin      *admin.Server
	coord      *coord.Coordinator // nil when running alone
	metrics    *metrics.Metrics
	web        *web.Server // nil when http.listen is empty
	log        *zap.Logger
	cluster    *backend.Cluster
	monitor    *backend.Monitor
	engine     *failover.Engine
	stopEngine context.CancelFunc
	proxy      *proxy.Server
	served     chan error
}

func start(cfg *conf.Config, log *zap.Logger) (*app, error) {
	servers := serversOf(cfg)
	master, masterVersion, err := discoverMaster(cfg, servers, log)
	if err != nil {
		return nil, err
	}
	backendTLS, err := backendTLSConfig(cfg.Pool.TLS)
	if err != nil {
		return nil, err
	}
	cluster := backend.NewCluster(servers, master, backend.PoolOptions{
		MaxOpen: cfg.Pool.MaxConnections, MaxIdle: cfg.Pool.MaxIdle,
		IdleTimeout: cfg.Pool.IdleTimeout.D(), MaxLifetime: cfg.Pool.MaxLifetime.D(),
		ConnectTimeout: cfg.Pool.ConnectTimeout.D(), IOTimeout: cfg.Pool.IOTimeout.D(),
	}, backendTLS)
	monitor := backend.NewMonitor(cluster, backend.MonitorOptions{
		Account:   backend.Account{User: cfg.Monitor.User, Password: cfg.Monitor.Password.Value()},
		Interval:  cfg.Monitor.Interval.D(),
		Timeout:   max(cfg.Monitor.ConnectTimeout.D(), cfg.Monitor.Interval.D()),
		FailCount: cfg.Monitor.FailCount,
	}, log.Named("monitor"))
	engine := failover.New(cluster, &failover.Actuator{
		Admin:       backend.Account{User: cfg.Monitor.User, Password: cfg.Monitor.Password.Value()},
		Replication: backend.Account{User: cfg.Failover.ReplicationUser, Password: cfg.Failover.ReplicationPassword.Value()},
		Timeout:     cfg.Monitor.ConnectTimeout.D(),
	}, engineSettings(cfg), log.Named("failover"))
	monitor.OnCheck = func(name string, h backend.Health) {
		if m, _ := cluster.Master(); name == m && !h.Up {
			engine.Notify()
		}
	}
	monitor.Start(context.Background())
	var coordinator *coord.Coordinator
	if e := cfg.Coordination.Etcd; e != nil {
		id := cfg.Coordination.InstanceID
		if id == "" {
			host, _ := os.Hostname()
			id = host + "/" + cfg.Listen
		}
		c, err := coord.Start(context.Background(), coord.Settings{Endpoints: e.Endpoints, Prefix: e.Prefix, InstanceID: id,
			Addr: cfg.Admin.Listen, DialTimeout: e.DialTimeout.D(), SessionTTL: e.SessionTTL.D()}, cluster, log.Named("coord"))
		if err != nil {
			return nil, fmt.Errorf("coordination: %w", err)
		}
		coordinator = c
		engine.SetCoordinator(c)
	}
	var clientTLS *tls.Config
	if cfg.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: load certificate: %w", err)
		}
		clientTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	version := cfg.ServerVersion
	if version == "" { // follow the backends: MariaDB or MySQL, and which release
		version = backend.HandshakeVersion(masterVersion)
	}
	px, err := proxy.New(cluster, proxySettings(cfg), version, clientTLS, log)
	if err != nil {
		return nil, err
	}
	if err := px.Listen(cfg.Listen); err != nil {
		return nil, err
	}
	a := &app{log: log, cluster: cluster, monitor: monitor, engine: engine, proxy: px, served: make(chan error, 1),
		cfg: cfg, started: time.Now(), coord: coordinator}
	if cfg.Admin.Listen != "" {
		adm, err := admin.New(a.adminSources(), cfg.Admin.User, cfg.Admin.Password.Value(), log.Named("admin"))
		if err != nil {
			return nil, err
		}
		if err := adm.Listen(cfg.Admin.Listen); err != nil {
			return nil, err
		}
		a.admin = adm
		go adm.Serve()
	}
	a.metrics = metrics.New(metrics.Sources{
		Cluster: cluster, Counters: a.counters, Sessions: px.SessionCount,
		Coordinated: a.coordinated, Leader: a.leads, MaxConnections: cfg.Pool.MaxConnections,
		UsableReplicas: a.usableReplicas,
		Failovers: func() (ok, failed int) {
			for _, r := range engine.History() {
				if r.Error == "" {
					ok++
				} else {
					failed++
				}
			}
			return ok, failed
		},
	})
	px.SetObserver(a.metrics.ObserveStatement)
	if cfg.HTTP.Listen != "" {
		a.web = web.New(web.Sources{Status: a.adminSources().Status, Metrics: a.metrics.Handler(), Ready: a.metrics.Ready,
			User: cfg.HTTP.User, Password: cfg.HTTP.Password.Value(), Pprof: cfg.HTTP.Pprof}, log.Named("http"))
		if err := a.web.Listen(cfg.HTTP.Listen); err != nil {
			return nil, err
		}
	}
	engineCtx, stopEngine := context.WithCancel(context.Background())
	a.stopEngine = stopEngine
	go engine.Run(engineCtx)
	go func() { a.served <- px.Serve() }()
	log.Info("switchyard started", zap.String("version", version), zap.String("listen", px.Addr().String()),
		zap.String("master", master), zap.Bool("tls", clientTLS != nil))
	return a, nil
}

// discoverMaster asks every backend who it is, so a restart never guesses.
// It returns the master's name and its @@version.
func discoverMaster(cfg *conf.Config, servers []backend.Server, log *zap.Logger) (string, string, error) {
	account := backend.Account{User: cfg.Monitor.User, Password: cfg.Monitor.Password.Value()}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	obs := make([]backend.Observation, len(servers))
	done := make(chan struct{})
	for i, s := range servers {
		go func() {
			obs[i] = backend.Observe(ctx, s, account, cfg.Monitor.ConnectTimeout.D())
			done <- struct{}{}
		}()
	}
	for range servers {
		<-done
	}
	for _, o := range obs {
		if o.Err != nil {
			log.Warn("backend not reachable at start-up", zap.String("backend", o.Server.Name), zap.Error(o.Err))
		}
	}
	master, err := backend.FindMaster(obs)
	for _, o := range obs {
		if o.Server.Name == master {
			return master, o.Version, err
		}
	}
	return master, "", err
}

// proxySettings are the parts of the config client sessions use.
func proxySettings(c *conf.Config) *proxy.Settings {
	users := make(map[string]conf.User, len(c.Users))
	for _, u := range c.Users {
		users[u.Name] = u
	}
	return &proxy.Settings{
		Users:            users,
		MaxAllowedPacket: int(c.MaxAllowedPacket),
		HandshakeTimeout: c.HandshakeTimeout.D(),
		MaxConnections:   c.MaxClientConnections,
		LoadDataLocal:    c.LoadDataLocal,
		IOTimeout:        c.Pool.IOTimeout.D(),
		QueryTimeout:     c.Pool.QueryTimeout.D(),
		AcquireTimeout:   c.Pool.AcquireTimeout.D(),
		Multiplexing:     c.Pool.Multiplexing,
		Policy: router.Policy{
			Split:                   c.Routing.ReadWriteSplit,
			ReadYourWrites:          c.Routing.Consistency == "session",
			MaxLag:                  c.Routing.MaxReplicaLag.D(),
			ReplicaFallbackToMaster: c.Routing.NoReplica == "master",
			PerStatement:            c.Routing.ReplicaChoice == "statement",
		},
		GTIDWait:    c.Routing.GTIDWaitTimeout.D(),
		AvoidFor:    4 * c.Monitor.Interval.D(),
		HoldTimeout: c.Failover.HoldTimeout.D(),
		TxReplay:    proxy.TxReplay{Enabled: c.Routing.TransactionReplay.Enabled, MaxSize: int(c.Routing.TransactionReplay.MaxSize)},
	}
}

// engineSettings are the parts of the config the failover engine uses.
func engineSettings(cfg *conf.Config) failover.Settings {
	t := cfg.Failover.Timeouts
	set := failover.Settings{
		Enabled: cfg.Failover.Enabled, Cooldown: cfg.Failover.Cooldown.D(), ApplyTimeout: cfg.Failover.ApplyTimeout.D(),
		Interval: cfg.Monitor.Interval.D(), FailCount: cfg.Monitor.FailCount,
		StateFile: cfg.Failover.StateFile, SwitchoverDrain: cfg.Failover.SwitchoverDrain.D(),
		Hooks: failover.Hooks{PreFailover: cfg.Hooks.PreFailover, PostFailover: cfg.Hooks.PostFailover,
			PostSwitchover: cfg.Hooks.PostSwitchover, Timeout: cfg.Hooks.Timeout.D()},
		Timeouts: failover.Timeouts{Hold: t.Hold.D(), Inspect: t.Inspect.D(), Fence: t.Fence.D(), Promote: t.Promote.D(),
			Repoint: t.Repoint.D(), Verify: t.Verify.D(), Coordinate: t.Coordinate.D(), Undo: t.Undo.D(), Rejoin: t.Rejoin.D()},
	}
	for _, b := range cfg.Backends {
		set.Servers = append(set.Servers, failover.ServerConfig{Name: b.Name, Addr: b.Addr(), Candidate: b.Candidate, NoMaster: b.NoMaster})
	}
	return set
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

// reload re-reads the config file and applies users, limits, weights and
// the backend list without dropping client connections. An invalid file
// (or a change that cannot apply live) is rejected and the old one kept.
func (a *app) reload(path string) error {
	cfg, err := conf.Load(path)
	if err != nil {
		a.log.Error("reload rejected: keeping the running config", zap.Error(err))
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cfg.Listen != a.cfg.Listen || cfg.Admin.Listen != a.cfg.Admin.Listen {
		err := fmt.Errorf("listen addresses cannot change on reload (restart instead)")
		a.log.Error("reload rejected: keeping the running config", zap.Error(err))
		return err
	}
	if err := a.cluster.SetServers(serversOf(cfg)); err != nil {
		a.log.Error("reload rejected: keeping the running config", zap.Error(err))
		return err
	}
	a.monitor.Sync(context.Background())
	a.engine.SetServers(engineSettings(cfg).Servers)
	a.proxy.Reload(proxySettings(cfg))
	a.cfg = cfg
	a.log.Info("config reloaded", zap.String("file", cfg.Path))
	return nil
}

func (a *app) adminSources() admin.Sources {
	return admin.Sources{
		Version: version, Started: a.started, Cluster: a.cluster, Engine: a.engine,
		Sessions: func() []admin.SessionInfo {
			var out []admin.SessionInfo
			for _, s := range a.proxy.Sessions() {
				out = append(out, admin.SessionInfo(s))
			}
			return out
		},
		Counters: func() map[string]uint64 {
			c := a.counters()
			c["connections_current"] = uint64(a.proxy.SessionCount())
			return c
		},
		QueryStats: func() []admin.QueryStat {
			var out []admin.QueryStat
			for _, q := range a.proxy.QueryStats() {
				out = append(out, admin.QueryStat(q))
			}
			return out
		},
		ResetQueryStats: a.proxy.ResetQueryStats,
		Kill:            a.proxy.Kill,
		TxOutcomes: func(epoch uint64) (int, int) {
			o := a.proxy.TxOutcomes(epoch)
			return o.Replayed, o.Aborted
		},
		Config: func() string {
			a.mu.Lock()
			defer a.mu.Unlock()
			out, _ := yaml.Marshal(a.cfg)
			return string(out)
		},
		Reload: func() error {
			a.mu.Lock()
			path := a.cfg.Path
			a.mu.Unlock()
			return a.reload(path)
		},
		Drain: a.cluster.Drain,
		Coordination: func() (string, bool) {
			if a.coord == nil {
				return "standalone", true
			}
			if !a.coord.Healthy() {
				return "etcd unreachable (serving with the last known topology, never promoting)", false
			}
			if a.coord.Leader() {
				return "etcd, leader", true
			}
			return "etcd, follower", true
		},
		Members: func() []admin.Member {
			if a.coord == nil {
				m, e := a.cluster.Master()
				return []admin.Member{{ID: "(this instance, standalone)", Addr: a.cfg.Admin.Listen, Master: m, Epoch: e, Leader: true}}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			list, err := a.coord.Members(ctx)
			if err != nil {
				return nil
			}
			out := make([]admin.Member, 0, len(list))
			for _, m := range list {
				out = append(out, admin.Member(m))
			}
			return out
		},
	}
}

// coordinated is false when etcd is configured and does not answer.
func (a *app) coordinated() bool { return a.coord == nil || a.coord.Healthy() }

// leads is true when this instance may act on its own (always alone).
func (a *app) leads() bool { return a.coord == nil || a.coord.Leader() }

// usableReplicas counts the replicas the router would read from now.
func (a *app) usableReplicas() int {
	a.mu.Lock()
	p := proxySettings(a.cfg).Policy
	a.mu.Unlock()
	t := a.cluster.Topology()
	n := 0
	for i := range t.Servers {
		if router.Eligible(&t.Servers[i], t, p) {
			n++
		}
	}
	return n
}

// counters are the proxy's cumulative counters by name.
func (a *app) counters() map[string]uint64 {
	st := a.proxy.StatsRef()
	drained := 0
	for _, r := range a.engine.History() {
		drained += r.Drained
	}
	return map[string]uint64{
		"connections_total": st.Connections.Load(), "auth_failures": st.AuthFailures.Load(),
		"queries": st.Queries.Load(), "backend_errors": st.BackendErrors.Load(),
		"rejected_connections": st.Rejected.Load(),
		"transactions_drained": uint64(drained), "transactions_replayed": st.TxReplayed.Load(),
		"transactions_replay_failed": st.TxReplayFailed.Load(), "transactions_aborted": st.TxAborted.Load(),
	}
}

func serversOf(cfg *conf.Config) []backend.Server {
	servers := make([]backend.Server, 0, len(cfg.Backends))
	for _, b := range cfg.Backends {
		servers = append(servers, backend.Server{Name: b.Name, Addr: b.Addr(), Weight: b.Weight})
	}
	return servers
}

func (a *app) stop(ctx context.Context) {
	if a.admin != nil {
		a.admin.Close()
	}
	if a.web != nil {
		a.web.Close()
	}
	a.proxy.Shutdown(ctx)
	a.stopEngine()
	if a.coord != nil {
		a.coord.Close()
	}
	a.monitor.Stop()
	a.cluster.Close()
}
