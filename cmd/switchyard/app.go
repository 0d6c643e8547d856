package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/coord"
	"github.com/switchyard/switchyard/failover"
	"github.com/switchyard/switchyard/metrics"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/web"
)

// app is the running process: everything cmd wired together.
type app struct {
	log     *zap.Logger
	started time.Time
	// cfg is the running config (a reload swaps it whole).
	cfg      atomic.Pointer[conf.Config]
	clusters []*clusterRuntime
	state    *failover.StateFile // nil without failover.state_file
	coord    *coord.Coordinator  // nil when running alone
	cert     *certificate        // nil without client TLS
	proxy    *proxy.Server
	qlog     *proxy.QueryLog // nil without log.query_log
	cache    *cache.Cache    // the result cache rules with cache_ttl fill
	admin    *admin.Server
	web      *web.Server
	metrics  *metrics.Metrics
	threads  *threadCount // GOMAXPROCS, fixed or sized to the load
	// stopEngines ends the failover engines' loops.
	stopEngines context.CancelFunc
	// failed: a listener stopped for good; /readyz says so before the
	// process exits. failures receives each listener's end.
	failed   atomic.Pointer[string]
	failures chan error
	// reloadMu lets one reload or runtime change run at a time.
	reloadMu sync.Mutex
	// layer is the runtime configuration from etcd applied over the file
	// (nil: none, or running alone); version is the runtime
	// configuration version applied (SHOW CONFIG).
	layer   atomic.Pointer[conf.Runtime]
	version atomic.Int64
}

// start builds and starts everything; on failure what was started is
// stopped again.
func start(cfg *conf.Config, log *zap.Logger) (_ *app, err error) {
	a := &app{log: log, started: time.Now(), failures: make(chan error, 3), threads: newThreadCount(cfg.Threads)}
	a.cfg.Store(cfg)
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			a.stop(ctx)
			cancel()
		}
	}()
	for _, step := range []func(*conf.Config) error{a.startClusters, a.startCoordination, a.startProxy, a.startAdmin, a.startHTTP} {
		if err := step(cfg); err != nil {
			return nil, err
		}
	}
	a.serve()
	if a.coord != nil {
		a.watchRuntime() // the runtime configuration in etcd, now and as it changes
	}
	log.Info("switchyard started", zap.String("version", version), zap.String("listen", a.proxy.Addr().String()),
		zap.Int("clusters", len(a.clusters)), zap.Bool("tls", a.cert != nil))
	return a, nil
}

// startClusters discovers, builds and monitors every cluster.
func (a *app) startClusters(cfg *conf.Config) error {
	if cfg.Failover.StateFile != "" {
		state, err := failover.OpenStateFile(cfg.Failover.StateFile)
		if err != nil {
			return err
		}
		a.state = state
	}
	for _, cc := range cfg.ClusterList() {
		r, err := startCluster(context.Background(), cc, cfg, a.state, a.log)
		if err != nil {
			return err
		}
		a.clusters = append(a.clusters, r)
	}
	return nil
}

// startCoordination joins every cluster to etcd when configured.
func (a *app) startCoordination(cfg *conf.Config) error {
	e := cfg.Coordination.Etcd
	if e == nil {
		return nil
	}
	id := cfg.Coordination.InstanceID
	if id == "" {
		host, _ := os.Hostname()
		id = host + "/" + cfg.Listen
	}
	c, err := coord.Start(context.Background(), coord.Settings{Endpoints: e.Endpoints, Prefix: e.Prefix, InstanceID: id,
		Addr: cfg.Admin.Listen, DialTimeout: e.DialTimeout.D(), SessionTTL: e.SessionTTL.D()}, a.log.Named("coord"))
	if err != nil {
		return fmt.Errorf("coordination: %w", err)
	}
	a.coord = c
	// The result cache is made with the proxy, after this step; its
	// invalidations are wired to etcd there.
	for _, r := range a.clusters {
		if r.coord, err = c.Join(context.Background(), r.cluster); err != nil {
			return fmt.Errorf("coordination of cluster %s: %w", r.name, err)
		}
		r.engine.SetCoordinator(r.coord)
	}
	return nil
}

// startProxy builds the client endpoint in front of every cluster and
// binds its listener.
func (a *app) startProxy(cfg *conf.Config) error {
	var tlsConf *tls.Config
	if cfg.TLS.Enabled() {
		cert, err := loadCertificate(cfg.TLS)
		if err != nil {
			return err
		}
		a.cert = cert
		tlsConf = &tls.Config{GetCertificate: cert.get, MinVersion: tls.VersionTLS12}
	}
	version := cfg.ServerVersion
	if version == "" { // follow the backends: MariaDB or MySQL, and which release
		version = backend.HandshakeVersion(a.clusters[0].version)
	}
	var list []*proxy.Backends
	for _, r := range a.clusters {
		list = append(list, r.backends())
	}
	rs, err := rules.Compile(cfg.Rules, nil)
	if err != nil {
		return err
	}
	if a.qlog, err = openQueryLog(cfg.Log.QueryLog); err != nil {
		return err
	}
	px, err := proxy.New(list, proxySettings(cfg, rs, a.qlog), version, tlsConf, a.log)
	if err != nil {
		return err
	}
	a.cache = cache.New(int64(cfg.Cache.MaxSize))
	if a.coord != nil { // writes through one instance invalidate every instance's cache
		a.cache.OnInvalidate = a.coord.PublishInvalidation
		a.coord.WatchInvalidations(a.cache.InvalidateRemote)
	}
	px.SetCache(a.cache)
	a.proxy = px
	return px.Listen(cfg.Listen)
}

// openQueryLog opens log.query_log: a file (appended to), "stdout", or
// nothing.
func openQueryLog(path string) (*proxy.QueryLog, error) {
	switch path {
	case "":
		return nil, nil
	case "stdout":
		return proxy.NewQueryLog(os.Stdout, nil), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log.query_log: %w", err)
	}
	return proxy.NewQueryLog(f, f), nil
}

// startAdmin binds the admin port, when configured.
func (a *app) startAdmin(cfg *conf.Config) error {
	if cfg.Admin.Listen == "" {
		return nil
	}
	adm, err := admin.New(sources{a}, cfg.Admin.User, cfg.Admin.Password.Value(), a.log.Named("admin"))
	if err != nil {
		return err
	}
	if err := adm.Listen(cfg.Admin.Listen); err != nil {
		return err
	}
	a.admin = adm
	return nil
}

// startHTTP builds the metrics and binds the status page, when
// configured.
func (a *app) startHTTP(cfg *conf.Config) error {
	a.metrics = metrics.New(metricSources{a})
	a.proxy.SetObserver(a.metrics.ObserveStatement)
	if cfg.HTTP.Listen == "" {
		return nil
	}
	a.web = web.New(web.Sources{Status: func() admin.Status { return admin.StatusOf(sources{a}) }, Metrics: a.metrics.Handler(),
		Ready: a.metrics.Ready, User: cfg.HTTP.User, Password: cfg.HTTP.Password.Value(), Pprof: cfg.HTTP.Pprof}, a.log.Named("http"))
	return a.web.Listen(cfg.HTTP.Listen)
}

// serve starts the engines and the listeners' accept loops. A listener
// that stops for good is reported on failures.
func (a *app) serve() {
	ctx, stop := context.WithCancel(context.Background())
	a.stopEngines = stop
	for _, r := range a.clusters {
		go r.engine.Run(ctx)
	}
	a.listen("client", a.proxy.Serve)
	if a.admin != nil {
		a.listen("admin", a.admin.Serve)
	}
	if a.web != nil {
		a.listen("HTTP", a.web.Serve)
	}
}

// listen runs one listener's accept loop; its end (other than by stop)
// marks the process as failed first, so /readyz turns false before it
// exits.
func (a *app) listen(name string, serve func() error) {
	go func() {
		err := serve()
		if err == nil {
			return // closed by stop
		}
		why := "the " + name + " listener stopped: " + err.Error()
		a.failed.CompareAndSwap(nil, &why)
		a.failures <- errors.New(why)
	}()
}

// stop shuts everything down in order: no new clients, sessions drained
// (until ctx ends), engines, coordination, monitors, pools. It copes with
// an app that started only in part.
func (a *app) stop(ctx context.Context) {
	if a.admin != nil {
		a.admin.Close()
	}
	if a.web != nil {
		a.web.Close()
	}
	if a.proxy != nil {
		a.proxy.Shutdown(ctx)
	}
	if a.qlog != nil {
		_ = a.qlog.Close()
	}
	if a.stopEngines != nil {
		a.stopEngines()
	}
	if a.coord != nil {
		a.coord.Close()
	}
	for _, r := range a.clusters {
		r.monitor.Stop()
		r.cluster.Close()
	}
	if a.threads != nil {
		a.threads.stop()
	}
}

// certificate is the client TLS certificate, swapped by a reload.
type certificate struct {
	cur atomic.Pointer[tls.Certificate]
}

func loadCertificate(t conf.TLSServer) (*certificate, error) {
	c := &certificate{}
	return c, c.load(t)
}

func (c *certificate) load(t conf.TLSServer) error {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return fmt.Errorf("tls: load certificate: %w", err)
	}
	c.cur.Store(&cert)
	return nil
}

func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }
