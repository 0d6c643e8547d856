package failover

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/backend"
)

// Actuator changes real servers' roles (Servers), one SQL statement at a
// time, each under the caller's deadline. It holds no state.
type Actuator struct {
	Admin       backend.Account // monitor/failover account (needs READ_ONLY ADMIN etc.)
	Replication backend.Account // what replicas log in with
	Timeout     time.Duration   // per connection attempt
}

func (a *Actuator) open(addr string) (*sql.DB, error) {
	db, err := sql.Open("mysql", backend.MonitorDSN(addr, a.Admin, a.Timeout))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func (a *Actuator) exec(ctx context.Context, addr string, stmts ...string) error {
	db, err := a.open(addr)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s on %s: %w", firstWords(q), addr, err)
		}
	}
	return nil
}

func firstWords(q string) string {
	if i := strings.Index(q, "MASTER_PASSWORD"); i > 0 {
		return q[:i] + "…" // never log the replication password
	}
	return q
}

// Inspect reads a server's replication state afresh (not the monitor's
// cached view): decisions are taken on what the servers say now.
func (a *Actuator) Inspect(ctx context.Context, addr string) (Replica, error) {
	r := Replica{}
	db, err := a.open(addr)
	if err != nil {
		return r, err
	}
	defer db.Close()
	var slave, current string
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_slave_pos, @@gtid_current_pos").Scan(&slave, &current); err != nil {
		return r, err
	}
	r.Reachable = true
	r.Applied, _ = backend.ParsePosition(slave)
	r.Current, _ = backend.ParsePosition(current)
	rs, ok, err := backend.QueryReplicaStatus(ctx, db, backend.MariaDB)
	if err != nil {
		return r, err
	}
	if ok {
		r.IOConnected = rs.IORunning
		r.Received, _ = backend.ParsePosition(rs.GTIDReceived)
	}
	return r, nil
}

// Fence makes a (former) master refuse writes: read_only=1, then, with
// kill, its client connections are killed so open transactions end.
// Replication threads and our own connection are spared.
func (a *Actuator) Fence(ctx context.Context, addr string, kill bool) error {
	db, err := a.open(addr)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "SET GLOBAL read_only = 1"); err != nil {
		return fmt.Errorf("fence %s: %w", addr, err)
	}
	if !kill {
		return nil
	}
	rows, err := backend.QueryMaps(ctx, db, "SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST "+
		"WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user', 'event_scheduler') AND COMMAND NOT IN ('Binlog Dump', 'Daemon')")
	if err != nil {
		return fmt.Errorf("fence %s: list connections: %w", addr, err)
	}
	for _, row := range rows {
		if row["USER"] == a.Admin.User && row["COMMAND"] == "Sleep" {
			continue
		}
		_, _ = db.ExecContext(ctx, "KILL CONNECTION "+row["ID"])
	}
	return nil
}

// Unfence makes a fenced master writable again.
func (a *Actuator) Unfence(ctx context.Context, addr string) error {
	return a.exec(ctx, addr, "SET GLOBAL read_only = 0")
}

// WaitApplied waits until the server's @@gtid_current_pos covers pos.
// (MASTER_GTID_WAIT only looks at gtid_slave_pos, which lacks a former
// master's own transactions, so it would wait forever for them.)
func (a *Actuator) WaitApplied(ctx context.Context, addr string, pos backend.Position, timeout time.Duration) error {
	if len(pos) == 0 {
		return nil
	}
	db, err := a.open(addr)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	var have backend.Position
	for {
		var cur string
		if err := db.QueryRowContext(ctx, "SELECT @@gtid_current_pos").Scan(&cur); err != nil {
			return fmt.Errorf("wait for %s on %s: %w", pos, addr, err)
		}
		have, _ = backend.ParsePosition(cur)
		if have.Covers(pos) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not apply %s within %s (it is at %s)", addr, pos, timeout, have)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Promote turns a replica into a writable master. Writes are allowed
// last, once it replicates from nobody.
func (a *Actuator) Promote(ctx context.Context, addr string) error {
	return a.exec(ctx, addr,
		"STOP SLAVE",
		"RESET SLAVE ALL",
		"SET GLOBAL rpl_semi_sync_master_enabled = 1",
		"SET GLOBAL read_only = 0",
	)
}

// Follow makes a server a read-only replica of master with GTID
// auto-positioning, and starts replication. A former master follows with
// current_pos (its own transactions are in its binlog, not in its slave
// position); a replica with slave_pos.
func (a *Actuator) Follow(ctx context.Context, addr, master string, former bool) error {
	host, port, err := net.SplitHostPort(master)
	if err != nil {
		return err
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("bad master port in %s", master)
	}
	useGTID := "slave_pos"
	if former {
		useGTID = "current_pos"
	}
	return a.exec(ctx, addr,
		"SET GLOBAL read_only = 1",
		"STOP SLAVE",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', "+
			"MASTER_USE_GTID=%s, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
			sqlQuote(host), port, sqlQuote(a.Replication.User), sqlQuote(a.Replication.Password), useGTID),
		"START SLAVE",
	)
}

// ReplicationError says why a server's replication does not run.
type ReplicationError struct {
	Addr   string
	Status backend.ReplicaStatus
}

func (e *ReplicationError) Error() string {
	return fmt.Sprintf("replication on %s not running: IO=%s SQL=%v %s %s", e.Addr, e.Status.IOState, e.Status.SQLRunning,
		e.Status.LastIOError, e.Status.LastSQLError)
}

// erMasterFatalReadingBinlog (1236): the master's binlog lacks the
// position the replica asked for — the replica has a history the master
// does not.
const erMasterFatalReadingBinlog = 1236

// Diverged reports that the master cannot serve the replica's position.
func (e *ReplicationError) Diverged() bool {
	return e.Status.LastIOErrno == erMasterFatalReadingBinlog
}

// Verify waits (up to limit) until both replication threads of a server
// run; it gives up at once when the master cannot serve its position.
func (a *Actuator) Verify(ctx context.Context, addr string, limit time.Duration) error {
	db, err := a.open(addr)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(limit)
	var last backend.ReplicaStatus
	for time.Now().Before(deadline) {
		rs, ok, err := backend.QueryReplicaStatus(ctx, db, backend.MariaDB)
		if err == nil && ok {
			last = rs
			if rs.IORunning && rs.SQLRunning {
				return nil
			}
			if rs.LastIOErrno == erMasterFatalReadingBinlog {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return &ReplicationError{Addr: addr, Status: last}
}

func sqlQuote(s string) string { return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) }
