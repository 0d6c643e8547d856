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

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

// A client that disappears inside a transaction must not leave its locks
// behind: the backend connection is rolled back (reset) or closed.
func TestClientVanishingMidTransactionReleasesLocks(t *testing.T) {
	setup := proxy.Open(t, "", "")
	mustExec(t, setup, "CREATE DATABASE IF NOT EXISTS vanish_db",
		"CREATE TABLE IF NOT EXISTS vanish_db.t (id INT PRIMARY KEY, v INT)",
		"REPLACE INTO vanish_db.t VALUES (1, 0)")
	c := connectClient(t, proxy.Addr)
	for _, q := range []string{"BEGIN", "UPDATE vanish_db.t SET v = 99 WHERE id = 1"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Conn.Conn.Close() // no COM_QUIT: the client just vanishes

	other := proxy.Open(t, "", "")
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mustExecConn(t, conn, "SET SESSION innodb_lock_wait_timeout = 5")
	start := time.Now()
	if _, err := conn.ExecContext(context.Background(), "UPDATE vanish_db.t SET v = 1 WHERE id = 1"); err != nil {
		t.Fatalf("row still locked by the vanished client: %v", err)
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("waited %s for the lock", time.Since(start))
	}
	var v int
	if err := conn.QueryRowContext(context.Background(), "SELECT v FROM vanish_db.t WHERE id = 1").Scan(&v); err != nil || v != 1 {
		t.Fatalf("v = %d (%v): the vanished transaction was committed?", v, err)
	}
}

func mustExecConn(t *testing.T, c *sql.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := c.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// A client that stops mid-result: the proxy drops that backend connection
// (its unread rows make it unusable), the server's query ends, and the
// proxy keeps serving.
func TestClientVanishingMidResult(t *testing.T) {
	mustExec(t, proxy.Open(t, "", ""), "CREATE DATABASE IF NOT EXISTS vanish_db")
	c := connectClient(t, proxy.Addr)
	c.ResetSequence()
	q := "SELECT seq, REPEAT('v', 200) AS marker_vanish FROM vanish_db.seq_1_to_2000000"
	if err := c.WritePacket(append(append(make([]byte, 4), gomysql.COM_QUERY), q...)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ { // column count, definitions, some rows
		if _, err := c.ReadPacket(); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Conn.Conn.Close()
	assertProxyServes(t)
	direct := env.Direct(t, "", "")
	harness.WaitFor(t, "the abandoned query to end on the master", 15*time.Second, func() bool {
		var n int
		if err := direct.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%marker_vanish%' AND INFO NOT LIKE '%PROCESSLIST%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// Backend connections go back to the pool reset: the next session on the
// same server connection sees none of the previous one's state.
func TestPooledConnectionIsResetBeforeReuse(t *testing.T) {
	mustExec(t, proxy.Open(t, "", ""), "CREATE DATABASE IF NOT EXISTS reset_db",
		"CREATE TABLE IF NOT EXISTS reset_db.t (id INT PRIMARY KEY)", "DELETE FROM reset_db.t")
	a := connectClient(t, proxy.Addr)
	var firstID int64
	for _, q := range []string{"SET @leak = 42", "SET SESSION sql_mode = 'ANSI_QUOTES'", "CREATE TEMPORARY TABLE reset_db.tmp (x INT)",
		"BEGIN", "INSERT INTO reset_db.t VALUES (1)", "SELECT GET_LOCK('reset_lock', 0)"} {
		if _, err := a.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The backend thread's own id: CONNECTION_ID() through the proxy is
	// the session's.
	r, err := a.Execute("SELECT @@pseudo_thread_id")
	if err != nil {
		t.Fatal(err)
	}
	firstID = r.Values[0][0].AsInt64()
	a.Close() // COM_QUIT: the session ends, its backend connection is released
	waitSessionGone(t, "pseudo_thread_id")

	b := connectClient(t, proxy.Addr)
	r, err = b.Execute("SELECT @@pseudo_thread_id, @leak, @@session.sql_mode, IS_FREE_LOCK('reset_lock'), (SELECT COUNT(*) FROM reset_db.t)")
	if err != nil {
		t.Fatal(err)
	}
	if id := r.Values[0][0].AsInt64(); id != firstID {
		t.Fatalf("backend connection not reused (%d then %d): the test proves nothing", firstID, id)
	}
	row := r.Values[0]
	if row[1].Value() != nil {
		t.Errorf("user variable leaked: %v", row[1].Value())
	}
	if strings.Contains(string(row[2].AsString()), "ANSI_QUOTES") {
		t.Errorf("sql_mode leaked: %s", row[2].AsString())
	}
	if row[3].AsInt64() != 1 {
		t.Error("GET_LOCK still held")
	}
	if row[4].AsInt64() != 0 {
		t.Error("uncommitted insert survived")
	}
	if _, err := b.Execute("SELECT * FROM reset_db.tmp"); err == nil {
		t.Error("temporary table leaked")
	}
}

// waitSessionGone waits until no session's last statement digest contains
// marker (the proxy ends a session asynchronously after COM_QUIT).
func waitSessionGone(t *testing.T, marker string) {
	t.Helper()
	adm := proxy.Admin(t)
	harness.WaitFor(t, "the session to end", 5*time.Second, func() bool {
		for _, r := range harness.AdminRows(t, adm, "SHOW SESSIONS") {
			if strings.Contains(r["last_statement_digest"], marker) {
				return false
			}
		}
		return true
	})
}

func TestResetConnectionCommand(t *testing.T) {
	c := connectClient(t, proxy.Addr)
	if _, err := c.Execute("SET @x = 1"); err != nil {
		t.Fatal(err)
	}
	if err := c.UseDB("mysql"); err != nil {
		t.Fatal(err)
	}
	if reply := sendCommand(t, c, []byte{gomysql.COM_RESET_CONNECTION}); reply[0] != gomysql.OK_HEADER {
		t.Fatalf("reset: %x", reply)
	}
	r, err := c.Execute("SELECT @x, DATABASE()")
	if err != nil {
		t.Fatal(err)
	}
	if r.Values[0][0].Value() != nil || string(r.Values[0][1].AsString()) != "mysql" {
		t.Fatalf("after reset: @x=%v db=%s", r.Values[0][0].Value(), r.Values[0][1].AsString())
	}
}

// changeUser sends COM_CHANGE_USER and answers the proxy's auth switch.
func changeUser(t *testing.T, c *client.Conn, user, pass, db string) []byte {
	t.Helper()
	pkt := []byte{gomysql.COM_CHANGE_USER}
	pkt = append(pkt, user...)
	pkt = append(pkt, 0, 0) // NUL, empty auth (recomputed after the switch)
	pkt = append(pkt, db...)
	pkt = append(pkt, 0, 45, 0) // utf8mb4_general_ci
	pkt = append(pkt, "mysql_native_password\x00"...)
	sw := sendCommand(t, c, pkt)
	if sw[0] != 0xfe {
		return sw
	}
	rest := sw[1:]
	i := strings.IndexByte(string(rest), 0)
	salt := rest[i+1:]
	salt = salt[:20]
	if err := c.WritePacket(append(make([]byte, 4), gomysql.CalcNativePassword(salt, []byte(pass))...)); err != nil {
		t.Fatal(err)
	}
	reply, err := c.ReadPacket()
	if err != nil {
		return nil
	}
	return reply
}

func TestChangeUser(t *testing.T) {
	p := env.StartProxy(t, proxyWithUsers())
	c := connectClient(t, p.Addr)
	if _, err := c.Execute("SET @before = 1"); err != nil {
		t.Fatal(err)
	}
	reply := changeUser(t, c, "bob", "bobpw", "mysql")
	if len(reply) == 0 || reply[0] != gomysql.OK_HEADER {
		t.Fatalf("change user: %x", reply)
	}
	r, err := c.Execute("SELECT DATABASE(), @before")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Values[0][0].AsString()) != "mysql" || r.Values[0][1].Value() != nil {
		t.Fatalf("after change user: db=%s @before=%v", r.Values[0][0].AsString(), r.Values[0][1].Value())
	}
	// A wrong password is refused with 1045.
	c2 := connectClient(t, p.Addr)
	reply = changeUser(t, c2, "bob", "wrong", "")
	if errCode(reply) != gomysql.ER_ACCESS_DENIED_ERROR {
		t.Fatalf("want 1045, got %x", reply)
	}
}

// proxyWithUsers adds users for auth tests; all map to the app account.
func proxyWithUsers() harnessProxyOptions {
	return harnessProxyOptions{Users: `  - name: app
    password: app
  - name: bob
    password: bobpw
    backend_user: app
    backend_password: app
  - name: sha
    password: shapw
    auth: caching_sha2_password
    backend_user: app
    backend_password: app
  - name: secure
    password: securepw
    require_tls: true
    backend_user: app
    backend_password: app
`}
}

func TestCachingSha2Password(t *testing.T) {
	p := env.StartProxy(t, proxyWithUsers())
	// Full authentication over plain TCP uses the server's RSA key; the
	// second login takes the fast path from the cache.
	for i := 0; i < 2; i++ {
		db, _ := sql.Open("mysql", p.DSN("sha", "shapw", "", ""))
		var u string
		err := db.QueryRow("SELECT 'ok'").Scan(&u)
		db.Close()
		if err != nil || u != "ok" {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	db, _ := sql.Open("mysql", p.DSN("sha", "bad", "", ""))
	defer db.Close()
	var me *mysql.MySQLError
	if err := db.Ping(); !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("wrong sha2 password: %v", err)
	}
}

func TestStreamingLargeResultKeepsMemoryFlat(t *testing.T) {
	p := env.StartProxy(t, harnessProxyOptions{})
	db := p.Open(t, "", "")
	mustExec(t, db, "CREATE DATABASE IF NOT EXISTS stream_db")
	base, err := p.ProcStatus("VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	const rows = 1_000_000
	const width = 150
	r, err := db.Query(fmt.Sprintf("SELECT seq, REPEAT('x', %d) FROM stream_db.seq_1_to_%d", width, rows))
	if err != nil {
		t.Fatal(err)
	}
	var n, total int64
	var seq int64
	var pad sql.RawBytes
	for r.Next() {
		if err := r.Scan(&seq, &pad); err != nil {
			t.Fatal(err)
		}
		n++
		total += int64(len(pad)) + 8
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	peak, _ := p.ProcStatus("VmHWM")
	growthMB := float64(peak-base) / 1024
	t.Logf("streamed %d rows (%.0f MiB); proxy peak RSS %d kB -> %d kB (+%.1f MiB)", n, float64(total)/(1<<20), base, peak, growthMB)
	if n != rows {
		t.Fatalf("got %d rows", n)
	}
	// The result is ~150 MiB; a buffering proxy would grow by at least that.
	if growthMB > 40 {
		t.Fatalf("proxy memory grew by %.1f MiB while streaming %.0f MiB", growthMB, float64(total)/(1<<20))
	}
}

func TestGracefulShutdownLetsTransactionsFinish(t *testing.T) {
	p := env.StartProxy(t, harnessProxyOptions{})
	idle := connectClient(t, p.Addr)
	busy := connectClient(t, p.Addr)
	mustExec(t, p.Open(t, "", ""), "CREATE DATABASE IF NOT EXISTS drain_db", "CREATE TABLE IF NOT EXISTS drain_db.t (id INT PRIMARY KEY)", "DELETE FROM drain_db.t")
	if _, err := busy.Execute("BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := busy.Execute("INSERT INTO drain_db.t VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop() }()
	// The idle session is closed; the one in a transaction may finish.
	harness.WaitFor(t, "the idle session to be closed by the drain", 5*time.Second, func() bool { return idle.Ping() != nil })
	if _, err := busy.Execute("COMMIT"); err != nil {
		t.Fatalf("commit during drain: %v", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("proxy did not exit after the last transaction ended")
	}
	var n int
	if err := env.Direct(t, "", "").QueryRow("SELECT COUNT(*) FROM drain_db.t WHERE id = 7").Scan(&n); err != nil || n != 1 {
		t.Fatalf("committed row missing: %d %v", n, err)
	}
}

// binaryLE is used by tests that craft packets by hand.
var _ = binary.LittleEndian

// No statement can unselect a database, so a pooled connection that a
// session left in one must not serve a session that has none (seen in
// MariaDB's main.connect-no-db: DATABASE() said "test" through the proxy).
func TestSessionWithoutDatabaseGetsNoDatabase(t *testing.T) {
	mustExec(t, proxy.Open(t, "", ""), "CREATE DATABASE IF NOT EXISTS nodb_db")
	// Both routes: a read outside a transaction (replica), one inside (master).
	databases := func(c *client.Conn) string {
		var out []string
		for _, q := range []string{"SELECT DATABASE()", "BEGIN", "SELECT DATABASE()", "COMMIT"} {
			r, err := c.Execute(q)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if r.Resultset != nil && len(r.Fields) > 0 {
				if v := r.Values[0][0].Value(); v == nil {
					out = append(out, "NULL")
				} else {
					out = append(out, string(r.Values[0][0].AsString()))
				}
			}
		}
		return strings.Join(out, " ")
	}
	a := connectClient(t, proxy.Addr)
	if _, err := a.Execute("USE nodb_db"); err != nil {
		t.Fatal(err)
	}
	if got := databases(a); got != "nodb_db nodb_db" {
		t.Fatalf("after USE: %s", got)
	}
	a.Close()
	waitSessionGone(t, "DATABASE")

	b := connectClient(t, proxy.Addr)
	if got := databases(b); got != "NULL NULL" {
		t.Fatalf("a session without a database sees %s (replica, master)", got)
	}
	// And the connections that have one still serve sessions that want it.
	c, err := client.Connect(proxy.Addr, "app", "app", "nodb_db")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := databases(c); got != "nodb_db nodb_db" {
		t.Fatalf("session with nodb_db: %s", got)
	}
}

// After SET GLOBAL through the proxy a new session starts from the new
// value, as on the server: the pool's idle connections were reset before
// the change and are not handed out (seen in MariaDB's main suite with
// max_allowed_packet). Sessions already open keep their own values.
func TestSetGlobalReachesNewSessions(t *testing.T) {
	onMaster := func(c *client.Conn, q string) string {
		t.Helper()
		var out string
		for _, s := range []string{"BEGIN", q, "COMMIT"} {
			r, err := c.Execute(s)
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			if r.Resultset != nil && len(r.Fields) > 0 {
				out = r.Values[0][0].String()
			}
		}
		return out
	}
	// Its own proxy: the pool state is what this test makes it, and a DBA
	// account (the sandbox's switchyard user) may SET GLOBAL; the check
	// rightly refuses such an account for applications, hence SkipCheck.
	p := env.StartProxy(t, harness.ProxyOptions{SkipCheck: true, Users: "  - name: app\n    password: app\n" +
		"  - name: dba\n    password: dba\n    backend_user: switchyard\n    backend_password: switchyard\n"})
	open := connectClient(t, p.Addr)
	before := onMaster(open, "SELECT @@session.group_concat_max_len")
	// Leave an idle master connection in the pool, reset with today's globals.
	idle := connectClient(t, p.Addr)
	onMaster(idle, "SELECT 1")
	idle.Close()
	harness.WaitFor(t, "the idle session to end", 5*time.Second, func() bool {
		return len(harness.AdminRows(t, p.Admin(t), "SHOW SESSIONS")) == 1
	})

	admin := connectAs(t, p.Addr, "dba", "dba")
	if _, err := admin.Execute("SET GLOBAL group_concat_max_len = 4321"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Execute("SET GLOBAL group_concat_max_len = DEFAULT") })

	fresh := connectClient(t, p.Addr)
	if got := onMaster(fresh, "SELECT @@session.group_concat_max_len"); got != "4321" {
		t.Errorf("a new session after SET GLOBAL has group_concat_max_len %s, want 4321", got)
	}
	if got := onMaster(open, "SELECT @@session.group_concat_max_len"); got != before {
		t.Errorf("an open session's value changed from %s to %s", before, got)
	}
}

func connectAs(t *testing.T, addr, user, password string) *client.Conn {
	t.Helper()
	c, err := client.Connect(addr, user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestChangeUserWhileAdminWatches: a session changes user again and again
// while the admin port lists sessions: every change works, SHOW SESSIONS
// names the current user, and a race build (make test-race) reports no
// race between the session and the admin's reads.
func TestChangeUserWhileAdminWatches(t *testing.T) {
	p := env.StartProxy(t, proxyWithUsers())
	adm := p.Admin(t)
	stop := make(chan struct{})
	watched := make(chan int)
	go func() {
		n := 0
		defer func() { watched <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if rows, err := adm.Query("SHOW SESSIONS"); err == nil {
				for rows.Next() {
				}
				rows.Close()
				n++
			}
		}
	}()
	c := connectClient(t, p.Addr)
	users := []struct{ name, pass string }{{"bob", "bobpw"}, {"app", "app"}}
	for i := range 40 {
		u := users[i%2]
		if reply := changeUser(t, c, u.name, u.pass, ""); len(reply) == 0 || reply[0] != gomysql.OK_HEADER {
			t.Fatalf("change to %s: %x", u.name, reply)
		}
		if _, err := c.Execute("SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	t.Logf("SHOW SESSIONS ran %d times during 40 user changes", <-watched)
	found := false
	for _, r := range harness.AdminRows(t, adm, "SHOW SESSIONS") {
		found = found || r["user"] == "app"
	}
	if !found {
		t.Fatal("SHOW SESSIONS does not show the session's current user")
	}
}
