package backend

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file is the one seam for server flavour differences (MariaDB vs
// MySQL): every statement whose text differs (replica status and its
// columns, GTID variables, fencing, replication control, waiting for a
// GTID, session tracking), chosen by Flavor. gtid.go holds the two GTID
// formats. Everything above backend sees Flavor methods, ReplicaStatus and
// Position only.

// Flavor names a server family.
type Flavor string

const (
	MariaDB Flavor = "mariadb"
	MySQL   Flavor = "mysql"
)

// FlavorFromVersion tells the flavour from @@version.
func FlavorFromVersion(version string) Flavor {
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return MariaDB
	}
	return MySQL
}

// ReplicaStatusSQL is the statement that reports replication threads.
func (f Flavor) ReplicaStatusSQL() string {
	if f == MariaDB {
		return "SHOW SLAVE STATUS"
	}
	return "SHOW REPLICA STATUS"
}

// GTIDPositionSQL returns the query for the executed GTID position.
func (f Flavor) GTIDPositionSQL() string {
	if f == MariaDB {
		return "SELECT @@gtid_current_pos"
	}
	return "SELECT @@gtid_executed"
}

// HealthSQL reads, in one round trip, @@version, @@read_only, @@server_id,
// what the server applied as a replica and what it holds in all (MariaDB:
// @@gtid_slave_pos and @@gtid_current_pos; MySQL: @@gtid_executed twice).
func (f Flavor) HealthSQL() string {
	if f == MariaDB {
		return "SELECT @@version, @@read_only, @@server_id, @@gtid_slave_pos, @@gtid_current_pos"
	}
	return "SELECT @@version, @@read_only, @@server_id, @@gtid_executed, @@gtid_executed"
}

// PositionsSQL reads what the server applied as a replica and what it
// holds in all.
func (f Flavor) PositionsSQL() string {
	if f == MariaDB {
		return "SELECT @@gtid_slave_pos, @@gtid_current_pos"
	}
	return "SELECT @@gtid_executed, @@gtid_executed"
}

// FenceSQL makes the server refuse writes from every account but
// replication (MySQL: super_read_only, which SUPER and CONNECTION_ADMIN do
// not bypass; MariaDB: read_only, which only READ_ONLY ADMIN bypasses).
func (f Flavor) FenceSQL() string {
	if f == MariaDB {
		return "SET GLOBAL read_only = 1"
	}
	return "SET GLOBAL super_read_only = 1"
}

// UnfenceSQL makes the server writable.
func (f Flavor) UnfenceSQL() []string {
	if f == MariaDB {
		return []string{"SET GLOBAL read_only = 0"}
	}
	return []string{"SET GLOBAL super_read_only = 0", "SET GLOBAL read_only = 0"}
}

// StopReplicaSQL, ResetReplicaSQL and StartReplicaSQL control replication
// (MySQL 8.4 and later know only the REPLICA forms).
func (f Flavor) StopReplicaSQL() string {
	if f == MariaDB {
		return "STOP SLAVE"
	}
	return "STOP REPLICA"
}

func (f Flavor) ResetReplicaSQL() string {
	if f == MariaDB {
		return "RESET SLAVE ALL"
	}
	return "RESET REPLICA ALL"
}

func (f Flavor) StartReplicaSQL() string {
	if f == MariaDB {
		return "START SLAVE"
	}
	return "START REPLICA"
}

// SemiSyncMasterSQL turns semi-sync on as a master. On MySQL the
// variables exist only with the rpl_semi_sync_source plugin loaded: the
// caller ignores ER_UNKNOWN_SYSTEM_VARIABLE there.
func (f Flavor) SemiSyncMasterSQL() string {
	if f == MariaDB {
		return "SET GLOBAL rpl_semi_sync_master_enabled = 1"
	}
	return "SET GLOBAL rpl_semi_sync_source_enabled = 1"
}

// SemiSyncReplicaOnlySQL turns semi-sync as a master off on a server that
// becomes a replica: with it on, its applier waits the semi-sync timeout
// for acks from replicas it does not have. (As SemiSyncMasterSQL, the
// caller ignores ER_UNKNOWN_SYSTEM_VARIABLE on MySQL.)
func (f Flavor) SemiSyncReplicaOnlySQL() string {
	if f == MariaDB {
		return "SET GLOBAL rpl_semi_sync_master_enabled = 0"
	}
	return "SET GLOBAL rpl_semi_sync_source_enabled = 0"
}

// FollowSQL points a server at a new master with GTID auto-positioning.
// MariaDB: a former master follows with current_pos (its own transactions
// are in its binlog, not in its slave position), a replica with
// slave_pos. MySQL: SOURCE_AUTO_POSITION uses gtid_executed either way,
// and GET_SOURCE_PUBLIC_KEY lets caching_sha2_password authenticate
// without TLS.
func (f Flavor) FollowSQL(host, port, user, password string, former bool) string {
	if f == MariaDB {
		useGTID := "slave_pos"
		if former {
			useGTID = "current_pos"
		}
		return fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', "+
			"MASTER_USE_GTID=%s, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
			sqlQuote(host), port, sqlQuote(user), sqlQuote(password), useGTID)
	}
	return fmt.Sprintf("CHANGE REPLICATION SOURCE TO SOURCE_HOST='%s', SOURCE_PORT=%s, SOURCE_USER='%s', SOURCE_PASSWORD='%s', "+
		"SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1, SOURCE_HEARTBEAT_PERIOD=1",
		sqlQuote(host), port, sqlQuote(user), sqlQuote(password))
}

// RepointsReceiverOnly: the flavour can point a running, auto-positioned
// replica at a new master with only its receiver stopped (RepointSQL).
// MySQL can, and STOP REPLICA waits for the applier's queued groups (1.6 s
// measured under 8 writers), which a failover's repoint then waits for;
// the applier keeps applying its relay log instead, and the new receiver
// asks for what is neither received nor applied. MariaDB needs both
// threads stopped to change the master.
func (f Flavor) RepointsReceiverOnly() bool { return f == MySQL }

// StopReceiverSQL stops only the thread that fetches from the master.
func (f Flavor) StopReceiverSQL() string {
	if f == MariaDB {
		return "STOP SLAVE IO_THREAD"
	}
	return "STOP REPLICA IO_THREAD"
}

// RepointSQL points an auto-positioned replica whose receiver is stopped
// at a new master and starts the receiver (RepointsReceiverOnly flavours).
func (f Flavor) RepointSQL(host, port, user, password string) []string {
	return []string{fmt.Sprintf("CHANGE REPLICATION SOURCE TO SOURCE_HOST='%s', SOURCE_PORT=%s, SOURCE_USER='%s', SOURCE_PASSWORD='%s', "+
		"GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1, SOURCE_HEARTBEAT_PERIOD=1", sqlQuote(host), port, sqlQuote(user), sqlQuote(password)),
		"START REPLICA IO_THREAD"}
}

// WaitGTIDSQL waits on a replica until it applied gtid, up to timeout;
// the query returns 0 when it did (MariaDB MASTER_GTID_WAIT: -1 on
// timeout; MySQL WAIT_FOR_EXECUTED_GTID_SET: 1).
func (f Flavor) WaitGTIDSQL(gtid string, timeout time.Duration) string {
	if f == MariaDB {
		return fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', %.3f)", sqlQuote(gtid), timeout.Seconds())
	}
	return fmt.Sprintf("SELECT WAIT_FOR_EXECUTED_GTID_SET('%s', %.3f)", sqlQuote(gtid), timeout.Seconds())
}

// TrackingSQL is what a backend connection reports in its OK packets for
// the proxy: every variable, the schema, and the GTID of each commit
// (MariaDB reports last_gtid as a variable; MySQL needs OWN_GTID).
func (f Flavor) TrackingSQL() string {
	if f == MariaDB {
		return "session_track_system_variables='*', session_track_schema=ON"
	}
	return "session_track_system_variables='*', session_track_schema=ON, session_track_gtids=OWN_GTID"
}

// ErUnknownSystemVariable (1193) is what a server says to a variable it
// does not have (a plugin not loaded, another flavour).
const ErUnknownSystemVariable = 1193

// sqlQuote escapes a string for a single-quoted SQL literal.
func sqlQuote(s string) string { return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) }

// ReplicaStatus is the flavour-neutral view of one replication channel.
type ReplicaStatus struct {
	MasterHost string
	MasterPort int
	// MasterServerID identifies the master independently of how it is
	// addressed (0 until the IO thread has connected once).
	MasterServerID uint32
	IORunning      bool
	// IOState is "Yes", "No" or "Connecting".
	IOState    string
	SQLRunning bool
	// SecondsBehind is nil when the server reports NULL (SQL thread stopped
	// or not connected).
	SecondsBehind *int64
	// GTIDReceived is the position the IO thread fetched (Gtid_IO_Pos on
	// MariaDB, Retrieved_Gtid_Set on MySQL).
	GTIDReceived string
	UsingGTID    string
	LastIOError  string
	LastSQLError string
	// LastIOErrno is the server's error number for LastIOError (e.g.
	// 1236: the master's binlog lacks the position asked for).
	LastIOErrno int
}

// pick returns the first present column among names (MySQL 8 renamed
// Slave_/Master_ to Replica_/Source_).
func pick(row map[string]string, names ...string) string {
	for _, n := range names {
		if v, ok := row[n]; ok {
			return v
		}
	}
	return ""
}

// ParseReplicaStatus maps one SHOW SLAVE/REPLICA STATUS row (column name →
// value, NULL as absent or "NULL") to a ReplicaStatus.
func ParseReplicaStatus(row map[string]string) ReplicaStatus {
	rs := ReplicaStatus{
		MasterHost:   pick(row, "Master_Host", "Source_Host"),
		IOState:      pick(row, "Slave_IO_Running", "Replica_IO_Running"),
		LastIOError:  pick(row, "Last_IO_Error"),
		LastSQLError: pick(row, "Last_SQL_Error"),
		GTIDReceived: pick(row, "Gtid_IO_Pos", "Retrieved_Gtid_Set"),
		UsingGTID:    pick(row, "Using_Gtid", "Auto_Position"),
	}
	rs.MasterPort, _ = strconv.Atoi(pick(row, "Master_Port", "Source_Port"))
	rs.LastIOErrno, _ = strconv.Atoi(pick(row, "Last_IO_Errno"))
	if id, err := strconv.ParseUint(pick(row, "Master_Server_Id", "Source_Server_Id"), 10, 32); err == nil {
		rs.MasterServerID = uint32(id)
	}
	rs.IORunning = rs.IOState == "Yes"
	rs.SQLRunning = pick(row, "Slave_SQL_Running", "Replica_SQL_Running") == "Yes"
	if v := pick(row, "Seconds_Behind_Master", "Seconds_Behind_Source"); v != "" && v != "NULL" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			rs.SecondsBehind = &n
		}
	}
	return rs
}

// Querier is what a *sql.DB or *sql.Conn offers.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// QueryReplicaStatus runs the flavour's replica-status statement. ok is
// false when the server is not a replica.
func QueryReplicaStatus(ctx context.Context, q Querier, f Flavor) (rs ReplicaStatus, ok bool, err error) {
	rows, err := QueryMaps(ctx, q, f.ReplicaStatusSQL())
	if err != nil {
		return rs, false, fmt.Errorf("%s: %w", f.ReplicaStatusSQL(), err)
	}
	if len(rows) == 0 {
		return rs, false, nil
	}
	return ParseReplicaStatus(rows[0]), true, nil
}

// QueryMaps runs a query and returns each row as column → value; NULL
// columns are left out.
func QueryMaps(ctx context.Context, q Querier, query string) ([]map[string]string, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := make(map[string]string, len(cols))
		for i, c := range cols {
			if vals[i].Valid {
				m[c] = vals[i].String
			}
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
