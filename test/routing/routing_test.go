// Package routing_test proves the read/write split with evidence from the
// servers themselves (@@server_id), not by trusting the router.
package routing_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var (
	env   *harness.Env
	proxy *harness.Proxy
)

const masterID = 1 // sandbox server ids: master 1, replica1 2, replica2 3

func TestMain(m *testing.M) {
	// Every read draws a replica here, so one session can observe the
	// replicas come and go; the default, per-session choice has its own
	// proxy in TestReadsSpreadOverReplicasByWeight.
	os.Exit(harness.Main(m, 2, 2, harness.ProxyOptions{Weights: map[string]int{"replica1": 1, "replica2": 3}, LogLevel: "info",
		Extra: "routing:\n  replica_choice: statement\n"}, &env, &proxy))
}

func mustExec(t *testing.T, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := q.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// oneConn returns a single client connection through the proxy.
func oneConn(t *testing.T, p *harness.Proxy, params string) *sql.Conn {
	t.Helper()
	return p.Session(t, "app", "app", "", params)
}

func serverID(t *testing.T, c *sql.Conn, query string, args ...any) int {
	t.Helper()
	var id int
	if err := c.QueryRowContext(context.Background(), query, args...).Scan(&id); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return id
}

// TestReadsSpreadOverReplicasByWeight: each session keeps the replica it
// drew (routing.replica_choice: session), and across sessions the draws
// follow the weights 1:3; no plain read reaches the master.
func TestReadsSpreadOverReplicasByWeight(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{Weights: map[string]int{"replica1": 1, "replica2": 3}, LogLevel: "warn"})
	db, err := sql.Open("mysql", p.DSN("app", "app", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	counts := map[int]int{}
	const sessions = 400
	for i := 0; i < sessions; i++ {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first := serverID(t, c, "SELECT @@server_id")
		for k := 0; k < 3; k++ {
			if id := serverID(t, c, "SELECT @@server_id"); id != first {
				t.Fatalf("session %d read from server %d, then %d: it should keep its replica", i, first, id)
			}
		}
		counts[first]++
		harness.EndSession(c) // the next session is a new one
	}
	checkWeights(t, counts)
}

// TestPerStatementReplicaChoice: with replica_choice: statement (this
// package's proxy) every read draws again, so one session's reads follow
// the weights.
func TestPerStatementReplicaChoice(t *testing.T) {
	c := oneConn(t, proxy, "")
	counts := map[int]int{}
	for i := 0; i < 800; i++ {
		counts[serverID(t, c, "SELECT @@server_id")]++
	}
	checkWeights(t, counts)
}

func checkWeights(t *testing.T, counts map[int]int) {
	t.Helper()
	t.Logf("@@server_id counts: %v", counts)
	if counts[masterID] != 0 {
		t.Fatalf("plain reads reached the master: %v", counts)
	}
	// replica1's share is binomial with p = 1/4: allow 4.5 standard
	// deviations (a false alarm about once in 150,000 runs), which still
	// tells 3:1 from 1:1 or 1:3 by far.
	n := float64(counts[2] + counts[3])
	want, sd := n/4, math.Sqrt(n*0.25*0.75)
	if got := float64(counts[2]); math.Abs(got-want) > 4.5*sd {
		t.Fatalf("replica1 served %v of %v reads, want %.0f ± %.0f (weights 1:3)", got, n, want, 4.5*sd)
	}
}

func TestWritesTransactionsAndSessionReadsOnMaster(t *testing.T) {
	c := oneConn(t, proxy, "")
	mustExec(t, c, "CREATE DATABASE IF NOT EXISTS rt", "CREATE TABLE IF NOT EXISTS rt.w (id INT AUTO_INCREMENT PRIMARY KEY, sid INT)")
	// The write itself records where it ran.
	res, err := c.ExecContext(context.Background(), "INSERT INTO rt.w (sid) VALUES (@@server_id)")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	var sid int
	if err := c.QueryRowContext(context.Background(), "SELECT sid FROM rt.w WHERE id = ?", id).Scan(&sid); err != nil || sid != masterID {
		t.Fatalf("insert ran on server %d (%v)", sid, err)
	}
	if got := serverID(t, c, "SELECT LAST_INSERT_ID()"); int64(got) != id {
		t.Fatalf("LAST_INSERT_ID() = %d, want %d", got, id)
	}
	tests := []struct {
		name  string
		setup []string
		query string
	}{
		{"locking read", nil, "SELECT @@server_id FROM rt.w LIMIT 1 FOR UPDATE"},
		{"lock in share mode", nil, "SELECT @@server_id FROM rt.w LIMIT 1 LOCK IN SHARE MODE"},
		{"master hint", nil, "/* master */ SELECT @@server_id"},
		{"user variable", []string{"SET @v = 1"}, "SELECT @@server_id + @v - 1"},
		{"session function", nil, "SELECT @@server_id + 0 * LAST_INSERT_ID()"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustExec(t, c, tt.setup...)
			if got := serverID(t, c, tt.query); got != masterID {
				t.Fatalf("%s ran on server %d", tt.query, got)
			}
		})
	}
	// Everything in a transaction runs on the master, reads included.
	mustExec(t, c, "BEGIN")
	for i := 0; i < 5; i++ {
		if got := serverID(t, c, "SELECT @@server_id"); got != masterID {
			t.Fatalf("read in transaction ran on %d", got)
		}
	}
	mustExec(t, c, "COMMIT")
	// autocommit=0 means always in a transaction.
	mustExec(t, c, "SET autocommit = 0")
	if got := serverID(t, c, "SELECT @@server_id"); got != masterID {
		t.Fatalf("read with autocommit=0 ran on %d", got)
	}
	mustExec(t, c, "COMMIT", "SET autocommit = 1")
	if got := serverID(t, c, "SELECT @@server_id"); got == masterID {
		t.Fatal("autocommit back on, but reads still on the master")
	}
}

func TestReadOnlyTransactionStaysOnOneReplica(t *testing.T) {
	c := oneConn(t, proxy, "")
	mustExec(t, c, "START TRANSACTION READ ONLY")
	first := serverID(t, c, "SELECT @@server_id")
	if first == masterID {
		t.Fatal("read-only transaction on the master")
	}
	for i := 0; i < 20; i++ {
		if got := serverID(t, c, "SELECT @@server_id"); got != first {
			t.Fatalf("read-only transaction moved from %d to %d", first, got)
		}
	}
	mustExec(t, c, "COMMIT")
}

func TestTemporaryTableAndViewReadableAtOnce(t *testing.T) {
	c := oneConn(t, proxy, "")
	mustExec(t, c, "CREATE DATABASE IF NOT EXISTS rt", "USE rt",
		"CREATE TEMPORARY TABLE tmp_x (a INT)", "INSERT INTO tmp_x VALUES (41), (1)")
	var sum int
	if err := c.QueryRowContext(context.Background(), "SELECT SUM(a) FROM tmp_x").Scan(&sum); err != nil || sum != 42 {
		t.Fatalf("temp table read: %d %v", sum, err)
	}
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("v_%d_%d", time.Now().UnixNano(), i)
		mustExec(t, c, "CREATE VIEW "+name+" AS SELECT 7 AS x")
		var x int
		if err := c.QueryRowContext(context.Background(), "SELECT x FROM "+name).Scan(&x); err != nil || x != 7 {
			t.Fatalf("view read right after CREATE VIEW: %v", err)
		}
	}
	// Other tables still read from replicas while temp tables exist.
	if got := serverID(t, c, "SELECT @@server_id FROM DUAL"); got == masterID {
		t.Fatalf("read of a normal table went to the master")
	}
}

func TestSessionStateFollowsToReplicas(t *testing.T) {
	c := oneConn(t, proxy, "")
	mustExec(t, c, "CREATE DATABASE IF NOT EXISTS rt_state", "USE rt_state", "SET NAMES latin1",
		"SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES'", "SET time_zone = '+03:00'",
		"SET SESSION group_concat_max_len = 12345")
	// Read-your-writes keeps the session's reads on the master until a
	// replica has its CREATE DATABASE (on a loaded machine, seconds).
	harness.WaitFor(t, "the session's reads to reach a replica", 15*time.Second, func() bool {
		return serverID(t, c, "SELECT @@server_id") != masterID
	})
	var db, mode, tz, cs string
	var gcl, sid int
	err := c.QueryRowContext(context.Background(),
		"SELECT DATABASE(), @@sql_mode, @@time_zone, @@character_set_client, @@group_concat_max_len, @@server_id").
		Scan(&db, &mode, &tz, &cs, &gcl, &sid)
	if err != nil {
		t.Fatal(err)
	}
	if sid == masterID {
		t.Fatal("the read went to the master: nothing proven")
	}
	if db != "rt_state" || mode != "ANSI_QUOTES,STRICT_ALL_TABLES" || tz != "+03:00" || cs != "latin1" || gcl != 12345 {
		t.Fatalf("replica %d session: db=%s sql_mode=%s tz=%s cs=%s gcl=%d", sid, db, mode, tz, cs, gcl)
	}
	// ANSI_QUOTES changes parsing: "x" is an identifier now, and it still routes.
	mustExec(t, c, `CREATE TABLE IF NOT EXISTS "quoted" (a INT)`)
	var n int
	if err := c.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM "quoted"`).Scan(&n); err != nil {
		t.Fatal(err)
	}
}

// A session setting that only the master accepts (here a time zone whose
// definition exists on the master alone) sends the session's reads to the
// master instead of failing them: the replicas cannot reproduce the
// session (seen in MariaDB's main.cache_innodb with query_cache_type).
func TestSessionSettingReplicasRefuseKeepsReadsOnMaster(t *testing.T) {
	ctx := context.Background()
	master, err := env.InstanceDB(t, "master").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	// Not binary-logged: the replicas never learn the zone.
	mustExec(t, master, "SET SESSION sql_log_bin = 0",
		"DELETE FROM mysql.time_zone_name WHERE Name = 'Switchyard/Test'",
		"INSERT INTO mysql.time_zone (Use_leap_seconds) VALUES ('N')",
		"SET @tz = LAST_INSERT_ID()",
		"INSERT INTO mysql.time_zone_name (Name, Time_zone_id) VALUES ('Switchyard/Test', @tz)",
		"INSERT INTO mysql.time_zone_transition_type (Time_zone_id, Transition_type_id, `Offset`, Is_DST, Abbreviation) VALUES (@tz, 0, 3600, 0, 'SYT')")
	defer mustExec(t, master, "DELETE FROM mysql.time_zone_transition_type WHERE Time_zone_id = @tz",
		"DELETE FROM mysql.time_zone_name WHERE Time_zone_id = @tz", "DELETE FROM mysql.time_zone WHERE Time_zone_id = @tz")

	c := oneConn(t, proxy, "")
	mustExec(t, c, "SET time_zone = 'Switchyard/Test'")
	for _, q := range []string{"", "START TRANSACTION READ ONLY"} {
		if q != "" {
			mustExec(t, c, q)
		}
		var tz string
		var sid int
		if err := c.QueryRowContext(ctx, "SELECT @@time_zone, @@server_id").Scan(&tz, &sid); err != nil {
			t.Fatalf("read after %q: %v", q, err)
		}
		if tz != "Switchyard/Test" || sid != masterID {
			t.Fatalf("read after %q: time_zone %s on server %d, want Switchyard/Test on the master", q, tz, sid)
		}
	}
	mustExec(t, c, "COMMIT")
	// The session's other settings still reach the replicas once it
	// drops the one they refuse.
	mustExec(t, c, "SET time_zone = '+02:00'")
	harness.WaitFor(t, "a read on a replica again", 10*time.Second, func() bool {
		return serverID(t, c, "SELECT @@server_id") != masterID
	})
}

func TestPreparedStatementsRouteAndSurviveBackendSwitch(t *testing.T) {
	c := oneConn(t, proxy, "interpolateParams=false")
	st, err := c.PrepareContext(context.Background(), "SELECT @@server_id + ? - ?")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	onReplica := 0
	for i := 0; i < 10; i++ {
		var id int
		if err := st.QueryRowContext(context.Background(), 5, 5).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if id != masterID {
			onReplica++
		}
	}
	if onReplica == 0 {
		t.Fatal("prepared reads never reached a replica")
	}
	// In a transaction the same statement runs on the master (prepared
	// there lazily under the same client-side id).
	mustExec(t, c, "BEGIN")
	var id int
	if err := st.QueryRowContext(context.Background(), 1, 1).Scan(&id); err != nil || id != masterID {
		t.Fatalf("in transaction: server %d, %v", id, err)
	}
	mustExec(t, c, "COMMIT")
}

// setDelay sets MASTER_DELAY on every replica.
func setDelay(t *testing.T, seconds int) {
	t.Helper()
	for _, in := range env.Sandbox.ReplicaInstances() {
		db, err := in.DB()
		if err != nil {
			t.Fatal(err)
		}
		f := harness.Flavor()
		mustExec(t, db, f.StopReplicaSQL(), fmt.Sprintf(harness.Pick("CHANGE MASTER TO MASTER_DELAY = %d", "CHANGE REPLICATION SOURCE TO SOURCE_DELAY = %d"), seconds), f.StartReplicaSQL())
		db.Close()
	}
}

// readYourWrites runs 32 sessions that each insert a row and read it back
// at once; it returns how many reads missed their own write.
func readYourWrites(t *testing.T, p *harness.Proxy, rounds int) (misses int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	base := time.Now().UnixNano() / 1000
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, _ := sql.Open("mysql", p.DSN("app", "app", "ryw", ""))
			defer db.Close()
			db.SetMaxOpenConns(1)
			for r := 0; r < rounds; r++ {
				id := base + int64(w*1000+r)
				if _, err := db.Exec("INSERT INTO t VALUES (?, ?)", id, r); err != nil {
					t.Error(err)
					return
				}
				var n int
				if err := db.QueryRow("SELECT COUNT(*) FROM t WHERE id = ?", id).Scan(&n); err != nil {
					t.Error(err)
					return
				}
				if n != 1 {
					mu.Lock()
					misses++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return misses
}

func TestReadYourWritesWithDelayedReplicas(t *testing.T) {
	// The schema must be on the replicas before they are delayed.
	mustExec(t, oneConn(t, proxy, ""), "CREATE DATABASE IF NOT EXISTS ryw", "CREATE TABLE IF NOT EXISTS ryw.t (id BIGINT PRIMARY KEY, v INT)")
	for _, in := range env.Sandbox.ReplicaInstances() {
		db := env.InstanceDB(t, in.Name)
		harness.WaitFor(t, "ryw.t on "+in.Name, 10*time.Second, func() bool {
			var n int
			return db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'ryw' AND TABLE_NAME = 't'").Scan(&n) == nil && n == 1
		})
	}
	setDelay(t, 2)
	defer setDelay(t, 0)
	adm := proxy.Admin(t)
	for _, in := range env.Sandbox.ReplicaInstances() {
		harness.WaitFor(t, "the monitor to see "+in.Name+" replicating again", 10*time.Second, func() bool {
			return harness.Backend(t, adm, in.Name)["replication"] == "io=Yes sql=Yes"
		})
	}
	if misses := readYourWrites(t, proxy, 3); misses != 0 {
		t.Fatalf("%d of 96 reads missed their own write with consistency: session", misses)
	}
	// The same workload without read-your-writes does miss: the delay is real.
	eventual := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Extra: "routing:\n  consistency: eventual\n"})
	if misses := readYourWrites(t, eventual, 1); misses == 0 {
		t.Fatal("with consistency: eventual no read missed: the test proves nothing")
	}
}

func TestLaggingReplicaIsSkipped(t *testing.T) {
	r2, err := env.Sandbox.ReplicaInstances()[1].DB()
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	mustExec(t, r2, harness.Pick("STOP SLAVE SQL_THREAD", "STOP REPLICA SQL_THREAD"))
	defer mustExec(t, r2, harness.Pick("START SLAVE SQL_THREAD", "START REPLICA SQL_THREAD"))
	adm := proxy.Admin(t)
	harness.WaitFor(t, "the monitor to see replica2's SQL thread stopped", 10*time.Second, func() bool {
		return harness.Backend(t, adm, "replica2")["replication"] == "io=Yes sql=No"
	})
	c := oneConn(t, proxy, "")
	for i := 0; i < 100; i++ {
		if id := serverID(t, c, "SELECT @@server_id"); id != 2 {
			t.Fatalf("read went to server %d while replica2's SQL thread is stopped", id)
		}
	}
	mustExec(t, r2, harness.Pick("START SLAVE SQL_THREAD", "START REPLICA SQL_THREAD"))
	harness.WaitFor(t, "replica2 back in rotation", 10*time.Second, func() bool {
		return serverID(t, c, "SELECT @@server_id") == 3
	})
}

// A replica killed under a running statement: that statement fails (not
// hangs), the session's next reads go elsewhere, and the replica rejoins.
func TestReplicaKilledMidSession(t *testing.T) {
	c := oneConn(t, proxy, "")
	// Find a read that lands on replica2.
	for serverID(t, c, "SELECT @@server_id") != 3 {
	}
	victim := env.Sandbox.ReplicaInstances()[1]
	errc := make(chan error, 1)
	go func() {
		var id, slept int
		// Route to a replica and keep it busy; may land on either replica.
		errc <- c.QueryRowContext(context.Background(), "/* replica */ SELECT @@server_id, SLEEP(3)").Scan(&id, &slept)
	}()
	harness.WaitFor(t, "the slow read to run on a replica", 10*time.Second, func() bool {
		for _, in := range env.Sandbox.ReplicaInstances() {
			if harness.Running(t, env.InstanceDB(t, in.Name), "SLEEP(3)") {
				return true
			}
		}
		return false
	})
	if err := env.Sandbox.Kill(victim.Name, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-errc: // either it ran on replica1 and finished, or it failed fast
	case <-time.After(10 * time.Second):
		t.Fatal("statement on a killed replica hangs")
	}
	for i := 0; i < 50; i++ {
		if id := serverID(t, c, "SELECT @@server_id"); id == 3 {
			t.Fatalf("read %d went to the killed replica", i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.Sandbox.Start(ctx, victim.Name); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the restarted replica back in rotation", 20*time.Second, func() bool {
		return serverID(t, c, "SELECT @@server_id") == 3
	})
}

func TestNoReplicaPolicy(t *testing.T) {
	onlyMaster := env.StartProxy(t, harness.ProxyOptions{Backends: []string{"master"}, LogLevel: "info"})
	c := oneConn(t, onlyMaster, "")
	if got := serverID(t, c, "SELECT @@server_id"); got != masterID {
		t.Fatalf("with no replica, read went to %d", got)
	}
	strict := env.StartProxy(t, harness.ProxyOptions{Backends: []string{"master"}, LogLevel: "info",
		Extra: "routing:\n  no_replica: error\n"})
	c2 := oneConn(t, strict, "")
	var id int
	err := c2.QueryRowContext(context.Background(), "SELECT @@server_id").Scan(&id)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1105 {
		t.Fatalf("no_replica: error gave %v", err)
	}
	// Statements for the master still run.
	if got := serverID(t, c2, "/* master */ SELECT @@server_id"); got != masterID {
		t.Fatalf("master read went to %d", got)
	}
}
