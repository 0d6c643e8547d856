// Package rules_test drives query rules, the firewall, the result cache
// and the query log through a real proxy in front of a sandbox, and two
// instances sharing cache invalidations through a real etcd.
package rules_test

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithSandbox(m, 2, 41, &env))
}

const users = "  - name: app\n    password: app\n  - name: report\n    password: report\n    backend_user: app\n    backend_password: app\n"

// ruleSet is the rules of these tests.
const ruleSet = `rules:
  - name: no-unbounded-delete
    match: {regex: '(?i)^\s*DELETE\s+FROM\s+\S+\s*$'}
    block: unbounded DELETE is not allowed
    log: true
  - name: reports-on-replicas
    match: {user: report, kind: read}
    route: replica
    max_lag: 30s
  - name: hot-lookup
    match: {digest: "SELECT ` + "`v`" + ` FROM ` + "`rc`.`t`" + ` WHERE ` + "`id`" + ` = ?"}
    cache_ttl: 60s
    log: true
  - name: short-sleeps
    match: {regex: 'SLEEP\(5\)'}
    timeout: 1s
`

func startProxy(t *testing.T, extra string) (*harness.Proxy, string) {
	t.Helper()
	qlog := filepath.Join(t.TempDir(), "queries.log")
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Users: users, LogExtra: "  query_log: " + qlog + "\n",
		Extra: ruleSet + "routing:\n  read_write_split: false\n" + extra})
	return p, qlog
}

func open(t *testing.T, p *harness.Proxy, user string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", p.DSN(user, user, "", "interpolateParams=true"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func value(t *testing.T, db *sql.DB, id int) int {
	t.Helper()
	var v int
	if err := db.QueryRow("SELECT v FROM rc.t WHERE id = ?", id).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBlockRouteAndTimeout(t *testing.T) {
	p, qlog := startProxy(t, "")
	app := open(t, p, "app")
	exec(t, app, "CREATE DATABASE IF NOT EXISTS rc", "CREATE TABLE IF NOT EXISTS rc.d (id INT PRIMARY KEY)", "REPLACE INTO rc.d VALUES (1), (2)")
	// Block: the error names the rule; nothing was deleted.
	_, err := app.Exec("DELETE FROM rc.d")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1148 || me.SQLState != [5]byte{'4', '2', '0', '0', '0'} || !strings.Contains(me.Message, "no-unbounded-delete") {
		t.Fatalf("unbounded DELETE: %v", err)
	}
	var n int
	if err := app.QueryRow("SELECT COUNT(*) FROM rc.d").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after the blocked DELETE: %d %v", n, err)
	}
	exec(t, app, "DELETE FROM rc.d WHERE id = 2") // a bounded DELETE passes
	// Route by user: the split is off, so app's reads run on the master;
	// report's reads go to a replica by rule.
	master := harness.MasterOf(t, p.Admin(t))
	for _, c := range []struct {
		user    string
		replica bool
	}{{"app", false}, {"report", true}} {
		var id int
		if err := open(t, p, c.user).QueryRow("SELECT @@server_id").Scan(&id); err != nil {
			t.Fatal(err)
		}
		if onReplica := env.ServerName(id) != master; onReplica != c.replica {
			t.Errorf("%s's read ran on %s", c.user, env.ServerName(id))
		}
	}
	// A rule's route never moves a write: report's write runs on the master.
	if _, err := open(t, p, "report").Exec("REPLACE INTO rc.d VALUES (3)"); err != nil {
		t.Fatalf("report's write: %v", err)
	}
	// Timeout: the statement is killed on its server after 1 s.
	start := time.Now()
	_, err = app.Exec("SELECT SLEEP(5)")
	took := time.Since(start)
	t.Logf("SELECT SLEEP(5) under a 1 s rule timeout: %v after %v", err, took.Round(time.Millisecond))
	if took >= 4*time.Second {
		t.Fatal("the rule's timeout did not end the statement")
	}
	// MariaDB fails the killed statement; MySQL's SLEEP() returns 1 when
	// interrupted, with no error.
	if err != nil && !strings.Contains(err.Error(), "rule short-sleeps") {
		t.Errorf("the error does not name the rule: %v", err)
	}
	// The query log has the blocked statement, with its rule.
	entries := readLog(t, qlog)
	found := false
	for _, e := range entries {
		found = found || e["rule"] == "no-unbounded-delete" && strings.Contains(fmt.Sprint(e["error"]), "1148")
	}
	if !found {
		t.Errorf("the blocked statement is not in the query log: %v", entries)
	}
	// SHOW RULES counts hits.
	hits := map[string]string{}
	for _, r := range harness.AdminRows(t, p.Admin(t), "SHOW RULES") {
		hits[r["name"]] = r["hits"]
	}
	if hits["no-unbounded-delete"] != "1" || hits["reports-on-replicas"] == "0" || hits["short-sleeps"] != "1" {
		t.Errorf("SHOW RULES hits: %v", hits)
	}
}

func readLog(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("a query log line is not JSON: %q", sc.Text())
		}
		out = append(out, e)
	}
	return out
}

// TestCacheNeverStaleForItsWriters: a cached read is served within its
// TTL (a change made behind the proxy's back is not seen: proof it came
// from the cache); a write through the proxy, autocommit or in a
// transaction, makes the very next read see it; EXPLAIN ROUTE and SHOW
// RULES say what the cache did.
func TestCacheNeverStaleForItsWriters(t *testing.T) {
	p, qlog := startProxy(t, "")
	app := open(t, p, "app")
	exec(t, app, "CREATE DATABASE IF NOT EXISTS rc", "CREATE TABLE IF NOT EXISTS rc.t (id INT PRIMARY KEY, v INT)", "REPLACE INTO rc.t VALUES (1, 1), (2, 1)")
	if v := value(t, app, 1); v != 1 {
		t.Fatalf("first read: %d", v)
	}
	// Behind the proxy's back: the cache still answers 1.
	master := harness.MasterOf(t, p.Admin(t))
	if _, err := env.InstanceDB(t, master).Exec("UPDATE rc.t SET v = 100 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if v := value(t, app, 1); v != 1 {
		t.Fatalf("a read within the TTL was not served from the cache: %d", v)
	}
	// Through the proxy, autocommit: the next read sees it.
	exec(t, app, "UPDATE rc.t SET v = 2 WHERE id = 1")
	if v := value(t, app, 1); v != 2 {
		t.Fatalf("after a write through the proxy: %d, want 2", v)
	}
	// Another session (its reads on the master too: a replica may lag
	// behind another session's write, cache or not).
	other := open(t, p, "app")
	if v := value(t, other, 1); v != 2 {
		t.Fatalf("another session after the write: %d, want 2", v)
	}
	// In a transaction: the value is cached before it commits, then the
	// commit makes the next read see the new one.
	value(t, other, 2)
	tx, err := app.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE rc.t SET v = 3 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	if v := value(t, other, 2); v != 1 {
		t.Fatalf("another session saw an uncommitted value: %d", v)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if v := value(t, other, 2); v != 3 {
		t.Fatalf("after the commit: %d, want 3", v)
	}
	// Reads from replicas (report's rule): a replica behind the commit may
	// answer the old value, but that answer is never kept, so the new
	// value shows once the replica has it (within the 60 s TTL).
	report := open(t, p, "report")
	harness.WaitFor(t, "a replica read to see the commit", 10*time.Second, func() bool { return value(t, report, 2) == 3 })
	rows := harness.AdminRows(t, p.Admin(t), "SHOW RULES")
	for _, r := range rows {
		if r["name"] == "hot-lookup" && (r["cache_hits"] == "0" || r["cache_misses"] == "0") {
			t.Errorf("SHOW RULES: %v", r)
		}
	}
	e := harness.AdminRows(t, p.Admin(t), "EXPLAIN ROUTE FOR USER 'app' SELECT v FROM rc.t WHERE id = 7")
	if len(e) != 1 || e[0]["rules"] != "hot-lookup" || !strings.Contains(e[0]["cache"], "cached for 1m0s") || e[0]["target"] != master {
		t.Errorf("EXPLAIN ROUTE: %v", e)
	}
	cached := 0
	for _, l := range readLog(t, qlog) {
		if l["target"] == "cache" {
			cached++
		}
	}
	if cached == 0 {
		t.Error("the query log shows no read answered by the cache")
	}
}

// TestCacheInvalidatedOnEveryInstance: two instances on etcd, each with
// the cache rule; a result cached by one is dropped when a write goes
// through the other.
func TestCacheInvalidatedOnEveryInstance(t *testing.T) {
	etcd := harness.EtcdFor(t)
	var ps []*harness.Proxy
	for _, id := range []string{"a", "b"} {
		// Reads on the master: a read from a replica right after another
		// instance's write is never cached (its GTID is not known here).
		ps = append(ps, env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Users: users,
			Extra: ruleSet + "routing:\n  read_write_split: false\n" + etcd.CoordinationConfig(id, "/inv")}))
	}
	a, b := open(t, ps[0], "app"), open(t, ps[1], "app")
	exec(t, a, "CREATE DATABASE IF NOT EXISTS rc", "CREATE TABLE IF NOT EXISTS rc.t (id INT PRIMARY KEY, v INT)", "REPLACE INTO rc.t VALUES (5, 1)")
	// Until b answers from its cache (a fill racing the invalidation of
	// a's own write, arriving through etcd, is dropped: read again).
	bAdmin := ps[1].Admin(t)
	harness.WaitFor(t, "b to cache the row", 10*time.Second, func() bool {
		var v int
		if b.QueryRow("SELECT v FROM rc.t WHERE id = ?", 5).Scan(&v) != nil || v != 1 {
			return false
		}
		for _, r := range harness.AdminRows(t, bAdmin, "SHOW RULES") {
			if r["name"] == "hot-lookup" && r["cache_hits"] != "0" {
				return true
			}
		}
		return false
	})
	// b has it cached now: a change behind both proxies is not seen.
	master := harness.MasterOf(t, ps[0].Admin(t))
	if _, err := env.InstanceDB(t, master).Exec("UPDATE rc.t SET v = 100 WHERE id = 5"); err != nil {
		t.Fatal(err)
	}
	if v := value(t, b, 5); v != 1 {
		t.Fatalf("b's read was not served from its cache: %d", v)
	}
	exec(t, a, "UPDATE rc.t SET v = 2 WHERE id = 5") // through the other instance
	took := harness.WaitFor(t, "b to drop its cached result", 5*time.Second, func() bool { return value(t, b, 5) == 2 })
	t.Logf("a write through instance a reached instance b's cache %v later", took.Round(time.Millisecond))
}
