package main

import (
	"context"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/metrics"
	"github.com/switchyard/switchyard/rules"
)

// sources is the app as the admin port sees it (admin.Sources).
type sources struct{ a *app }

var _ admin.Sources = sources{}

func (s sources) Version() string    { return version }
func (s sources) Started() time.Time { return s.a.started }

func (s sources) Clusters() []admin.Cluster {
	out := make([]admin.Cluster, 0, len(s.a.clusters))
	for _, r := range s.a.clusters {
		state, ok := r.coordination()
		out = append(out, admin.Cluster{Name: r.name, Backend: r.cluster, Engine: r.engine, Coordination: state, CoordinationOK: ok})
	}
	return out
}

func (s sources) Sessions() []admin.SessionInfo {
	var out []admin.SessionInfo
	for _, x := range s.a.proxy.Sessions() {
		out = append(out, admin.SessionInfo(x))
	}
	return out
}

func (s sources) Counters() map[string]uint64 {
	c := counters(s.a)
	c["connections_current"] = uint64(s.a.proxy.SessionCount())
	return c
}

func (s sources) QueryStats() []admin.QueryStat {
	var out []admin.QueryStat
	for _, q := range s.a.proxy.QueryStats() {
		out = append(out, admin.QueryStat(q))
	}
	return out
}

func (s sources) ResetQueryStats() { s.a.proxy.ResetQueryStats() }

func (s sources) TxOutcomes(cluster string, epoch uint64) (int, int) {
	o := s.a.proxy.TxOutcomes(cluster, epoch)
	return o.Replayed, o.Aborted
}

func (s sources) Kill(id uint32, query bool) error { return s.a.proxy.Kill(id, query) }

// Config renders the running config (secrets as their references or
// masked).
func (s sources) Config() string {
	out, _ := yaml.Marshal(s.a.cfg.Load())
	head := fmt.Sprintf("# runtime configuration version %d", s.a.version.Load())
	if s.a.coord != nil {
		head += " (the layer in etcd over " + s.a.cfg.Load().Path + "); applied by:"
		seen := map[string]bool{}
		for _, m := range s.Members() {
			if !seen[m.ID] {
				seen[m.ID] = true
				head += fmt.Sprintf(" %s=%d", m.ID, m.ConfigVersion)
			}
		}
	} else {
		head += " (admin changes are written to " + s.a.cfg.Load().Path + ")"
	}
	return head + "\n" + string(out)
}

func (s sources) Reload() error { return s.a.reload(s.a.cfg.Load().Path) }

func (s sources) Rules() []rules.RuleInfo { return s.a.proxy.Settings().Rules.Info() }

func (s sources) AddUser(u admin.UserChange) (int64, error) {
	return s.a.changeRuntime("add user "+u.Name, addUserEdit(u))
}
func (s sources) DropUser(name string) (int64, error) {
	return s.a.changeRuntime("drop user "+name, dropUserEdit(name))
}
func (s sources) AddRule(text, before string) (int64, error) {
	return s.a.changeRuntime("add rule", addRuleEdit(text, before))
}
func (s sources) DropRule(name string) (int64, error) {
	return s.a.changeRuntime("drop rule "+name, dropRuleEdit(name))
}
func (s sources) SetWeight(b string, w int) (int64, error) {
	return s.a.changeRuntime(fmt.Sprintf("weight of %s to %d", b, w), weightEdit(b, w))
}
func (s sources) SetOffline(b string, off bool) (int64, error) {
	return s.a.changeRuntime(fmt.Sprintf("%s offline=%v", b, off), offlineEdit(b, off))
}

func (s sources) ExplainRoute(sql, user, db string) (admin.RouteExplanation, error) {
	e, err := s.a.proxy.Explain(sql, user, db)
	return admin.RouteExplanation{Cluster: e.Cluster, Target: e.Target, Reason: e.Reason, Rules: e.Rules, Cache: e.Cache}, err
}

func (s sources) Members() []admin.Member {
	if s.a.coord == nil {
		var out []admin.Member
		for _, r := range s.a.clusters {
			m, e := r.cluster.Topo.Master()
			out = append(out, admin.Member{ID: "(this instance, standalone)", Addr: s.a.cfg.Load().Admin.Listen, Cluster: r.name,
				Master: m, Epoch: e, Leader: true, ConfigVersion: s.a.version.Load()})
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list, err := s.a.coord.Members(ctx)
	if err != nil {
		return nil
	}
	out := make([]admin.Member, 0, len(list))
	for _, m := range list {
		out = append(out, admin.Member(m))
	}
	return out
}

// metricSources is the app as the metrics see it (metrics.Sources).
type metricSources struct{ a *app }

var _ metrics.Sources = metricSources{}

func (s metricSources) Clusters() []metrics.Cluster {
	out := make([]metrics.Cluster, 0, len(s.a.clusters))
	for _, r := range s.a.clusters {
		c := metrics.Cluster{Name: r.name, Backend: r.cluster, Leader: r.leads(), UsableReplicas: r.usableReplicas(),
			BlockedKind: r.engine.Blocked().Kind}
		for _, rec := range r.engine.History() {
			if rec.Error == "" {
				c.Succeeded++
			} else {
				c.Failed++
			}
		}
		out = append(out, c)
	}
	return out
}

func (s metricSources) Counters() map[string]uint64 { return counters(s.a) }
func (s metricSources) Sessions() int               { return s.a.proxy.SessionCount() }

func (s metricSources) Coordination() (configured, healthy bool) {
	return s.a.coord != nil, s.a.coord == nil || s.a.coord.Healthy()
}

func (s metricSources) Serving() (bool, string) {
	if why := s.a.failed.Load(); why != nil {
		return false, *why
	}
	return true, ""
}

// counters are the process's cumulative counters by name.
func counters(a *app) map[string]uint64 {
	st := a.proxy.StatsRef()
	drained := 0
	for _, r := range a.clusters {
		for _, rec := range r.engine.History() {
			drained += rec.Drained
		}
	}
	cs := a.cache.Stats()
	return map[string]uint64{
		"cache_hits": cs.Hits, "cache_misses": cs.Misses, "cache_entries": uint64(cs.Entries), "cache_bytes": uint64(cs.Bytes),
		"cache_stored": cs.Stored, "cache_dropped_stale": cs.Dropped, "cache_evicted": cs.Evicted,
		"connections_total": st.Connections.Load(), "auth_failures": st.AuthFailures.Load(), "queries": st.Queries.Load(), "backend_errors": st.BackendErrors.Load(),
		"rejected_connections": st.Rejected.Load(), "accept_errors": st.AcceptErrors.Load(),
		"transactions_drained": uint64(drained), "transactions_replayed": st.TxReplayed.Load(),
		"transactions_replay_failed": st.TxReplayFailed.Load(), "transactions_aborted": st.TxAborted.Load(),
	}
}
