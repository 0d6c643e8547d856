package operator_test

import (
	"database/sql"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

// The harness runs every proxy with --drain-timeout 5s; a stop must end
// within that plus a few seconds whatever does not answer.
const (
	drainTimeout = 5 * time.Second
	stopBound    = drainTimeout + 5*time.Second
)

// stopWithin sends SIGTERM and fails unless the process exits in bound.
func stopWithin(t *testing.T, p *harness.Proxy, bound time.Duration) time.Duration {
	t.Helper()
	took, err := p.StopTimed(30 * time.Second)
	if err != nil || took > bound {
		t.Fatalf("stop took %v (bound %v): %v\n%s", took, bound, err, p.Log())
	}
	return took
}

// A statement running on a backend that stopped answering (SIGSTOP: the
// socket stays open, nothing comes back) must not hold the stop.
func TestStopBoundedWithBackendNotAnswering(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Backends: []string{"master", "replica1"}})
	db := p.Open(t, "", "")
	started := make(chan error, 1)
	go func() {
		conn, err := db.Conn(t.Context())
		if err == nil {
			started <- nil
			_, err = conn.ExecContext(t.Context(), "SELECT SLEEP(120)") // a read: replica1
		} else {
			started <- err
		}
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	adm := p.Admin(t)
	harness.WaitFor(t, "the read to run on replica1", 10*time.Second, func() bool {
		for _, s := range harness.AdminRows(t, adm, "SHOW SESSIONS") {
			if s["backend"] == "replica1" && s["backend_threads"] != "" {
				return harness.Running(t, env.InstanceDB(t, "replica1"), "SLEEP(120)")
			}
		}
		return false
	})
	if err := env.Sandbox.Kill("replica1", syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Sandbox.Kill("replica1", syscall.SIGCONT) }()
	took := stopWithin(t, p, stopBound)
	t.Logf("stopped in %v with replica1 not answering in the middle of a statement", took)
}

// A client that stopped reading its result (the proxy's writes block once
// the socket buffers are full) and one that never finished its handshake
// must not hold the stop.
func TestStopBoundedWithClientsNotAnswering(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info"})
	silent, err := net.Dial("tcp", p.Addr) // connects, never answers the greeting
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if _, err := p.Open(t, "", "").Exec("CREATE DATABASE IF NOT EXISTS op_stop"); err != nil {
		t.Fatal(err)
	}
	c, err := client.Connect(p.Addr, "app", "app", "op_stop")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 1 GB of result, of which the client reads nothing.
	c.ResetSequence()
	query := "SELECT REPEAT('x', 1000) FROM information_schema.COLUMNS a, information_schema.COLUMNS b"
	if err := c.WritePacket(append([]byte{0, 0, 0, 0, mysql.COM_QUERY}, query...)); err != nil {
		t.Fatal(err)
	}
	replicas := []*sql.DB{env.InstanceDB(t, "replica1"), env.InstanceDB(t, "replica2")}
	running := func() bool {
		return harness.Running(t, replicas[0], "COLUMNS a, information_schema") || harness.Running(t, replicas[1], "COLUMNS a, information_schema")
	}
	harness.WaitFor(t, "the result to stall on the client", 10*time.Second, running)
	took := stopWithin(t, p, stopBound)
	t.Logf("stopped in %v with a client not reading and one silent in its handshake", took)
	// The backend statement ends with the proxy's connection.
	harness.WaitFor(t, "the abandoned statement to end", 30*time.Second, func() bool { return !running() })
}
