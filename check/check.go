package check

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
)

// erAccessDenied is the server's "Access denied for user" (1045).
const erAccessDenied = 1045

// Severity of a finding.
type Severity int

const (
	OK Severity = iota
	Warning
	Error
)

func (s Severity) String() string { return [...]string{"OK", "WARN", "ERROR"}[s] }

// Finding is one line of the report.
type Finding struct {
	Severity Severity
	Backend  string // "" for config-wide findings
	Problem  string
	Remedy   string
	// Cluster names the cluster when the config has several.
	Cluster string
}

func (f Finding) String() string {
	where := "config"
	if f.Backend != "" {
		where = f.Backend
	}
	if f.Cluster != "" {
		where = f.Cluster + "/" + where
	}
	s := fmt.Sprintf("%-5s %-10s %s", f.Severity, where, f.Problem)
	if f.Remedy != "" {
		s += " — " + f.Remedy
	}
	return s
}

// Report is the outcome of a check.
type Report struct{ Findings []Finding }

// Errors counts findings of severity Error.
func (r Report) Errors() int { return r.count(Error) }

// Warnings counts findings of severity Warning.
func (r Report) Warnings() int { return r.count(Warning) }

func (r Report) count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Print writes one line per finding and the verdict line.
func (r Report) Print(w io.Writer) {
	for _, f := range r.Findings {
		fmt.Fprintln(w, f)
	}
	if r.Errors() > 0 {
		fmt.Fprintf(w, "verdict: NOT OK — %d error(s), %d warning(s)\n", r.Errors(), r.Warnings())
	} else {
		fmt.Fprintf(w, "verdict: OK — %d warning(s)\n", r.Warnings())
	}
}

// server is what one backend reported.
type server struct {
	cfg      conf.Backend
	err      error
	version  string
	flavor   backend.Flavor
	readOnly bool
	// superReadOnly: MySQL's super_read_only (MariaDB has none).
	superReadOnly bool
	serverID      uint32
	logBin        bool
	format        string
	// gtidIssue says what keeps GTID replication from being safe here
	// (MariaDB: gtid_strict_mode off; MySQL: gtid_mode or
	// enforce_gtid_consistency not ON); "" when fine.
	gtidIssue     string
	gtidFatal     bool
	replicaUpdate bool // log_slave_updates / log_replica_updates
	semiM, semiS  bool
	grants        []string
	replica       *backend.ReplicaStatus
	appGrants     map[string][]string // backend user → grants
	appErr        map[string]error
}

// Run checks a loaded config against the servers of every cluster.
func Run(ctx context.Context, cfg *conf.Config) Report {
	var r Report
	clusters := cfg.ClusterList()
	for _, cc := range clusters {
		for _, f := range checkCluster(ctx, cfg, cc) {
			if len(clusters) > 1 {
				f.Cluster = cc.Name
			}
			r.Findings = append(r.Findings, f)
		}
	}
	sort.SliceStable(r.Findings, func(i, j int) bool { return r.Findings[i].Severity > r.Findings[j].Severity })
	return r
}

// inspectAll asks every server of a cluster, in parallel.
func inspectAll(ctx context.Context, cfg *conf.Config, cc conf.Cluster) []*server {
	timeout := cc.Monitor.ConnectTimeout.D()
	servers := make([]*server, len(cc.Backends))
	var wg sync.WaitGroup
	for i, b := range cc.Backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i] = inspect(ctx, cfg.Users, cc.Monitor, b, timeout)
		}()
	}
	wg.Wait()
	return servers
}

// checkCluster checks one cluster's servers and topology.
func checkCluster(ctx context.Context, cfg *conf.Config, cc conf.Cluster) []Finding {
	var r Report
	add := func(sev Severity, b, problem, remedy string) {
		r.Findings = append(r.Findings, Finding{Severity: sev, Backend: b, Problem: problem, Remedy: remedy})
	}
	servers := inspectAll(ctx, cfg, cc)
	// Config-level observations the loader accepts but an operator
	// should hear about.
	promotable := 0
	for _, b := range cc.Backends {
		if !b.NoMaster {
			promotable++
		}
	}
	if len(cc.Backends) > 1 && promotable < 2 {
		add(Warning, "", "at most one backend may be master (the others are no_master): a failover has nowhere to go",
			"clear no_master on at least one replica")
	}

	var masters []*server
	ids := map[uint32][]string{}
	for _, s := range servers {
		name := s.cfg.Name
		if s.err != nil {
			sev := Warning
			remedy := "start it or fix backends[].host/port; the proxy runs without it"
			var me *mysql.MySQLError
			if errors.As(s.err, &me) && me.Number == erAccessDenied {
				sev, remedy = Error, "grant the monitor account on this server or fix monitor.user/password"
			}
			add(sev, name, "cannot connect as the monitor account: "+short(s.err), remedy)
			continue
		}
		ids[s.serverID] = append(ids[s.serverID], name)
		if s.replica == nil && !s.readOnly {
			masters = append(masters, s)
		}
		if !s.logBin {
			add(Error, name, "log_bin is OFF: it cannot serve as master or be promoted", "set log_bin in its my.cnf and restart")
		}
		if s.format != "ROW" {
			add(Warning, name, "binlog_format is "+s.format, "set binlog_format=ROW (safest for replication and failover)")
		}
		if s.gtidIssue != "" {
			sev := Warning
			if s.gtidFatal {
				sev = Error
			}
			add(sev, name, s.gtidIssue, gtidRemedy(s.flavor))
		}
		if !s.replicaUpdate {
			v := replicaUpdatesVar(s.flavor)
			add(Warning, name, v+" is OFF: after a promotion its binlog lacks replicated transactions", "set "+v+"=ON in its my.cnf")
		}
		if missing := missingPrivileges(s.flavor, s.grants); len(missing) > 0 {
			add(Error, name, "the monitor account lacks "+strings.Join(missing, ", ")+": it cannot fence, promote or repoint",
				fmt.Sprintf("GRANT %s ON *.* TO '%s'@'%%'", monitorPrivileges(s.flavor), cc.Monitor.User))
		}
		for user, err := range s.appErr {
			add(Error, name, fmt.Sprintf("backend account %s cannot log in: %s", user, short(err)), "create it or fix users[].backend_user/backend_password")
		}
		// MySQL is fenced with super_read_only, which no account bypasses;
		// MariaDB with read_only, which READ_ONLY ADMIN bypasses.
		for user, grants := range s.appGrants {
			if s.flavor == backend.MariaDB && hasAny(grants, "ALL PRIVILEGES ON *.*", "READ_ONLY ADMIN", "SUPER") {
				add(Error, name, fmt.Sprintf("backend account %s holds READ_ONLY ADMIN (ALL PRIVILEGES or SUPER includes it): it writes through read_only=1, so fencing cannot stop it", user),
					"grant it data privileges only (SELECT, INSERT, UPDATE, DELETE, CREATE, …), not ALL ON *.*")
			}
		}
		if !s.semiM && !s.semiS {
			add(Warning, name, "semi-sync is off: a failover may lose transactions acknowledged just before the crash", semiSyncRemedy(s.flavor))
		}
		if s.replica != nil && s.semiM {
			add(Warning, name, "semi-sync as a master is on on a replica: after each start its applier waits the semi-sync timeout for acks from replicas it does not have (a failover then waits too); Switchyard turns it on when it promotes a server and off when it repoints one",
				semiSyncReplicaRemedy(s.flavor))
		}
	}
	if flavors := flavorsOf(servers); len(flavors) > 1 {
		add(Error, "", "mixed server families ("+strings.Join(flavors, " and ")+"): replication and failover between MariaDB and MySQL are not supported",
			"run one family per Switchyard (their GTIDs are not comparable)")
	}
	for id, names := range ids {
		if len(names) > 1 {
			sort.Strings(names)
			add(Error, strings.Join(names, ","), fmt.Sprintf("server_id %d is used by %s", id, strings.Join(names, " and ")),
				"give every server a unique server_id in its my.cnf")
		}
	}
	reachable := 0
	for _, s := range servers {
		if s.err == nil {
			reachable++
		}
	}
	var master *server
	switch {
	case reachable == 0:
		// Nothing reachable: the connection findings above say it all.
	case len(masters) == 0:
		add(Error, "", "no writable master: every reachable server is read_only or a replica", "SET GLOBAL read_only=0 on the master")
	case len(masters) == 1:
		master = masters[0]
	default:
		var names []string
		for _, m := range masters {
			names = append(names, m.cfg.Name)
		}
		add(Error, strings.Join(names, ","), "several writable servers replicate from nobody: the master is ambiguous",
			"SET GLOBAL read_only=1 on all but the real master")
	}
	for _, s := range servers {
		if s.err != nil || s == master {
			continue
		}
		name := s.cfg.Name
		if s.replica == nil {
			if master != nil {
				add(Error, name, "not replicating from anyone", s.flavor.FollowSQL(master.cfg.Host, fmt.Sprint(master.cfg.Port), "<replication user>", "<password>", false)+"; "+s.flavor.StartReplicaSQL())
			}
			continue
		}
		if !s.readOnly {
			add(Error, name, "read_only is OFF on a replica: applications could write to it", "SET GLOBAL read_only=1 and read_only=ON in its my.cnf")
		} else if s.flavor == backend.MySQL && !s.superReadOnly {
			add(Warning, name, "super_read_only is OFF on a replica: accounts with CONNECTION_ADMIN or SUPER could write to it",
				"SET GLOBAL super_read_only=1 and super_read_only=ON in its my.cnf")
		}
		rs := s.replica
		if !rs.IORunning || !rs.SQLRunning {
			add(Error, name, fmt.Sprintf("replication threads not running (IO=%s, SQL=%v) %s", rs.IOState, rs.SQLRunning,
				strings.TrimSpace(rs.LastIOError+" "+rs.LastSQLError)), "fix the error shown, then "+s.flavor.StartReplicaSQL())
		}
		// Compare identities, not addresses: the proxy may reach the master
		// by another name or path than the replicas do.
		if master != nil && fmt.Sprintf("%s:%d", rs.MasterHost, rs.MasterPort) != master.cfg.Addr() &&
			(rs.MasterServerID == 0 || rs.MasterServerID != master.serverID) {
			add(Error, name, fmt.Sprintf("replicates from %s:%d, not from the master %s (%s)", rs.MasterHost, rs.MasterPort, master.cfg.Name, master.cfg.Addr()),
				"point it at the configured master, or fix backends[] so host:port match what replicas use")
		}
		if !usesGTID(s.flavor, rs.UsingGTID) {
			add(Error, name, "replication does not use GTID positioning ("+rs.UsingGTID+"): failover needs it", gtidPositionRemedy(s.flavor))
		}
		if lag := rs.SecondsBehind; lag != nil && time.Duration(*lag)*time.Second > cc.Routing.MaxReplicaLag.D() {
			add(Warning, name, fmt.Sprintf("lags %ds (routing.max_replica_lag is %s): reads will skip it", *lag, cc.Routing.MaxReplicaLag.D()), "")
		}
	}
	return r.Findings
}

func inspect(ctx context.Context, users []conf.User, mon conf.Monitor, b conf.Backend, timeout time.Duration) *server {
	s := &server{cfg: b, appGrants: map[string][]string{}, appErr: map[string]error{}}
	db, err := sql.Open("mysql", backend.MonitorDSN(b.Addr(), backend.Account{User: mon.User, Password: mon.Password.Value()}, timeout))
	if err != nil {
		s.err = err
		return s
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, 5*timeout+2*time.Second)
	defer cancel()
	if err := db.QueryRowContext(qctx, "SELECT @@version, @@read_only, @@server_id, @@log_bin, @@binlog_format").
		Scan(&s.version, &s.readOnly, &s.serverID, &s.logBin, &s.format); err != nil {
		s.err = err
		return s
	}
	s.flavor = backend.FlavorFromVersion(s.version)
	if err := readSettings(qctx, db, s); err != nil {
		s.err = err
		return s
	}
	grants, err := backend.QueryMaps(qctx, db, "SHOW GRANTS")
	if err == nil {
		for _, g := range grants {
			for _, v := range g {
				s.grants = append(s.grants, v)
			}
		}
	}
	if rs, ok, err := backend.QueryReplicaStatus(qctx, db, s.flavor); err == nil && ok && rs.MasterHost != "" {
		s.replica = &rs
	}
	seen := map[string]bool{}
	for _, u := range users {
		if seen[u.BackendUser] {
			continue
		}
		seen[u.BackendUser] = true
		adb, err := sql.Open("mysql", backend.MonitorDSN(b.Addr(), backend.Account{User: u.BackendUser, Password: u.BackendPassword.Value()}, timeout))
		if err != nil {
			continue
		}
		rows, err := backend.QueryMaps(qctx, adb, "SHOW GRANTS")
		adb.Close()
		if err != nil {
			s.appErr[u.BackendUser] = err
			continue
		}
		for _, g := range rows {
			for _, v := range g {
				s.appGrants[u.BackendUser] = append(s.appGrants[u.BackendUser], v)
			}
		}
	}
	return s
}

func hasAny(grants []string, privs ...string) bool {
	for _, g := range grants {
		up := strings.ToUpper(g)
		if !strings.Contains(up, " ON *.* ") {
			continue
		}
		for _, p := range privs {
			if strings.Contains(up, p) {
				return true
			}
		}
	}
	return false
}

func short(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
