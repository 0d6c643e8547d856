package failover

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// Actuator changes real servers' roles (Servers), one SQL statement at a
// time, each under the caller's deadline. It holds no state.
type Actuator struct {
	Admin       backend.Account // monitor/failover account (needs READ_ONLY ADMIN etc.)
	Replication backend.Account // what replicas log in with
	Timeout     time.Duration   // per connection attempt
	// Log gets each statement slower than slowStatement (nil: none), to
	// see which one a slow step waited on.
	Log *zap.Logger
}

// slowStatement: a failover statement taking longer is logged.
const slowStatement = 100 * time.Millisecond

// server is one connection to a server, with its flavour (the statements
// differ between MariaDB and MySQL: backend.Flavor).
type server struct {
	db     *sql.DB
	addr   string
	flavor backend.Flavor
	log    *zap.Logger
}

// connect opens a connection to addr and learns its flavour.
func (a *Actuator) connect(ctx context.Context, addr string) (*server, error) {
	db, err := sql.Open("mysql", backend.MonitorDSN(addr, a.Admin, a.Timeout))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	var version string
	if err := db.QueryRowContext(ctx, "SELECT @@version").Scan(&version); err != nil {
		db.Close()
		return nil, err
	}
	return &server{db: db, addr: addr, flavor: backend.FlavorFromVersion(version), log: a.Log}, nil
}

func (s *server) close() { _ = s.db.Close() }

// exec runs statements in order; the first failure stops it.
func (s *server) exec(ctx context.Context, stmts ...string) error {
	for _, q := range stmts {
		start := time.Now()
		_, err := s.db.ExecContext(ctx, q)
		if took := time.Since(start); took > slowStatement && s.log != nil {
			s.log.Info("slow failover statement", zap.String("server", s.addr), zap.String("statement", firstWords(q)),
				zap.Duration("took", took), zap.Error(err))
		}
		if err != nil {
			return fmt.Errorf("%s on %s: %w", firstWords(q), s.addr, err)
		}
	}
	return nil
}

// firstWords is a statement as it may be logged: never with a password.
func firstWords(q string) string {
	for _, key := range []string{"MASTER_PASSWORD", "SOURCE_PASSWORD"} {
		if i := strings.Index(q, key); i > 0 {
			return q[:i] + "…"
		}
	}
	return q
}

// with connects to addr, runs f, and closes.
func (a *Actuator) with(ctx context.Context, addr string, f func(*server) error) error {
	s, err := a.connect(ctx, addr)
	if err != nil {
		return err
	}
	defer s.close()
	return f(s)
}

// Inspect reads a server's replication state afresh (not the monitor's
// cached view): decisions are taken on what the servers say now.
func (a *Actuator) Inspect(ctx context.Context, addr string) (Replica, error) {
	r := Replica{}
	err := a.with(ctx, addr, func(s *server) error {
		var applied, current string
		if err := s.db.QueryRowContext(ctx, s.flavor.PositionsSQL()).Scan(&applied, &current); err != nil {
			return err
		}
		rs, ok, err := backend.QueryReplicaStatus(ctx, s.db, s.flavor)
		if err != nil {
			return err
		}
		if !ok {
			r, err = replicaFrom(addr, applied, current, nil)
			return err
		}
		r, err = replicaFrom(addr, applied, current, &rs)
		return err
	})
	return r, err
}

// replicaFrom reads what a server said into a Replica. A position that
// does not parse is an error: taken as empty, it would let the apply
// step wait for nothing.
func replicaFrom(addr, applied, current string, rs *backend.ReplicaStatus) (Replica, error) {
	r := Replica{Reachable: true}
	var err error
	if r.Applied, err = backend.ParsePosition(applied); err != nil {
		return Replica{}, fmt.Errorf("%s: applied position %q: %w", addr, applied, err)
	}
	if r.Current, err = backend.ParsePosition(current); err != nil {
		return Replica{}, fmt.Errorf("%s: current position %q: %w", addr, current, err)
	}
	if rs != nil {
		r.IOConnected = rs.IORunning
		r.SourceID = rs.MasterServerID
		if r.Received, err = backend.ParsePosition(rs.GTIDReceived); err != nil {
			return Replica{}, fmt.Errorf("%s: received position %q: %w", addr, rs.GTIDReceived, err)
		}
	}
	return r, nil
}

// Fence makes a (former) master refuse writes (read_only on MariaDB,
// super_read_only on MySQL), then, with kill, kills its client
// connections so open transactions end. Replication threads and our own
// connection are spared.
func (a *Actuator) Fence(ctx context.Context, addr string, kill bool) error {
	return a.with(ctx, addr, func(s *server) error {
		if _, err := s.db.ExecContext(ctx, s.flavor.FenceSQL()); err != nil {
			return fmt.Errorf("fence %s: %w", addr, err)
		}
		if !kill {
			return nil
		}
		rows, err := backend.QueryMaps(ctx, s.db, "SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST "+
			"WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user', 'event_scheduler') AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon')")
		if err != nil {
			return fmt.Errorf("fence %s: list connections: %w", addr, err)
		}
		for _, row := range rows {
			if row["USER"] == a.Admin.User && row["COMMAND"] == "Sleep" {
				continue
			}
			_, _ = s.db.ExecContext(ctx, "KILL CONNECTION "+row["ID"])
		}
		return nil
	})
}

// Unfence makes a fenced master writable again.
func (a *Actuator) Unfence(ctx context.Context, addr string) error {
	return a.with(ctx, addr, func(s *server) error { return s.exec(ctx, s.flavor.UnfenceSQL()...) })
}

// WaitApplied waits until everything the server holds covers pos.
// (MariaDB's MASTER_GTID_WAIT only looks at gtid_slave_pos, which lacks a
// former master's own transactions, so it would wait forever for them.)
func (a *Actuator) WaitApplied(ctx context.Context, addr string, pos backend.Position, timeout time.Duration) error {
	if pos.Empty() {
		return nil
	}
	return a.with(ctx, addr, func(s *server) error {
		deadline := time.Now().Add(timeout)
		var have backend.Position
		for {
			var cur string
			if err := s.db.QueryRowContext(ctx, s.flavor.GTIDPositionSQL()).Scan(&cur); err != nil {
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
	})
}

// Promote turns a replica into a writable master. Writes are allowed
// last, once it replicates from nobody. Semi-sync as a master is turned on
// where the server has it (a MySQL server without the plugin has not).
func (a *Actuator) Promote(ctx context.Context, addr string) error {
	return a.with(ctx, addr, func(s *server) error {
		if err := s.exec(ctx, s.flavor.StopReplicaSQL(), s.flavor.ResetReplicaSQL()); err != nil {
			return err
		}
		if err := s.exec(ctx, s.flavor.SemiSyncMasterSQL()); err != nil && backend.ServerErrorCode(err) != backend.ErUnknownSystemVariable {
			return err
		}
		return s.exec(ctx, s.flavor.UnfenceSQL()...)
	})
}

// Follow makes a server a read-only replica of master with GTID
// auto-positioning, and starts replication. former: the server was a
// master (MariaDB then follows with current_pos). A replica that already
// applies with auto-positioning keeps its applier running where the
// flavour allows it (Flavor.RepointsReceiverOnly). Semi-sync as a master
// is turned off: a replica with it waits for acks nobody sends.
func (a *Actuator) Follow(ctx context.Context, addr, master string, former bool) error {
	host, port, err := net.SplitHostPort(master)
	if err != nil {
		return err
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("bad master port in %s", master)
	}
	return a.with(ctx, addr, func(s *server) error {
		if err := s.exec(ctx, s.flavor.FenceSQL()); err != nil {
			return err
		}
		if err := s.exec(ctx, s.flavor.SemiSyncReplicaOnlySQL()); err != nil && backend.ServerErrorCode(err) != backend.ErUnknownSystemVariable {
			return err
		}
		if !former && s.receiverOnly(ctx) {
			return s.exec(ctx, append([]string{s.flavor.StopReceiverSQL()},
				s.flavor.RepointSQL(host, port, a.Replication.User, a.Replication.Password)...)...)
		}
		return s.exec(ctx,
			s.flavor.StopReplicaSQL(),
			s.flavor.FollowSQL(host, port, a.Replication.User, a.Replication.Password, former),
			s.flavor.StartReplicaSQL(),
		)
	})
}

// Detach stops a replica's replication, ahead of Follow: on MariaDB
// STOP SLAVE waits until the parallel applier finished the transactions
// it queued. Where Follow keeps the applier running (an auto-positioned
// MySQL replica), only the receiver is stopped.
func (a *Actuator) Detach(ctx context.Context, addr string) error {
	return a.with(ctx, addr, func(s *server) error {
		if s.receiverOnly(ctx) {
			return s.exec(ctx, s.flavor.StopReceiverSQL())
		}
		return s.exec(ctx, s.flavor.StopReplicaSQL())
	})
}

// receiverOnly: the server can be repointed with its applier running
// (Flavor.RepointsReceiverOnly), and is a replica applying with GTID
// auto-positioning.
func (s *server) receiverOnly(ctx context.Context) bool {
	if !s.flavor.RepointsReceiverOnly() {
		return false
	}
	rs, ok, err := backend.QueryReplicaStatus(ctx, s.db, s.flavor)
	return err == nil && ok && rs.SQLRunning && rs.UsingGTID == "1"
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

// The master's binlog lacks the position the replica asked for — the
// replica has a history the master does not: MariaDB reports 1236, MySQL
// 8 and later 13114 (ER_SERVER_SOURCE_FATAL_ERROR_READING_BINLOG, whose
// text quotes the source's 1236).
const (
	erMasterFatalReadingBinlog      = 1236
	erMySQLSourceFatalReadingBinlog = 13114
)

func fatalReadingBinlog(errno int) bool {
	return errno == erMasterFatalReadingBinlog || errno == erMySQLSourceFatalReadingBinlog
}

// Diverged reports that the master cannot serve the replica's position.
func (e *ReplicationError) Diverged() bool { return fatalReadingBinlog(e.Status.LastIOErrno) }

// Verify waits (up to limit) until both replication threads of a server
// run; it gives up at once when the master cannot serve its position.
func (a *Actuator) Verify(ctx context.Context, addr string, limit time.Duration) error {
	return a.with(ctx, addr, func(s *server) error {
		deadline := time.Now().Add(limit)
		var last backend.ReplicaStatus
		for time.Now().Before(deadline) {
			rs, ok, err := backend.QueryReplicaStatus(ctx, s.db, s.flavor)
			if err == nil && ok {
				last = rs
				if rs.IORunning && rs.SQLRunning {
					return nil
				}
				if fatalReadingBinlog(rs.LastIOErrno) {
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
	})
}
