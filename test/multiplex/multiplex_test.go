// Package multiplex tests connection multiplexing (pool.multiplexing)
// against a real sandbox: sessions share a small pool of backend
// connections, and a session with state never sees another's.
package multiplex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var (
	env   *harness.Env
	proxy *harness.Proxy
)

// poolMax is the pool size per server (the target: 64).
const poolMax = 64

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, 2, 12, harness.ProxyOptions{LogLevel: "info",
		Extra: fmt.Sprintf("pool:\n  multiplexing: true\n  max_connections: %d\n  max_idle: %d\n  acquire_timeout: 20s\n", poolMax, poolMax)},
		&env, &proxy))
}

// backendConns counts the app account's connections on each server.
func backendConns(t *testing.T, dbs map[string]*sql.DB) map[string]int {
	out := map[string]int{}
	for name, db := range dbs {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'").Scan(&n); err != nil {
			t.Errorf("processlist on %s: %v", name, err)
		}
		out[name] = n
	}
	return out
}

func instanceDBs(t *testing.T) map[string]*sql.DB {
	dbs := map[string]*sql.DB{}
	for _, in := range env.Sandbox.Instances {
		dbs[in.Name] = env.InstanceDB(t, in.Name)
	}
	return dbs
}

// TestStatefulSessionsStayIsolated runs sessions that hold state (user
// variable, session variable, temporary table, open transaction) next to
// many stateless sessions that share the rest of the pool. No stateless
// session may see any of that state, during or after the stateful ones.
func TestStatefulSessionsStayIsolated(t *testing.T) {
	ctx := context.Background()
	setup := proxy.Open(t, "", "")
	if _, err := setup.Exec("CREATE DATABASE IF NOT EXISTS mx"); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec("CREATE TABLE IF NOT EXISTS mx.t (id INT AUTO_INCREMENT PRIMARY KEY, owner INT)"); err != nil {
		t.Fatal(err)
	}
	var defaultTimeout int
	if err := setup.QueryRow("SELECT @@global.wait_timeout").Scan(&defaultTimeout); err != nil {
		t.Fatal(err)
	}

	const stateful, stateless = 8, 120
	db := proxy.Open(t, "mx", "")
	db.SetMaxOpenConns(stateful + stateless)
	db.SetMaxIdleConns(stateful + stateless)
	var (
		wg       sync.WaitGroup
		checks   atomic.Int64
		failures = make(chan string, 100)
	)
	fail := func(format string, args ...any) {
		select {
		case failures <- fmt.Sprintf(format, args...):
		default:
		}
	}
	statefulDone := make(chan struct{})
	var statefulWG sync.WaitGroup
	for i := 1; i <= stateful; i++ {
		statefulWG.Add(1)
		go func(i int) {
			defer statefulWG.Done()
			c, err := db.Conn(ctx)
			if err != nil {
				fail("stateful %d: %v", i, err)
				return
			}
			defer c.Close()
			exec := func(q string, args ...any) bool {
				if _, err := c.ExecContext(ctx, q, args...); err != nil {
					fail("stateful %d: %s: %v", i, q, err)
					return false
				}
				return true
			}
			if !exec("SET @mine = ?", i) || !exec(fmt.Sprintf("SET SESSION wait_timeout = %d", 1000+i)) ||
				!exec(fmt.Sprintf("CREATE TEMPORARY TABLE tmp_%d (v INT)", i)) || !exec(fmt.Sprintf("INSERT INTO tmp_%d VALUES (?)", i), i) {
				return
			}
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				var mine, timeout, v, own int
				if err := c.QueryRowContext(ctx, "SELECT @mine, @@session.wait_timeout").Scan(&mine, &timeout); err != nil || mine != i || timeout != 1000+i {
					fail("stateful %d: @mine=%d wait_timeout=%d err=%v", i, mine, timeout, err)
					return
				}
				if err := c.QueryRowContext(ctx, fmt.Sprintf("SELECT v FROM tmp_%d", i)).Scan(&v); err != nil || v != i {
					fail("stateful %d: temporary table gave %d, %v", i, v, err)
					return
				}
				if !exec("BEGIN") || !exec("INSERT INTO t (owner) VALUES (?)", i) {
					return
				}
				// Between statements of the transaction other sessions run.
				time.Sleep(time.Millisecond)
				if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM t WHERE owner = ?", i).Scan(&own); err != nil || own != 1 {
					fail("stateful %d: own uncommitted row count %d, %v", i, own, err)
					return
				}
				if !exec("ROLLBACK") {
					return
				}
				checks.Add(1)
			}
		}(i)
	}
	go func() { statefulWG.Wait(); close(statefulDone) }()

	stopStateless := make(chan struct{})
	for j := 0; j < stateless; j++ {
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			c, err := db.Conn(ctx)
			if err != nil {
				fail("stateless %d: %v", j, err)
				return
			}
			defer c.Close()
			for {
				select {
				case <-stopStateless:
					return
				default:
				}
				// The master hint sends these where the stateful sessions'
				// connections live, so parked connections are reused.
				// Reading @mine would pin this session (any user
				// variable does); the server's own list tells instead.
				var vars, timeout, rows, inTx int
				if err := c.QueryRowContext(ctx, "/* master */ SELECT COUNT(*) FROM information_schema.USER_VARIABLES").Scan(&vars); err != nil || vars != 0 {
					fail("stateless %d saw %d user variables (err %v)", j, vars, err)
					return
				}
				if err := c.QueryRowContext(ctx, "/* master */ SELECT @@session.wait_timeout, @@in_transaction").Scan(&timeout, &inTx); err != nil || timeout != defaultTimeout || inTx != 0 {
					fail("stateless %d saw wait_timeout %d in_transaction %d (err %v)", j, timeout, inTx, err)
					return
				}
				if err := c.QueryRowContext(ctx, "/* master */ SELECT COUNT(*) FROM t").Scan(&rows); err != nil || rows != 0 {
					fail("stateless %d saw %d uncommitted rows (err %v)", j, rows, err)
					return
				}
				var v int
				err := c.QueryRowContext(ctx, fmt.Sprintf("/* master */ SELECT v FROM tmp_%d", 1+j%stateful)).Scan(&v)
				var me *mysql.MySQLError
				if !errors.As(err, &me) || me.Number != 1146 {
					fail("stateless %d could read another session's temporary table: v=%d err=%v", j, v, err)
					return
				}
				checks.Add(1)
				time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
			}
		}(j)
	}

	dbs := instanceDBs(t)
	peak := 0
	for sampling := true; sampling; {
		select {
		case <-statefulDone:
			sampling = false
		case <-time.After(100 * time.Millisecond):
			if n := backendConns(t, dbs)["master"]; n > peak {
				peak = n
			}
		}
	}
	// The stateful sessions are gone: their connections were reset. The
	// stateless ones keep checking for a while on the reused connections.
	more := checks.Load() + 500
	harness.WaitFor(t, "500 more checks after the stateful sessions left", 30*time.Second, func() bool { return checks.Load() >= more })
	close(stopStateless)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	t.Logf("%d stateful + %d stateless sessions ran %d checks; peak app connections on the master %d (pool max %d)",
		stateful, stateless, checks.Load(), peak, poolMax)
	if peak > poolMax {
		t.Errorf("the master had %d app connections, more than the pool's %d", peak, poolMax)
	}
	if checks.Load() < stateless {
		t.Errorf("only %d checks ran", checks.Load())
	}
}

// TestManyIdleClientsShareThePool: 2,000 mostly idle clients doing
// occasional autocommit reads share at most poolMax connections per
// server, and every read succeeds.
func TestManyIdleClientsShareThePool(t *testing.T) {
	const clients = 2000
	ctx := context.Background()
	db := proxy.Open(t, "mx", "timeout=30s")
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)
	conns := make([]*sql.Conn, clients)
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns[i] = c
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dbs := instanceDBs(t)
	var (
		wg          sync.WaitGroup
		reads, errs atomic.Int64
		firstErr    atomic.Value
	)
	done := make(chan struct{})
	for i, c := range conns {
		wg.Add(1)
		go func(i int, c *sql.Conn) {
			defer wg.Done()
			for k := 0; k < 3; k++ {
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Millisecond)
				var id int
				if err := c.QueryRowContext(ctx, "SELECT ?", i).Scan(&id); err != nil || id != i {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("client %d: got %d, %v", i, id, err))
					continue
				}
				reads.Add(1)
			}
		}(i, c)
	}
	go func() { wg.Wait(); close(done) }()
	peak := map[string]int{}
	for sampling := true; sampling; {
		select {
		case <-done:
			sampling = false
		case <-time.After(200 * time.Millisecond):
			for name, n := range backendConns(t, dbs) {
				peak[name] = max(peak[name], n)
			}
		}
	}
	t.Logf("%d clients: %d reads, %d errors; peak app connections per server %v (pool max %d)", clients, reads.Load(), errs.Load(), peak, poolMax)
	if errs.Load() > 0 {
		t.Errorf("%d reads failed; first: %v", errs.Load(), firstErr.Load())
	}
	if reads.Load() != 3*clients {
		t.Errorf("reads = %d, want %d", reads.Load(), 3*clients)
	}
	for name, n := range peak {
		if n > poolMax {
			t.Errorf("%s had %d app connections, more than the pool's %d", name, n, poolMax)
		}
	}
	if peak["master"] == 0 && peak["replica1"] == 0 && peak["replica2"] == 0 {
		t.Error("no backend connection was ever seen: the sampling is broken")
	}
}

// TestShowSessionsSaysWhyConnectionsAreHeld: the admin port shows which
// sessions keep backend connections between statements, and why.
func TestShowSessionsSaysWhyConnectionsAreHeld(t *testing.T) {
	ctx := context.Background()
	db := proxy.Open(t, "", "")
	pinned, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	free, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer free.Close()
	if _, err := pinned.ExecContext(ctx, "SET @held = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := free.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	admin := proxy.Admin(t)
	var sawPinned, sawFree bool
	var rows []map[string]string
	defer func() {
		if !sawPinned || !sawFree {
			t.Logf("SHOW SESSIONS: %v", rows)
		}
	}()
	harness.WaitFor(t, "SHOW SESSIONS to list both sessions", 5*time.Second, func() bool {
		sawPinned, sawFree = false, false
		rows = harness.AdminRows(t, admin, "SHOW SESSIONS")
		for _, row := range rows {
			switch {
			case row["held_because"] == "connection state (user variable)" && row["backend_conns"] == "1":
				sawPinned = true
			case row["held_because"] == "" && row["backend_conns"] == "0" && row["last_statement_digest"] == "select ?":
				sawFree = true
			}
		}
		return sawPinned && sawFree
	})
}
