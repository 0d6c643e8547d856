// Package faults_test injects backend faults (hung, stopped, killed
// servers) and hostile client behaviour against a running proxy.
package faults_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/test/harness"
)

var (
	env   *harness.Env
	proxy *harness.Proxy
)

func TestMain(m *testing.M) {
	// Failover off: these tests stop servers on purpose, and one proxy per
	// test may run beside the shared one (two engines must never act on
	// the same servers without coordination).
	os.Exit(harness.Main(m, 2, 6, harness.ProxyOptions{LogLevel: "info", Failover: "  enabled: false\n"}, &env, &proxy))
}

func serverID(t *testing.T, c interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, q string) (int, error) {
	var id int
	err := c.QueryRowContext(context.Background(), q).Scan(&id)
	return id, err
}

// A replica that stops answering (SIGSTOP: the kernel still accepts TCP)
// under a running statement: the statement fails within a few monitor
// intervals instead of hanging, later reads avoid it, and it returns.
func TestHungReplicaCutsRunningStatement(t *testing.T) {
	db, _ := sql.Open("mysql", proxy.DSN("app", "app", "", ""))
	defer db.Close()
	conn := harness.PinReplica(t, db, 3) // replica2
	defer conn.Close()
	done := make(chan error, 1)
	go func() {
		var x int
		done <- conn.QueryRowContext(context.Background(), "SELECT SLEEP(30)").Scan(&x)
	}()
	r2 := env.InstanceDB(t, "replica2")
	harness.WaitFor(t, "the statement to run on replica2", 10*time.Second, func() bool { return harness.Running(t, r2, "SLEEP(30)") })
	if err := env.Sandbox.Kill("replica2", syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer env.Sandbox.Kill("replica2", syscall.SIGCONT)
	start := time.Now()
	select {
	case err := <-done:
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1927 {
			t.Fatalf("statement on the hung replica ended with %v, want error 1927", err)
		}
		t.Logf("statement on the hung replica failed after %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("statement on a hung replica hangs")
	}
	// The session is usable and reads avoid the hung replica.
	for i := 0; i < 30; i++ {
		id, err := serverID(t, conn, "SELECT @@server_id")
		if err != nil || id == 3 {
			t.Fatalf("read %d: server %d, %v", i, id, err)
		}
	}
	if err := env.Sandbox.Kill("replica2", syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// This session keeps the replica it moved to; new sessions draw
	// replica2 again once the monitor sees it back.
	harness.WaitFor(t, "replica2 back for new sessions after SIGCONT", 20*time.Second, func() bool {
		return harness.ServerIDOfNewSession(db) == 3
	})
}

// A backend address that accepts TCP and never says a word: the proxy
// starts (it is only a replica), never routes to it, and never hangs.
func TestBlackholeBackend(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accept, then silence
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Addr: map[string]string{"replica2": l.Addr().String()}})
	db, _ := sql.Open("mysql", p.DSN("app", "app", "", "timeout=5s&readTimeout=10s"))
	defer db.Close()
	start := time.Now()
	for i := 0; i < 50; i++ {
		var id int
		if err := db.QueryRow("SELECT @@server_id").Scan(&id); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if id == 3 {
			t.Fatal("a read reached the real replica2 through a blackhole?")
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("50 reads took %s with a silent backend configured", took)
	}
	rows := harness.AdminRows(t, p.Admin(t), "SHOW BACKENDS")
	for _, r := range rows {
		if r["name"] == "replica2" && r["state"] != "down" {
			t.Fatalf("silent backend shown as %v", r)
		}
	}
}

// Every replica down: reads are served by the master.
func TestAllReplicasDownReadsGoToMaster(t *testing.T) {
	for _, n := range []string{"replica1", "replica2"} {
		if err := env.Sandbox.Kill(n, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer env.Sandbox.Kill(n, syscall.SIGCONT)
	}
	db, _ := sql.Open("mysql", proxy.DSN("app", "app", "", ""))
	defer db.Close()
	adm := proxy.Admin(t)
	harness.WaitFor(t, "the monitor to see both replicas down", 10*time.Second, func() bool {
		return harness.Backend(t, adm, "replica1")["state"] == "down" && harness.Backend(t, adm, "replica2")["state"] == "down"
	})
	for i := 0; i < 20; i++ {
		id, err := serverID(t, db, "SELECT @@server_id")
		if err != nil || id != 1 {
			t.Fatalf("read %d with all replicas down: server %d, %v", i, id, err)
		}
	}
}

// The master dies and no replica may be promoted: writes fail after
// hold_timeout with a clear error instead of hanging, reads still work.
func TestMasterDownWithoutEligibleReplica(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Failover: "  hold_timeout: 2s\n  cooldown: 1s\n",
		BackendExtra: map[string]string{"replica1": "no_master: true", "replica2": "no_master: true"}})
	db, _ := sql.Open("mysql", p.DSN("app", "app", "", "timeout=5s"))
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE IF NOT EXISTS faults_db"); err != nil {
		t.Fatal(err)
	}
	if err := env.Sandbox.Kill("master", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	defer restartMaster(t)
	harness.WaitFor(t, "the master's port to refuse", 10*time.Second, func() bool { return harness.Refuses(env.Sandbox.Master().Addr()) })
	// The first write may find its connection dead (1927); the next one
	// waits hold_timeout for a new master, then fails with a clear error.
	_, _ = db.Exec("CREATE DATABASE IF NOT EXISTS faults_db2")
	start := time.Now()
	_, err := db.Exec("CREATE DATABASE IF NOT EXISTS faults_db2")
	took := time.Since(start)
	if err == nil {
		t.Fatal("a write succeeded with the master dead")
	}
	if took > 6*time.Second {
		t.Fatalf("write failed only after %s (hold_timeout 2s)", took)
	}
	t.Logf("write failed after %s: %v", took.Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "Switchyard") {
		t.Errorf("error does not say what happened: %v", err)
	}
	var id int
	if err := db.QueryRow("SELECT @@server_id").Scan(&id); err != nil || id == 1 {
		t.Fatalf("read with the master dead: %d, %v", id, err)
	}
}

// restartMaster starts the killed master again and waits until both
// replicas replicate from it.
func restartMaster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.Sandbox.Start(ctx, "master"); err != nil {
		t.Fatal(err)
	}
	for _, in := range env.Sandbox.ReplicaInstances() {
		db := env.InstanceDB(t, in.Name)
		harness.WaitFor(t, in.Name+" to replicate again", 30*time.Second, func() bool {
			rows, err := backend.QueryMaps(ctx, db, "SHOW SLAVE STATUS")
			return err == nil && len(rows) == 1 && rows[0]["Slave_IO_Running"] == "Yes"
		})
	}
}

// A client that sends a huge SELECT and never reads: the proxy blocks on
// the socket (TCP back-pressure) instead of buffering the result.
func TestClientThatNeverReadsKeepsMemoryBounded(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info"})
	if _, err := sqlOpenExec(p, "CREATE DATABASE IF NOT EXISTS faults_db"); err != nil {
		t.Fatal(err)
	}
	base, _ := p.ProcStatus("VmRSS")
	c, err := client.Connect(p.Addr, "app", "app", "faults_db")
	if err != nil {
		t.Fatal(err)
	}
	c.ResetSequence()
	q := "SELECT seq, REPEAT('x', 500) FROM seq_1_to_2000000" // ~1 GiB if buffered
	if err := c.WritePacket(append(append(make([]byte, 4), gomysql.COM_QUERY), q...)); err != nil {
		t.Fatal(err)
	}
	// The proxy relays until the socket buffers fill, then blocks: wait
	// until its memory stops changing.
	var rss int64
	stable := 0
	harness.WaitFor(t, "the relay to block on the full socket", 30*time.Second, func() bool {
		now, _ := p.ProcStatus("VmRSS")
		if now-rss < 256 && rss-now < 256 {
			stable++
		} else {
			stable = 0
		}
		rss = now
		return stable >= 10 // unchanged (within 256 kB) for half a second
	})
	growth := float64(rss-base) / 1024
	t.Logf("proxy RSS %d kB -> %d kB (+%.1f MiB) while a client does not read a ~1 GiB result", base, rss, growth)
	if growth > 64 {
		t.Fatalf("proxy memory grew %.1f MiB for an unread result", growth)
	}
	c.Conn.Conn.Close()
	if _, err := sqlOpenExec(p, "SELECT 1"); err != nil {
		t.Fatalf("proxy unusable afterwards: %v", err)
	}
}

func sqlOpenExec(p *harness.Proxy, q string) (sql.Result, error) {
	db, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
	defer db.Close()
	return db.Exec(q)
}

// A replica killed while it streams a result: the client gets an error
// (not a hang, not a silently short result) and its session goes on.
func TestReplicaKilledMidResult(t *testing.T) {
	db, _ := sql.Open("mysql", proxy.DSN("app", "app", "", ""))
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE IF NOT EXISTS faults_db"); err != nil {
		t.Fatal(err)
	}
	conn := harness.PinReplica(t, db, 3) // replica2
	defer conn.Close()
	rows, err := conn.QueryContext(context.Background(), "SELECT seq, REPEAT('r', 100) FROM faults_db.seq_1_to_5000000")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
		if n == 1000 {
			if err := env.Sandbox.Kill("replica2", syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	rerr := rows.Err()
	rows.Close()
	if n >= 5000000 || rerr == nil {
		t.Fatalf("read %d rows, err %v: the kill went unnoticed", n, rerr)
	}
	t.Logf("result cut after %d rows: %v", n, rerr)
	_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
	if id, err := serverID(t, conn, "SELECT @@server_id"); err != nil || id == 3 {
		t.Fatalf("session after the kill: server %d, %v", id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.Sandbox.Start(ctx, "replica2"); err != nil {
		t.Fatal(err)
	}
}
