// Package transactions_test checks, against real MariaDB servers, that a
// transaction is never split by a master change: it is replayed where the
// master now is, or aborted with a clear class 40 error, never committed
// in part.
package transactions_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithSandbox(m, 2, 13, &env))
}

// txProxy starts a proxy that may change masters often (cooldown 1s).
func txProxy(t *testing.T) (*harness.Proxy, *sql.DB) {
	t.Helper()
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Failover: "  cooldown: 1s\n  hold_timeout: 15s\n"})
	t.Cleanup(func() {
		if t.Failed() {
			log := p.Log()
			if len(log) > 15000 {
				log = log[len(log)-15000:]
			}
			t.Logf("proxy log (tail):\n%s", log)
		}
	})
	return p, p.Admin(t)
}

// conn opens one client connection (one proxy session) to db.
func conn(t *testing.T, p *harness.Proxy, db string) *sql.Conn {
	t.Helper()
	return p.Session(t, "app", "app", db, "timeout=5s&readTimeout=60s")
}

func exec(t *testing.T, c *sql.Conn, q string, args ...any) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// code returns the MySQL error code of err (0 for none, -1 for a non-server error).
func code(err error) int {
	var me *mysql.MySQLError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &me):
		return int(me.Number)
	}
	return -1
}

// classForty reports whether err carries a class 40 SQLSTATE (transaction
// rollback), which retry logic treats like a deadlock.
func classForty(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && string(me.SQLState[:2]) == "40"
}

func status(t *testing.T, adm *sql.DB, name string) int {
	t.Helper()
	for _, r := range harness.AdminRows(t, adm, "SHOW STATUS") {
		if r["variable"] == name {
			n, _ := strconv.Atoi(r["value"])
			return n
		}
	}
	t.Fatalf("SHOW STATUS has no %s", name)
	return 0
}

// The scenario: BEGIN; INSERT; (switchover); INSERT; COMMIT gives
// both rows on the new master, the transaction replayed there.
func TestTransactionAcrossSwitchover(t *testing.T) {
	p, adm := txProxy(t)
	setup := conn(t, p, "")
	exec(t, setup, "CREATE DATABASE IF NOT EXISTS ts")
	exec(t, setup, "CREATE TABLE IF NOT EXISTS ts.t (id INT PRIMARY KEY)")
	exec(t, setup, "DELETE FROM ts.t")
	c := conn(t, p, "ts")
	exec(t, c, "BEGIN")
	exec(t, c, "INSERT INTO t VALUES (1)")
	old := harness.MasterOf(t, adm)
	rows := harness.AdminRows(t, adm, "SWITCHOVER")
	if len(rows) != 1 || rows[0]["new_master"] == old {
		t.Fatalf("switchover: %v", rows)
	}
	_, err2 := c.ExecContext(context.Background(), "INSERT INTO t VALUES (2)")
	var err error
	if err2 == nil {
		_, err = c.ExecContext(context.Background(), "COMMIT")
	}
	// Read the master itself: a plain read through another session may
	// go to a replica that has not applied the commit yet.
	var ids []int
	r, qerr := env.InstanceDB(t, harness.MasterOf(t, adm)).QueryContext(context.Background(), "SELECT id FROM ts.t ORDER BY id")
	if qerr != nil {
		t.Fatal(qerr)
	}
	for r.Next() {
		var id int
		_ = r.Scan(&id)
		ids = append(ids, id)
	}
	r.Close()
	switch {
	case err2 == nil && err == nil:
		if fmt.Sprint(ids) != "[1 2]" {
			t.Fatalf("COMMIT returned OK but the table holds %v", ids)
		}
	case classForty(err2) || classForty(err):
		if len(ids) != 0 {
			t.Fatalf("the transaction was rolled back, yet the table holds %v", ids)
		}
	default:
		t.Fatalf("INSERT: %v, COMMIT: %v: neither both rows nor a class 40 error", err2, err)
	}
	t.Logf("after the switchover: INSERT %v, COMMIT %v; rows %v; replayed %d", err2, err, ids, status(t, adm, "transactions_replayed"))
	if err2 == nil && status(t, adm, "transactions_replayed") != 1 {
		t.Error("the transaction committed but was not counted as replayed")
	}
	if f := harness.AdminRows(t, adm, "SHOW FAILOVERS"); f[len(f)-1]["transactions_replayed"] != "1" {
		t.Errorf("SHOW FAILOVERS: %v", f[len(f)-1])
	}
}

// A transaction whose results differ on the new master is aborted, never
// continued: here it read a row another session changed meanwhile.
func TestReplayMismatchAborts(t *testing.T) {
	p, adm := txProxy(t)
	setup := conn(t, p, "")
	exec(t, setup, "CREATE DATABASE IF NOT EXISTS ts")
	exec(t, setup, "CREATE TABLE IF NOT EXISTS ts.m (id INT PRIMARY KEY, v INT)")
	exec(t, setup, "REPLACE INTO ts.m VALUES (1, 10), (2, 0)")
	c := conn(t, p, "ts")
	exec(t, c, "BEGIN")
	var v int
	if err := c.QueryRowContext(context.Background(), "SELECT v FROM m WHERE id = 1").Scan(&v); err != nil || v != 10 {
		t.Fatalf("read %d %v", v, err)
	}
	exec(t, c, "UPDATE m SET v = v + 1 WHERE id = 2")
	exec(t, setup, "UPDATE ts.m SET v = 99 WHERE id = 1") // another session, committed
	harness.AdminRows(t, adm, "SWITCHOVER")
	for _, q := range []string{"UPDATE m SET v = v + 1 WHERE id = 2", "COMMIT"} {
		if _, err := c.ExecContext(context.Background(), q); !classForty(err) || code(err) != 1213 {
			t.Fatalf("%s after a switchover with a changed read: %v, want 1213 (40001)", q, err)
		}
	}
	exec(t, c, "ROLLBACK")
	var v2 int
	if err := env.InstanceDB(t, harness.MasterOf(t, adm)).QueryRow("SELECT v FROM ts.m WHERE id = 2").Scan(&v2); err != nil || v2 != 0 {
		t.Fatalf("aborted transaction left v = %d (%v)", v2, err)
	}
	// The session is usable again, in a new transaction.
	exec(t, c, "BEGIN")
	exec(t, c, "UPDATE m SET v = v + 1 WHERE id = 2")
	exec(t, c, "COMMIT")
	if status(t, adm, "transactions_aborted") != 1 || status(t, adm, "transactions_replay_failed") != 1 {
		t.Errorf("aborted %d, replay failed %d; want 1 and 1", status(t, adm, "transactions_aborted"), status(t, adm, "transactions_replay_failed"))
	}
}

// A result that depends on the time cannot be replayed either.
func TestReplayOfNowAborts(t *testing.T) {
	p, adm := txProxy(t)
	c := conn(t, p, "")
	exec(t, c, "BEGIN")
	var now string
	if err := c.QueryRowContext(context.Background(), "SELECT NOW(6)").Scan(&now); err != nil {
		t.Fatal(err)
	}
	harness.AdminRows(t, adm, "SWITCHOVER")
	if _, err := c.ExecContext(context.Background(), "COMMIT"); !classForty(err) {
		t.Fatalf("COMMIT after replaying NOW(6): %v, want a class 40 error", err)
	}
	exec(t, c, "ROLLBACK")
}

// A planned switchover under 8 clients running short transactions: no
// client sees an error (drained, or replayed), nothing is lost.
func TestSwitchoverUnderTransactionalLoad(t *testing.T) {
	p, adm := txProxy(t)
	setup := conn(t, p, "")
	exec(t, setup, "CREATE DATABASE IF NOT EXISTS ts")
	exec(t, setup, "CREATE TABLE IF NOT EXISTS ts.txload (id BIGINT PRIMARY KEY, n INT)")
	var stop atomic.Bool
	var mu sync.Mutex
	var committed []int64
	var failures []string
	var wg sync.WaitGroup
	base := time.Now().UnixNano() / 1000 % 1_000_000_000 * 1000
	for w := range 8 {
		c := conn(t, p, "ts")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := int64(0); !stop.Load(); seq++ {
				id := base + int64(w)<<40 + seq
				err := func() error {
					for _, q := range []string{"BEGIN", fmt.Sprintf("INSERT INTO txload VALUES (%d, 0)", id),
						fmt.Sprintf("UPDATE txload SET n = n + 1 WHERE id = %d", id), "COMMIT"} {
						if _, err := c.ExecContext(context.Background(), q); err != nil {
							_, _ = c.ExecContext(context.Background(), "ROLLBACK")
							return fmt.Errorf("%s: %w", q, err)
						}
					}
					return nil
				}()
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					committed = append(committed, id)
				}
				mu.Unlock()
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(committed) }
	for round := range 3 {
		n := count()
		harness.WaitFor(t, "transactions to commit", 20*time.Second, func() bool { return count() > n+50 })
		rows := harness.AdminRows(t, adm, "SWITCHOVER")
		t.Logf("switchover %d: %s -> %s in %s", round+1, rows[0]["old_master"], rows[0]["new_master"], rows[0]["duration"])
	}
	n := count()
	harness.WaitFor(t, "transactions to commit after the last switchover", 20*time.Second, func() bool { return count() > n+50 })
	stop.Store(true)
	wg.Wait()
	for _, f := range harness.AdminRows(t, adm, "SHOW FAILOVERS") {
		t.Logf("%s %s->%s: drained %s, replayed %s, aborted %s; steps %s", f["kind"], f["old_master"], f["new_master"],
			f["transactions_drained"], f["transactions_replayed"], f["transactions_aborted"], f["steps"])
	}
	if len(failures) > 0 {
		t.Fatalf("%d of %d transactions failed during switchovers, e.g. %s", len(failures), len(failures)+len(committed), failures[0])
	}
	lost, _ := env.Lost(t, harness.MasterOf(t, adm), "ts", "txload", committed)
	t.Logf("%d transactions committed through 3 switchovers, %d lost", len(committed), lost)
	if lost != 0 {
		t.Fatalf("%d committed transactions lost", lost)
	}
}

// kill -9 of the master under 8 autocommit writers: only the statements
// in flight at the crash may fail; the ones that never reached a server
// wait for the new master.
func TestKillMasterUnderAutocommitWriters(t *testing.T) {
	p, adm := txProxy(t)
	w := harness.StartWriters(t, p, 8, "ts", "acw")
	w.WaitMore(t, 200)
	old, neu, took := env.KillMaster(t, adm)
	w.WaitMore(t, 200)
	acked := w.Stop()
	t.Logf("killed %s, new master %s after %s; %d writes acknowledged, %d failed: %v", old, neu, took.Round(time.Millisecond),
		len(acked), w.Failed(), w.Errors())
	if w.Failed() > 8 {
		t.Errorf("%d writes failed; at most the 8 in flight at the crash may", w.Failed())
	}
	if lost, _ := env.Lost(t, neu, "ts", "acw", acked); lost != 0 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}
	env.RestartAsReplica(t, adm, old)
}
