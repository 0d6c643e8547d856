package main

import (
	"crypto/tls"
	"fmt"
	"reflect"
	"strings"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/rules"
)

// reload re-reads the config file and applies it whole, or refuses it
// whole and keeps the running one: everything that can fail (reading the
// file, certificates, a CA, removing a master) is checked before anything
// changes, and what only a restart can change is refused with the list.
// It never waits for a failover in progress (which finishes with the
// settings it started with), and nothing the metrics read is locked.
func (a *app) reload(path string) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	next, err := a.loadConfig(path, nil)
	if err != nil {
		return a.refuse(err)
	}
	return a.applyConfig(next)
}

// applyConfig applies a loaded config whole, or refuses it whole (the
// caller holds reloadMu).
func (a *app) applyConfig(next *conf.Config) error {
	if fixed := needsRestart(a.cfg.Load(), next); len(fixed) > 0 {
		return a.refuse(fmt.Errorf("these settings change only with a restart: %s", strings.Join(fixed, ", ")))
	}
	plan, err := a.planReload(next)
	if err != nil {
		return a.refuse(err)
	}
	if err := plan.apply(a); err != nil {
		if plan.qlog != nil && plan.qlog != a.qlog {
			_ = plan.qlog.Close()
		}
		return a.refuse(err)
	}
	a.cfg.Store(next)
	a.log.Info("config reloaded", zap.String("file", next.Path))
	return nil
}

func (a *app) refuse(err error) error {
	a.log.Error("reload refused: keeping the running config", zap.Error(err))
	return err
}

// needsRestart lists what differs between the running config and the new
// one and cannot change while the process runs.
func needsRestart(cur, next *conf.Config) []string {
	var fixed []string
	differs := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			fixed = append(fixed, name)
		}
	}
	differs("listen", cur.Listen, next.Listen)
	differs("admin (listen, user, password)", []any{cur.Admin.Listen, cur.Admin.User, cur.Admin.Password.Value()},
		[]any{next.Admin.Listen, next.Admin.User, next.Admin.Password.Value()})
	differs("http (listen, user, password, pprof)", []any{cur.HTTP.Listen, cur.HTTP.User, cur.HTTP.Password.Value(), cur.HTTP.Pprof},
		[]any{next.HTTP.Listen, next.HTTP.User, next.HTTP.Password.Value(), next.HTTP.Pprof})
	differs("coordination", cur.Coordination, next.Coordination)
	differs("server_version", cur.ServerVersion, next.ServerVersion)
	differs("tls (on or off; new certificate files are read)", cur.TLS.Enabled(), next.TLS.Enabled())
	differs("load_data_local", cur.LoadDataLocal, next.LoadDataLocal)
	differs("failover.state_file", cur.Failover.StateFile, next.Failover.StateFile)
	differs("log (level, format, file)", []string{cur.Log.Level, cur.Log.Format, cur.Log.File}, []string{next.Log.Level, next.Log.Format, next.Log.File})
	var curNames, nextNames []string
	for _, c := range cur.ClusterList() {
		curNames = append(curNames, c.Name)
	}
	for _, c := range next.ClusterList() {
		nextNames = append(nextNames, c.Name)
	}
	differs("the list of clusters", curNames, nextNames)
	return fixed
}

// reloadPlan is a reload checked and prepared: applying it changes the
// running process.
type reloadPlan struct {
	next     *conf.Config
	cert     *tls.Certificate // the client certificate, read anew
	clusters []clusterPlan
	rules    *rules.Set
	// qlog is the query log to use (the running one when its path did
	// not change); oldLog is closed once the swap is done.
	qlog, oldLog *proxy.QueryLog
}

// clusterPlan is what one cluster gets.
type clusterPlan struct {
	r       *clusterRuntime
	cfg     conf.Cluster
	servers []backend.Server
	tls     *tls.Config
}

// planReload checks and prepares everything that can fail.
func (a *app) planReload(next *conf.Config) (*reloadPlan, error) {
	p := &reloadPlan{next: next, qlog: a.qlog}
	var err error
	if p.rules, err = rules.Compile(next.Rules, a.proxy.Settings().Rules); err != nil {
		return nil, err
	}
	if next.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(next.TLS.Cert, next.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: load certificate: %w", err)
		}
		p.cert = &cert
	}
	for i, cc := range next.ClusterList() {
		r := a.clusters[i]
		cp := clusterPlan{r: r, cfg: cc, servers: serversOf(cc)}
		var err error
		if cp.tls, err = backendTLSConfig(cc.Pool.TLS); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
		}
		if err := keepsMaster(r, cp.servers); err != nil {
			return nil, err
		}
		p.clusters = append(p.clusters, cp)
	}
	if next.Log.QueryLog != a.cfg.Load().Log.QueryLog { // last: nothing after it fails
		if p.qlog, err = openQueryLog(next.Log.QueryLog); err != nil {
			return nil, err
		}
		p.oldLog = a.qlog
	}
	return p, nil
}

// keepsMaster refuses a server list without the cluster's master.
func keepsMaster(r *clusterRuntime, servers []backend.Server) error {
	master, _ := r.cluster.Topo.Master()
	for _, s := range servers {
		if s.Name == master {
			return nil
		}
	}
	if master == "" {
		return nil
	}
	return fmt.Errorf("cluster %s: cannot remove the current master %s: switch over first", r.name, master)
}

// apply changes the running process. The server lists go first, all
// clusters or none (a failover between planning and now may have made a
// removed server the master: then the lists already set are put back);
// nothing after them can fail.
func (p *reloadPlan) apply(a *app) error {
	old := a.cfg.Load().ClusterList() // same clusters, same order (needsRestart)
	for i, cp := range p.clusters {
		if err := cp.r.cluster.SetServers(cp.servers, poolOptions(cp.cfg.Pool), cp.tls); err != nil {
			for j := range i {
				tlsConf, _ := backendTLSConfig(old[j].Pool.TLS)
				_ = p.clusters[j].r.cluster.SetServers(serversOf(old[j]), poolOptions(old[j].Pool), tlsConf)
			}
			return fmt.Errorf("cluster %s: %w", cp.r.name, err)
		}
	}
	for _, cp := range p.clusters {
		applyOffline(cp.r, cp.cfg)
		cp.r.monitor.SetOptions(monitorOptions(cp.cfg.Monitor))
		cp.r.monitor.Sync()
		cp.r.engine.SetSettings(engineSettings(cp.cfg, p.next.Hooks, a.state))
		cp.r.policy.Store(policyOf(cp.cfg.Routing))
	}
	if p.cert != nil {
		a.cert.cur.Store(p.cert)
	}
	a.threads.apply(p.next.Threads)
	a.proxy.Reload(proxySettings(p.next, p.rules, p.qlog))
	a.cache.SetMaxSize(int64(p.next.Cache.MaxSize))
	if p.qlog != a.qlog {
		a.qlog = p.qlog
		if p.oldLog != nil {
			_ = p.oldLog.Close() // a session still writing to it gets a closed file: that line is lost, not the process
		}
	}
	return nil
}
