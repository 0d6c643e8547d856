package proxy

import (
	"errors"

	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/rules"
)

// Explanation says where a statement would run and why (EXPLAIN ROUTE).
type Explanation struct {
	Cluster, Target, Reason, Rules, Cache string
}

// Explain decides, as a new session of user in database db would, where
// sql would run: the rules, the cluster, the server and the reason. It
// runs nothing and changes no counter.
func (s *Server) Explain(sql, user, db string) (Explanation, error) {
	set := s.settings.Load()
	cl := s.classifier.Classify(sql, false)
	act := set.Rules.Match(&rules.Statement{SQL: sql, Digest: cl.Digest, User: user, Schema: db, Kind: ruleKind(cl), Tables: cl.Tables})
	e := Explanation{Rules: act.Rules}
	if act.Block != "" {
		e.Reason = errBlocked(act).Message
		return e, nil
	}
	home := set.Routes.Home(db, user)
	name, err := set.Routes.Pick(&cl, home)
	if err != nil {
		return e, err
	}
	if r := act.Route; name == home && r != "" && r != router.RouteMaster && r != router.RouteReplica {
		name = r
	}
	e.Cluster = name
	b := s.clusters[name]
	if b == nil {
		return e, errors.New("unknown cluster " + name)
	}
	ctx := router.Context{}
	policy := set.cluster(name).Policy
	if r := act.Route; r == router.RouteMaster || r == router.RouteReplica {
		ctx.Route, ctx.Rule = r, act.Rules
	}
	if act.MaxLag > 0 {
		policy.MaxLag = act.MaxLag
	}
	d, err := router.Decide(&cl, ctx, router.NewSession(), b.topology(), policy)
	if err != nil {
		return e, err
	}
	e.Target, e.Reason = d.Target, d.Reason
	if e.Reason == "" {
		e.Reason = "a read: a replica, by weight, within max_replica_lag"
		if act.Route == router.RouteReplica || act.MaxLag > 0 {
			e.Reason += " (rule " + act.Rules + ")"
		}
	}
	e.Cache = "no rule caches it"
	if act.CacheTTL > 0 {
		e.Cache = s.cacheVerdict(cl, act)
	}
	return e, nil
}
