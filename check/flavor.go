package check

import (
	"context"
	"database/sql"
	"sort"
	"strings"

	"github.com/switchyard/switchyard/backend"
)

// What the check asks and expects of each server family.

// readSettings reads the replication settings that differ by flavour.
func readSettings(ctx context.Context, db *sql.DB, s *server) error {
	if s.flavor == backend.MariaDB {
		var strict bool
		if err := db.QueryRowContext(ctx, "SELECT @@gtid_strict_mode, @@log_slave_updates, @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_slave_enabled").
			Scan(&strict, &s.replicaUpdate, &s.semiM, &s.semiS); err != nil {
			return err
		}
		if !strict {
			s.gtidIssue = "gtid_strict_mode is OFF: diverged histories are harder to detect"
		}
		return nil
	}
	var mode, enforce string
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_mode, @@enforce_gtid_consistency, @@log_replica_updates, @@super_read_only").
		Scan(&mode, &enforce, &s.replicaUpdate, &s.superReadOnly); err != nil {
		return err
	}
	if mode != "ON" || (enforce != "ON" && enforce != "1") {
		s.gtidIssue, s.gtidFatal = "gtid_mode is "+mode+" and enforce_gtid_consistency "+enforce+": failover needs GTIDs (both ON)", true
	}
	// The semi-sync variables exist only with the plugins loaded.
	rows, err := backend.QueryMaps(ctx, db, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('rpl_semi_sync_source_enabled', 'rpl_semi_sync_replica_enabled')")
	if err != nil {
		return err
	}
	for _, r := range rows {
		on := r["Value"] == "ON"
		switch r["Variable_name"] {
		case "rpl_semi_sync_source_enabled":
			s.semiM = on
		case "rpl_semi_sync_replica_enabled":
			s.semiS = on
		}
	}
	return nil
}

func gtidRemedy(f backend.Flavor) string {
	if f == backend.MariaDB {
		return "SET GLOBAL gtid_strict_mode=1 and in my.cnf"
	}
	return "set gtid_mode=ON and enforce_gtid_consistency=ON in my.cnf (online: step gtid_mode through OFF_PERMISSIVE and ON_PERMISSIVE)"
}

func replicaUpdatesVar(f backend.Flavor) string {
	if f == backend.MariaDB {
		return "log_slave_updates"
	}
	return "log_replica_updates"
}

func semiSyncReplicaRemedy(f backend.Flavor) string {
	if f == backend.MariaDB {
		return "SET GLOBAL rpl_semi_sync_master_enabled=0 on the replica, and rpl_semi_sync_master_enabled=OFF in its my.cnf (keep rpl_semi_sync_slave_enabled=ON)"
	}
	return "SET GLOBAL rpl_semi_sync_source_enabled=0 on the replica, and in its my.cnf (keep rpl_semi_sync_replica_enabled=ON)"
}

func semiSyncRemedy(f backend.Flavor) string {
	if f == backend.MariaDB {
		return "SET GLOBAL rpl_semi_sync_master_enabled=1, rpl_semi_sync_slave_enabled=1 (and in my.cnf)"
	}
	return "INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'; INSTALL PLUGIN rpl_semi_sync_replica SONAME 'semisync_replica.so'; " +
		"SET GLOBAL rpl_semi_sync_source_enabled=1, rpl_semi_sync_replica_enabled=1 (and in my.cnf)"
}

// usesGTID: the replica positions by GTID (MariaDB Using_Gtid
// Slave_Pos/Current_Pos; MySQL Auto_Position 1).
func usesGTID(f backend.Flavor, using string) bool {
	if f == backend.MariaDB {
		return strings.EqualFold(using, "Slave_Pos") || strings.EqualFold(using, "Current_Pos")
	}
	return using == "1"
}

func gtidPositionRemedy(f backend.Flavor) string {
	return f.StopReplicaSQL() + "; " + map[backend.Flavor]string{
		backend.MariaDB: "CHANGE MASTER TO MASTER_USE_GTID=slave_pos",
		backend.MySQL:   "CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION=1",
	}[f] + "; " + f.StartReplicaSQL()
}

// monitorPrivileges are what the monitor/failover account needs.
//
// MariaDB 10.11 (test/migration runs a switchover, a failover and a
// rejoin with exactly these): READ_ONLY ADMIN to fence, REPLICATION SLAVE
// ADMIN and RELOAD to stop, reset and repoint replication, REPLICATION
// MASTER ADMIN for the semi-sync master settings, SLAVE MONITOR to read
// replica status, CONNECTION ADMIN and PROCESS to find and kill the
// application's connections on a fenced master.
//
// MySQL 8.0 and later: SYSTEM_VARIABLES_ADMIN to set super_read_only and
// the semi-sync variables, REPLICATION_SLAVE_ADMIN and RELOAD to stop,
// reset and repoint replication, REPLICATION CLIENT to read replica
// status, CONNECTION_ADMIN and PROCESS to kill the application's
// connections.
func monitorPrivileges(f backend.Flavor) string {
	if f == backend.MySQL {
		return "SYSTEM_VARIABLES_ADMIN, REPLICATION_SLAVE_ADMIN, RELOAD, REPLICATION CLIENT, CONNECTION_ADMIN, PROCESS"
	}
	return "READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, RELOAD, SLAVE MONITOR, CONNECTION ADMIN, PROCESS"
}

// implied are the older privileges that also give a monitor privilege
// (checked on MariaDB 10.11: SUPER stops and starts replication and sets
// the semi-sync variables, but neither sets read_only nor resets a
// replica; on MySQL SUPER still gives the dynamic ones it was split into).
var implied = map[string][]string{
	"REPLICATION SLAVE ADMIN":  {"SUPER"},
	"REPLICATION MASTER ADMIN": {"SUPER"},
	"SLAVE MONITOR":            {"SUPER", "REPLICA MONITOR"},
	"CONNECTION ADMIN":         {"SUPER"},
	"SYSTEM_VARIABLES_ADMIN":   {"SUPER"},
	"REPLICATION_SLAVE_ADMIN":  {"SUPER"},
	"CONNECTION_ADMIN":         {"SUPER"},
}

// missingPrivileges lists the monitor privileges grants lack (MariaDB's
// ALL PRIVILEGES holds every one; MySQL's SHOW GRANTS lists them all).
func missingPrivileges(f backend.Flavor, grants []string) []string {
	if hasAny(grants, "ALL PRIVILEGES") {
		return nil
	}
	var missing []string
	for _, p := range strings.Split(monitorPrivileges(f), ", ") {
		if !hasAny(grants, append([]string{p}, implied[p]...)...) {
			missing = append(missing, p)
		}
	}
	return missing
}

// flavorsOf lists the families among the reachable servers.
func flavorsOf(servers []*server) []string {
	seen := map[string]bool{}
	for _, s := range servers {
		if s.err == nil {
			seen[string(s.flavor)] = true
		}
	}
	var out []string
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
