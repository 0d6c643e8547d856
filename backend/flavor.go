package backend

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// This file is the one seam for server flavour differences (MariaDB vs
// MySQL): the replica-status statement, its column names, and GTID
// variables. Everything above it sees ReplicaStatus and Position only.

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

// GTIDPositionSQL returns the query for the executed GTID set.
func (f Flavor) GTIDPositionSQL() string {
	if f == MariaDB {
		return "SELECT @@gtid_current_pos"
	}
	return "SELECT @@gtid_executed"
}

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
