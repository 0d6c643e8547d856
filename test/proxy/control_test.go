package proxy_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

// myErr returns the server error code of err (0 when none).
func myErr(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// session opens one client connection (one proxy session) to p.
func session(t *testing.T, p *harness.Proxy, user, pass string) *sql.Conn {
	t.Helper()
	return p.Session(t, user, pass, "", "timeout=5s&readTimeout=30s")
}

func connectionID(t *testing.T, c *sql.Conn) uint64 {
	t.Helper()
	var id uint64
	if err := c.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// CONNECTION_ID() through the proxy is the id the client got in the
// handshake, the one SHOW SESSIONS and KILL use.
func TestConnectionIDIsTheSessionID(t *testing.T) {
	c := session(t, proxy, "app", "app")
	id := connectionID(t, c)
	if id < 10000 {
		t.Fatalf("CONNECTION_ID() = %d, a backend thread id rather than the proxy's session id", id)
	}
	var col string
	rows, err := c.QueryContext(context.Background(), "SELECT CONNECTION_ID()")
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	rows.Close()
	if col = cols[0]; col != "CONNECTION_ID()" {
		t.Errorf("column name %q", col)
	}
	found := false
	for _, r := range harness.AdminRows(t, proxy.Admin(t), "SHOW SESSIONS") {
		if r["id"] == fmt.Sprint(id) && r["user"] == "app" {
			found = true
			if r["backend_threads"] == "" {
				t.Errorf("SHOW SESSIONS gives no backend threads for session %d", id)
			}
		}
	}
	if !found {
		t.Errorf("session %d not in SHOW SESSIONS", id)
	}
}

// KILL QUERY with a proxy session id interrupts that session's statement
// on whichever backend it runs (a replica read, a master write) within a
// second; the killed session gets the server's error and stays usable.
func TestKillQueryInterruptsTheRightStatement(t *testing.T) {
	mustExec(t, proxy.Open(t, "", ""), "CREATE DATABASE IF NOT EXISTS kill_db", "CREATE TABLE IF NOT EXISTS kill_db.t (id INT PRIMARY KEY)")
	for _, tc := range []struct{ name, sql string }{
		{"replica read", "SELECT SLEEP(10)"},
		{"master write", "INSERT INTO kill_db.t SELECT SLEEP(10) + 1000 + FLOOR(RAND() * 1000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim := session(t, proxy, "app", "app")
			id := connectionID(t, victim)
			done := make(chan error, 1)
			go func() {
				_, err := victim.ExecContext(context.Background(), tc.sql)
				done <- err
			}()
			harness.WaitFor(t, "the statement to run", 10*time.Second, func() bool { return runningAnywhere(t, "SLEEP(10)") })
			killer := session(t, proxy, "app", "app")
			start := time.Now()
			if _, err := killer.ExecContext(context.Background(), fmt.Sprintf("KILL QUERY %d", id)); err != nil {
				t.Fatalf("KILL QUERY %d: %v", id, err)
			}
			select {
			case err := <-done:
				took := time.Since(start)
				t.Logf("interrupted after %s: %v", took.Round(time.Millisecond), err)
				if took > 2*time.Second {
					t.Errorf("the statement ran on for %s after KILL QUERY", took)
				}
				if err != nil && myErr(err) != gomysql.ER_QUERY_INTERRUPTED {
					t.Errorf("the killed statement ended with %v, want 1317 or its interrupted result", err)
				}
			case <-time.After(8 * time.Second):
				t.Fatal("KILL QUERY did not interrupt the statement")
			}
			if runningAnywhere(t, "SLEEP(10)") {
				t.Error("the statement still runs on a backend")
			}
			var one int
			if err := victim.QueryRowContext(context.Background(), "SELECT 1").Scan(&one); err != nil {
				t.Errorf("the session is not usable after KILL QUERY: %v", err)
			}
		})
	}
}

// runningAnywhere reports whether a statement containing text runs on any
// sandbox server.
func runningAnywhere(t *testing.T, text string) bool {
	for _, in := range env.Sandbox.Instances {
		if harness.Running(t, env.InstanceDB(t, in.Name), text) {
			return true
		}
	}
	return false
}

// KILL rules: ids the proxy does not know get 1094; another user's
// session 1095; KILL CONNECTION ends the session; COM_PROCESS_KILL does the
// same; KILL of one's own connection ends it with 1927.
func TestKillRules(t *testing.T) {
	p := env.StartProxy(t, proxyWithUsers())
	app := session(t, p, "app", "app")
	bob := session(t, p, "bob", "bobpw")
	if _, err := app.ExecContext(context.Background(), "KILL QUERY 4000000"); myErr(err) != gomysql.ER_NO_SUCH_THREAD {
		t.Errorf("KILL of an unknown id: %v, want 1094", err)
	}
	if _, err := app.ExecContext(context.Background(), fmt.Sprintf("KILL %d", connectionID(t, bob))); myErr(err) != gomysql.ER_KILL_DENIED_ERROR {
		t.Errorf("KILL of another user's session: %v, want 1095", err)
	}
	victim := session(t, p, "app", "app")
	if _, err := app.ExecContext(context.Background(), fmt.Sprintf("KILL CONNECTION %d", connectionID(t, victim))); err != nil {
		t.Fatalf("KILL CONNECTION: %v", err)
	}
	harness.WaitFor(t, "the killed session to end", 5*time.Second, func() bool {
		return victim.PingContext(context.Background()) != nil
	})
	c := connectClient(t, p.Addr)
	other := session(t, p, "app", "app")
	id := connectionID(t, other)
	pkt := []byte{gomysql.COM_PROCESS_KILL, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(pkt[1:], uint32(id))
	if reply := sendCommand(t, c, pkt); reply[0] != gomysql.OK_HEADER {
		t.Fatalf("COM_PROCESS_KILL: %x", reply)
	}
	harness.WaitFor(t, "the session killed by COM_PROCESS_KILL to end", 5*time.Second, func() bool {
		return other.PingContext(context.Background()) != nil
	})
	self := session(t, p, "app", "app")
	if _, err := self.ExecContext(context.Background(), fmt.Sprintf("KILL %d", connectionID(t, self))); myErr(err) != 1927 {
		t.Errorf("KILL of one's own connection: %v, want 1927", err)
	}
}

// pool.query_timeout kills the statement on the server (not only the
// proxy's socket), the client gets a clear error, and the session stays
// usable; a session's own max_statement_time works as on the server.
func TestQueryTimeoutKillsTheStatement(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Extra: "pool:\n  query_timeout: 1s\n"})
	c := session(t, p, "app", "app")
	start := time.Now()
	_, err := c.ExecContext(context.Background(), "SELECT SLEEP(6) AS marker_qt")
	took := time.Since(start)
	if myErr(err) != 1969 || !strings.Contains(err.Error(), "query_timeout") {
		t.Fatalf("after %s: %v, want 1969 naming query_timeout", took, err)
	}
	if took > 3*time.Second {
		t.Errorf("the timeout took %s", took)
	}
	if runningAnywhere(t, "marker_qt") {
		t.Error("the timed-out statement still runs on the server")
	}
	var one int
	if err := c.QueryRowContext(context.Background(), "SELECT 1").Scan(&one); err != nil {
		t.Errorf("session after the timeout: %v", err)
	}
	d := session(t, proxy, "app", "app")
	if _, err := d.ExecContext(context.Background(), "SET SESSION max_statement_time = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(context.Background(), "SELECT SLEEP(5)"); err == nil {
		// MariaDB interrupts SLEEP with a result of 1 or an error
		var r int
		_ = d.QueryRowContext(context.Background(), "SELECT SLEEP(5)").Scan(&r)
		if r != 1 {
			t.Errorf("max_statement_time did not interrupt SLEEP(5)")
		}
	} else if myErr(err) != 1969 {
		t.Errorf("max_statement_time: %v, want 1969", err)
	}
}

// The client's wait_timeout closes its idle connection, as the server
// would (go-sql-driver's TestStaleConnectionChecks); a new connection
// works.
func TestWaitTimeoutClosesIdleClient(t *testing.T) {
	c := connectClient(t, proxy.Addr)
	if _, err := c.Execute("SET @@SESSION.wait_timeout = 1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // idle past wait_timeout: the time is the test
	if _, err := c.Execute("SELECT 1"); err == nil {
		t.Fatal("the connection outlived its wait_timeout")
	}
	assertProxyServes(t)
}

// A backend connection the server closed while the session was idle is
// replaced before the next statement is sent: the statement runs, no 1927.
func TestDeadBackendConnectionReplacedBeforeSending(t *testing.T) {
	mustExec(t, proxy.Open(t, "", ""), "CREATE DATABASE IF NOT EXISTS kill_db", "CREATE TABLE IF NOT EXISTS kill_db.d (id INT PRIMARY KEY)")
	c := session(t, proxy, "app", "app")
	if _, err := c.ExecContext(context.Background(), "REPLACE INTO kill_db.d VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	id := connectionID(t, c)
	var threads string
	for _, r := range harness.AdminRows(t, proxy.Admin(t), "SHOW SESSIONS") {
		if r["id"] == fmt.Sprint(id) {
			threads = r["backend_threads"]
		}
	}
	var master uint64
	for _, part := range strings.Fields(threads) {
		if name, thread, ok := strings.Cut(part, ":"); ok && name == env.Sandbox.Master().Name {
			fmt.Sscan(thread, &master)
		}
	}
	if master == 0 {
		t.Fatalf("no master thread among %q", threads)
	}
	if _, err := env.InstanceDB(t, "master").Exec(fmt.Sprintf("KILL CONNECTION %d", master)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // idle past the proxy's liveness check (1 s): the time is the test
	if _, err := c.ExecContext(context.Background(), "REPLACE INTO kill_db.d VALUES (2)"); err != nil {
		t.Fatalf("the write after its backend connection died: %v", err)
	}
}

// Valid SQL, each found breaking a session through the proxy (MariaDB's
// own test suite): the proxy answers as the server does, and the session
// goes on.
func TestValidSQLNeverBreaksTheSession(t *testing.T) {
	mustExec(t, proxy.Open(t, "", ""), "CREATE DATABASE IF NOT EXISTS valid_db",
		"CREATE TABLE IF NOT EXISTS valid_db.t1 (a INT, b VARCHAR(10))", "DELETE FROM valid_db.t1", "INSERT INTO valid_db.t1 VALUES (1, 'x'), (2, 'y')",
		"CREATE TABLE IF NOT EXISTS valid_db.ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	direct, via := env.Direct(t, "valid_db", "multiStatements=true"), proxy.Open(t, "valid_db", "multiStatements=true")
	for _, q := range []string{
		"SELECT 1000000000000000000000000000000000000000000000000000000000000000000000000000000001 AS c",
		"BEGIN NOT ATOMIC DECLARE rec ROW(Field_name TEXT, Min_value TEXT, Max_value TEXT, Min_length TEXT, Max_length TEXT, " +
			"Empties_or_zeros TEXT, Nulls TEXT, Avg_value_or_avg_length TEXT, Std TEXT, Optimal_fieldtype TEXT); " +
			"DECLARE c CURSOR FOR SELECT * FROM t1 PROCEDURE analyse(); OPEN c; FETCH c INTO rec; CLOSE c; SELECT rec.field_name, rec.Min_value; END",
	} {
		want := rowsAsStrings(t, direct, q)
		if got := rowsAsStrings(t, via, q); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%.60s…: proxy %v, server %v", q, got, want)
		}
	}
	// Session-scoped reads: the answer depends on where the session's
	// statements ran.
	c := session(t, proxy, "app", "app")
	ctx := context.Background()
	mustExecConn(t, c, "USE valid_db", "SET sql_auto_is_null = 1", "INSERT INTO ai (v) VALUES (7)")
	var v int
	if err := c.QueryRowContext(ctx, "SELECT v FROM ai WHERE id IS NULL").Scan(&v); err != nil || v != 7 {
		t.Errorf("sql_auto_is_null read: %d %v", v, err)
	}
	var x string
	mustExecConn(t, c, "SET @i = 2")
	if err := c.QueryRowContext(ctx, "SELECT ExtractValue('<a><b>x</b><b>y</b></a>', '/a/b[$@i]')").Scan(&x); err != nil || x != "y" {
		t.Errorf("user variable in an XPath: %q %v", x, err)
	}
	mustExecConn(t, c, "SET profiling = 1", "SELECT * FROM t1")
	var n int
	if rows, err := c.QueryContext(ctx, "SHOW PROFILES"); err != nil {
		t.Error(err)
	} else {
		for rows.Next() {
			n++
		}
		rows.Close()
	}
	if n == 0 {
		t.Error("SHOW PROFILES is empty: it ran where the profiled statements did not")
	}
	// A fractional timestamp set by the session is replayed on the other
	// connections the session uses (a replica read sees it).
	mustExecConn(t, c, "SET timestamp = 1732900000.5")
	var ts float64
	if err := c.QueryRowContext(ctx, "SELECT UNIX_TIMESTAMP(NOW(1))").Scan(&ts); err != nil || ts != 1732900000.5 {
		t.Errorf("timestamp after replay: %v %v", ts, err)
	}
}

// The protocol's maximum of 65,535 parameters: prepared and executed
// (go-sql-driver's TestPreparedManyCols).
func TestPreparedStatementWithMostParameters(t *testing.T) {
	const n = 65535
	q := "SELECT ?" + strings.Repeat(", ?", n-1)
	args := make([]any, n)
	for i := range args {
		args[i] = i
	}
	db := proxy.Open(t, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	rows.Close()
	if len(cols) != n {
		t.Fatalf("%d columns", len(cols))
	}
}
