package admin

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/failover"
)

// command is one admin statement: a pattern, what it does, and its line
// in HELP (none for what clients send on their own).
type command struct {
	pattern *regexp.Regexp
	usage   string
	help    string
	run     func(s *Server, args []string) (*mysql.Result, error)
}

func cmd(pattern, usage, help string, run func(s *Server, args []string) (*mysql.Result, error)) command {
	return command{regexp.MustCompile(`(?is)^` + pattern + `$`), usage, help, run}
}

// name matches a name, quoted or not: 'db2' or db2.
const name = `(?:'([^']+)'|([^\s';]+))`

// commandTable lists the admin commands; the first that matches a
// statement runs it, so specific patterns come before general ones.
func commandTable() []command {
	return []command{
		cmd(`(?:SHOW\s+)?HELP`, "HELP (or SHOW HELP)", "this list", (*Server).showHelp),
		cmd(`SHOW\s+VERSION`, "SHOW VERSION", "Switchyard version", (*Server).showVersion),
		cmd(`SHOW\s+BACKENDS`, "SHOW BACKENDS", "servers of every cluster: role, state, lag, replication threads, GTID received and applied, apply backlog, read_only, pool, routed queries, last error",
			(*Server).showBackends),
		cmd(`SHOW\s+FAILOVERS`, "SHOW FAILOVERS", "failover and switchover history of every cluster, with step durations", (*Server).showFailovers),
		cmd(`SHOW\s+SESSIONS`, "SHOW SESSIONS", "client sessions", (*Server).showSessions),
		cmd(`SHOW\s+QUERY\s+STATS`, "SHOW QUERY STATS", "per statement digest: count, time, rows, route", (*Server).showQueryStats),
		cmd(`RESET\s+QUERY\s+STATS`, "RESET QUERY STATS", "clear the digest table", (*Server).resetQueryStats),
		cmd(`SHOW\s+CLUSTERS`, "SHOW CLUSTERS", "clusters: master, epoch, writes held, why a failover is blocked, coordination", (*Server).showClusters),
		cmd(`SHOW\s+CLUSTER`, "SHOW CLUSTER", "Switchyard instances sharing the clusters: leader, epoch each applied", (*Server).showInstances),
		cmd(`SHOW\s+STATUS`, "SHOW STATUS", "uptime, masters, connections, queries, errors, failovers", (*Server).showStatus),
		cmd(`SHOW\s+CONFIG`, "SHOW CONFIG", "the running configuration (secrets hidden)", (*Server).showConfig),
		cmd(`SHOW\s+RULES`, "SHOW RULES", "query rules in order: match, action, hits, last hit, cache hits and misses", (*Server).showRules),
		cmd(`EXPLAIN\s+ROUTE(?:\s+FOR\s+USER\s+`+name+`)?(?:\s+IN\s+`+name+`)?\s+(.+)`, "EXPLAIN ROUTE [FOR USER 'u'] [IN 'db'] statement",
			"where the statement would run and why: cluster, server, rule or built-in reason, cache", (*Server).explainRoute),
		cmd(`SWITCHOVER(?:\s+`+name+`)??(?:\s+TO\s+`+name+`)?`, "SWITCHOVER [cluster] [TO 'name']", "planned master change without loss",
			func(s *Server, a []string) (*mysql.Result, error) {
				return s.change("switchover", a[0]+a[1], a[2]+a[3])
			}),
		cmd(`FAILOVER(?:\s+`+name+`)??(?:\s+TO\s+`+name+`)?`, "FAILOVER [cluster] [TO 'name']", "forced failover (no confirmation, no cooldown)",
			func(s *Server, a []string) (*mysql.Result, error) { return s.change("failover", a[0]+a[1], a[2]+a[3]) }),
		cmd(`ADD\s+USER\s+`+name+`\s+IDENTIFIED\s+BY\s+(PASSWORD\s+)?'([^']*)'(?:\s+BACKEND\s+`+name+`(?:\s+IDENTIFIED\s+BY\s+'([^']*)')?)?(?:\s+CLUSTER\s+`+name+`)?(?:\s+MAX_CONNECTIONS\s+(\d+))?`,
			"ADD USER 'name' IDENTIFIED BY [PASSWORD] 'secret' BACKEND 'account' [IDENTIFIED BY 'secret'] [CLUSTER 'c'] [MAX_CONNECTIONS n]",
			"add or replace an application user (its password kept as a hash; the backend account's password may be omitted when a configured user has it)",
			(*Server).addUser),
		cmd(`DROP\s+USER\s+`+name, "DROP USER 'name'", "remove an application user (its open sessions go on)", func(s *Server, a []string) (*mysql.Result, error) {
			return s.runtimeChange(s.src.DropUser(a[0] + a[1]))
		}),
		cmd(`ADD\s+RULE(?:\s+BEFORE\s+`+name+`)?\s+(\{.*\})`, "ADD RULE [BEFORE 'name'] {name: …, match: {…}, …}",
			"add or replace a query rule, written as in the config (YAML flow mapping); at the end unless BEFORE", (*Server).addRule),
		cmd(`DROP\s+RULE\s+`+name, "DROP RULE 'name'", "remove a query rule", func(s *Server, a []string) (*mysql.Result, error) {
			return s.runtimeChange(s.src.DropRule(a[0] + a[1]))
		}),
		cmd(`SET\s+BACKEND\s+`+name+`\s+WEIGHT\s+(\d+)`, "SET BACKEND 'name' WEIGHT n", "a replica's share of reads", func(s *Server, a []string) (*mysql.Result, error) {
			w, err := strconv.Atoi(a[2])
			if err != nil {
				return nil, err
			}
			return s.runtimeChange(s.src.SetWeight(a[0]+a[1], w))
		}),
		cmd(`SET\s+BACKEND\s+`+name+`\s+(OFFLINE|ONLINE)`, "SET BACKEND 'name' OFFLINE|ONLINE", "drain a server (no new statements, running ones finish) or put it back",
			func(s *Server, a []string) (*mysql.Result, error) {
				return s.setOffline(a[0]+a[1], strings.EqualFold(a[2], "OFFLINE"))
			}),
		cmd(`KILL(\s+QUERY|\s+CONNECTION)?\s+(\d+)`, "KILL [QUERY] session_id", "interrupt a client session's running statement (QUERY) or end the session",
			(*Server).kill),
		cmd(`RELOAD\s+CONFIG`, "RELOAD CONFIG", "re-read the config file and apply it whole, or refuse it whole", (*Server).reload),
		// What the mysql/mariadb CLI sends on its own.
		cmd(`select\s+@@version_comment(\s+limit\s+1)?`, "", "", func(s *Server, _ []string) (*mysql.Result, error) {
			return table([]string{"@@version_comment"}, [][]any{{"Switchyard admin " + s.src.Version()}})
		}),
		cmd(`select\s+database\(\)`, "", "", func(*Server, []string) (*mysql.Result, error) {
			return table([]string{"DATABASE()"}, [][]any{{nil}})
		}),
		cmd(`(set|use)\s.*`, "", "", func(*Server, []string) (*mysql.Result, error) { return ok() }),
	}
}

func table(names []string, rows [][]any) (*mysql.Result, error) {
	if rows == nil {
		rows = [][]any{}
	}
	rs, err := mysql.BuildSimpleTextResultset(names, rows)
	if err != nil {
		return nil, err
	}
	return mysql.NewResult(rs), nil
}

func ok() (*mysql.Result, error) { return mysql.NewResultReserveResultset(0), nil }

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Server) showHelp(_ []string) (*mysql.Result, error) {
	var rows [][]any
	for _, c := range s.cmds {
		if c.usage != "" {
			rows = append(rows, []any{c.usage, c.help})
		}
	}
	return table([]string{"command", "description"}, rows)
}

func (s *Server) showVersion(_ []string) (*mysql.Result, error) {
	return table([]string{"version"}, [][]any{{s.src.Version()}})
}

func (s *Server) showBackends(_ []string) (*mysql.Result, error) {
	var rows [][]any
	for _, c := range s.src.Clusters() {
		for _, b := range backends(c, c.Backend.Topology()) {
			var lag any
			if b.LagSeconds != nil {
				lag = *b.LagSeconds
			}
			rows = append(rows, []any{b.Cluster, b.Name, b.Address, b.Role, b.State, lag, b.Replication, b.GTID, b.Received,
				b.ApplyBacklog, boolInt(b.ReadOnly), b.PoolOpen, b.PoolIdle, b.Routed, b.Weight, b.LastError})
		}
	}
	return table([]string{"cluster", "name", "address", "role", "state", "lag_seconds", "replication", "gtid_position", "gtid_received",
		"apply_backlog", "read_only", "pool_open", "pool_idle", "queries_routed", "weight", "last_error"}, rows)
}

func (s *Server) showFailovers(_ []string) (*mysql.Result, error) {
	var rows [][]any
	for _, c := range s.src.Clusters() {
		for _, f := range failovers(s.src, c) {
			var steps []string
			for _, st := range f.Steps {
				x := fmt.Sprintf("%s=%s", st.Name, fromMS(st.DurationMS))
				if st.Error != "" {
					x += "(" + st.Error + ")"
				}
				steps = append(steps, x)
			}
			rows = append(rows, []any{f.Cluster, f.Started.Format(time.RFC3339Nano), f.Kind, f.OldMaster, f.NewMaster,
				fromMS(f.DurationMS).String(), f.Epoch, boolInt(f.Succeeded), f.Drained, f.Replayed, f.Aborted,
				f.Reason, f.Positions, strings.Join(steps, " "), f.Error})
		}
	}
	return table([]string{"cluster", "started", "kind", "old_master", "new_master", "duration", "epoch", "succeeded",
		"transactions_drained", "transactions_replayed", "transactions_aborted", "reason", "gtid_positions", "steps", "error"}, rows)
}

// fromMS turns milliseconds (µs precision) back into a duration.
func fromMS(ms float64) time.Duration { return time.Duration(ms*1000) * time.Microsecond }

func (s *Server) showSessions(_ []string) (*mysql.Result, error) {
	var rows [][]any
	for _, x := range sessions(s.src) {
		rows = append(rows, []any{x.ID, x.User, x.Client, x.Cluster, x.DB, boolInt(x.InTransaction), x.Backend,
			(time.Duration(x.AgeMS) * time.Millisecond).String(), x.BackendConns, x.BackendThreads, x.HeldBecause, x.LastStatement})
	}
	return table([]string{"id", "user", "client", "cluster", "db", "in_transaction", "backend", "age", "backend_conns", "backend_threads",
		"held_because", "last_statement_digest"}, rows)
}

func (s *Server) showQueryStats(_ []string) (*mysql.Result, error) {
	var rows [][]any
	list := s.src.QueryStats()
	sort.Slice(list, func(i, j int) bool { return list[i].Total > list[j].Total })
	for _, q := range list {
		avg := time.Duration(0)
		if q.Count > 0 {
			avg = q.Total / time.Duration(q.Count)
		}
		rows = append(rows, []any{q.Digest, q.Count, q.Total.Microseconds(), avg.Microseconds(), q.Max.Microseconds(), q.Rows, q.ToMaster, q.ToReplica})
	}
	return table([]string{"digest", "count", "total_us", "avg_us", "max_us", "rows", "to_master", "to_replica"}, rows)
}

func (s *Server) showRules(_ []string) (*mysql.Result, error) {
	var rows [][]any
	for _, r := range s.src.Rules() {
		var last any
		if !r.LastHit.IsZero() {
			last = r.LastHit.UTC().Format(time.RFC3339)
		}
		rows = append(rows, []any{r.Name, r.Match, r.Action, r.Hits, last, r.CacheHits, r.CacheMiss})
	}
	return table([]string{"name", "match", "action", "hits", "last_hit", "cache_hits", "cache_misses"}, rows)
}

func (s *Server) explainRoute(a []string) (*mysql.Result, error) {
	e, err := s.src.ExplainRoute(strings.TrimSpace(a[4]), a[0]+a[1], a[2]+a[3])
	if err != nil {
		return nil, err
	}
	return table([]string{"cluster", "target", "reason", "rules", "cache"}, [][]any{{e.Cluster, e.Target, e.Reason, e.Rules, e.Cache}})
}

func (s *Server) resetQueryStats(_ []string) (*mysql.Result, error) {
	s.src.ResetQueryStats()
	return ok()
}

func (s *Server) showClusters(_ []string) (*mysql.Result, error) {
	var rows [][]any
	for _, c := range s.src.Clusters() {
		cs := clusterStatus(s.src, c)
		rows = append(rows, []any{cs.Name, cs.Master, cs.Epoch, boolInt(cs.HoldingWrites), cs.FailoverBlockedKind, cs.FailoverBlocked, cs.Coordination})
	}
	return table([]string{"cluster", "master", "epoch", "holding_writes", "failover_blocked", "failover_blocked_reason", "coordination"}, rows)
}

func (s *Server) showInstances(_ []string) (*mysql.Result, error) {
	var rows [][]any
	for _, m := range s.src.Members() {
		rows = append(rows, []any{m.ID, m.Addr, m.Cluster, boolInt(m.Leader), m.Master, m.Epoch, m.ConfigVersion, m.Updated})
	}
	return table([]string{"instance", "admin_address", "cluster", "leader", "master", "applied_epoch", "config_version", "updated"}, rows)
}

// showStatus lists process-wide values and each cluster's master, epoch,
// hold and failover state (named "<cluster>.master" … when there is more
// than one cluster).
func (s *Server) showStatus(_ []string) (*mysql.Result, error) {
	rows := [][]any{{"uptime_seconds", fmt.Sprint(int64(time.Since(s.src.Started()).Seconds()))}}
	clusters := s.src.Clusters()
	changes := 0
	for _, c := range clusters {
		cs := clusterStatus(s.src, c)
		prefix := ""
		if len(clusters) > 1 {
			prefix = c.Name + "."
		}
		rows = append(rows, []any{prefix + "master", cs.Master}, []any{prefix + "epoch", fmt.Sprint(cs.Epoch)},
			[]any{prefix + "holding_writes", fmt.Sprint(boolInt(cs.HoldingWrites))},
			[]any{prefix + "failover_blocked", cs.FailoverBlocked}, []any{prefix + "coordination", cs.Coordination})
		for _, f := range cs.Failovers {
			if f.Succeeded {
				changes++
			}
		}
	}
	c := s.src.Counters()
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rows = append(rows, []any{k, fmt.Sprint(c[k])})
	}
	rows = append(rows, []any{"topology_changes", fmt.Sprint(changes)})
	return table([]string{"variable", "value"}, rows)
}

func (s *Server) showConfig(_ []string) (*mysql.Result, error) {
	return table([]string{"config"}, [][]any{{s.src.Config()}})
}

// change runs a switchover or failover in a cluster: the one named, the
// one of the server named after TO, or the only one.
func (s *Server) change(kind, cluster, to string) (*mysql.Result, error) {
	c, err := s.pickCluster(cluster, to)
	if err != nil {
		return nil, err
	}
	if c.Engine == nil {
		return nil, fmt.Errorf("failover engine not running in cluster %s", c.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var rec *failover.Record
	if kind == "switchover" {
		rec, err = c.Engine.Switchover(ctx, to)
	} else {
		rec, err = c.Engine.Failover(ctx, to)
	}
	if err != nil {
		return nil, fmt.Errorf("%s of cluster %s failed: %w", kind, c.Name, err)
	}
	return table([]string{"cluster", "kind", "old_master", "new_master", "duration", "epoch"},
		[][]any{{c.Name, rec.Kind, rec.OldMaster, rec.NewMaster, rec.Duration.Round(time.Microsecond).String(), rec.Epoch}})
}

// pickCluster finds the cluster a command is about: by name, else the
// one that has server, else the only one.
func (s *Server) pickCluster(cluster, server string) (Cluster, error) {
	list := s.src.Clusters()
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
		switch {
		case cluster != "" && c.Name == cluster:
			return c, nil
		case cluster == "" && server != "" && c.Backend.Topology().Server(server) != nil:
			return c, nil
		}
	}
	switch {
	case cluster != "":
		return Cluster{}, fmt.Errorf("unknown cluster %q (clusters: %s)", cluster, strings.Join(names, ", "))
	case server != "":
		return Cluster{}, fmt.Errorf("unknown backend %q", server)
	case len(list) == 1:
		return list[0], nil
	}
	return Cluster{}, fmt.Errorf("name the cluster: %s", strings.Join(names, ", "))
}

func (s *Server) setOffline(server string, offline bool) (*mysql.Result, error) {
	c, err := s.pickCluster("", server)
	if err != nil {
		return nil, err
	}
	if _, err := s.src.SetOffline(server, offline); err != nil { // persisted, then applied
		return nil, mysql.NewError(mysql.ER_UNKNOWN_ERROR, "change refused, nothing applied: "+err.Error())
	}
	if offline {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Backend.Counters.Drain(ctx, server); err != nil {
			return nil, fmt.Errorf("%s is offline but statements are still running on it: %w", server, err)
		}
	}
	return ok()
}

func (s *Server) addUser(a []string) (*mysql.Result, error) {
	u := UserChange{Name: a[0] + a[1], Backend: a[4] + a[5], BackendPassword: a[6], Cluster: a[7] + a[8]}
	if a[2] != "" {
		u.PasswordHash = a[3] // IDENTIFIED BY PASSWORD '*…': already a hash
	} else {
		u.Password = a[3]
	}
	if a[9] != "" {
		n, err := strconv.Atoi(a[9])
		if err != nil {
			return nil, err
		}
		u.MaxConnections = n
	}
	return s.runtimeChange(s.src.AddUser(u))
}

func (s *Server) addRule(a []string) (*mysql.Result, error) {
	return s.runtimeChange(s.src.AddRule(a[2], a[0]+a[1]))
}

// runtimeChange reports a runtime configuration change: refused whole
// with the reason, or applied (and persisted) as the given version.
func (s *Server) runtimeChange(version int64, err error) (*mysql.Result, error) {
	if err != nil {
		return nil, mysql.NewError(mysql.ER_UNKNOWN_ERROR, "change refused, nothing applied: "+err.Error())
	}
	return table([]string{"config_version"}, [][]any{{version}})
}

func (s *Server) kill(args []string) (*mysql.Result, error) {
	id, err := strconv.ParseUint(args[1], 10, 32)
	if err != nil {
		return nil, mysql.NewError(mysql.ER_NO_SUCH_THREAD, "Unknown thread id: "+args[1])
	}
	if err := s.src.Kill(uint32(id), strings.EqualFold(strings.TrimSpace(args[0]), "QUERY")); err != nil {
		return nil, mysql.NewError(mysql.ER_NO_SUCH_THREAD, fmt.Sprintf("Unknown thread id: %d (%v)", id, err))
	}
	return ok()
}

func (s *Server) reload(_ []string) (*mysql.Result, error) {
	if err := s.src.Reload(); err != nil {
		return nil, fmt.Errorf("config rejected, the running one is kept: %w", err)
	}
	return ok()
}
