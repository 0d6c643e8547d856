// Package sandbox runs a real local MariaDB replication topology from the
// installed mariadbd: 1 master and N replicas on consecutive loopback
// ports, each with its own datadir (copied from one mariadb-install-db
// template), ROW binlogs, log_slave_updates, GTID replication with
// MASTER_USE_GTID=slave_pos, gtid_strict_mode, read_only replicas and
// semi-sync (AFTER_SYNC) on. Accounts are created by an init-file with
// sql_log_bin=0 so every server has them and no GTID is spent:
//
//	switchyard/switchyard  monitor and failover (ALL PRIVILEGES)
//	repl/repl              replication (REPLICATION SLAVE)
//	app/app                application (no READ_ONLY ADMIN, no SUPER)
//
// Up is idempotent, Down stops every server (SIGTERM, then SIGKILL) and
// can purge the directory. The same code is the fixture of the
// integration tests (test/harness). Servers run in their own process
// session and outlive the command that started them.
package sandbox
