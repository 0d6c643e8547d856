package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/switchyard/switchyard/backend"
)

// server is the software a sandbox runs: what differs between MariaDB
// (Debian's mariadb-server) and Oracle MySQL (from a sid chroot). The
// sandbox itself — ports, datadirs copied from a template, starting,
// stopping, replication — is the same for both.
type server interface {
	// initTemplate creates a datadir holding the sandbox's accounts,
	// which every instance's datadir is copied from.
	initTemplate(ctx context.Context, dir string, log io.Writer) error
	// config returns the instance's my.cnf, and other files to write in
	// its directory (name → content).
	config(s *Sandbox, in Instance, readOnly bool) (files map[string]string, myCnf string)
	// command is the argv that starts a server with this my.cnf.
	command(myCnf string) []string
	// asReplicaOptions are the options a crashed former master restarts
	// with so that it can rejoin as a replica.
	asReplicaOptions() []string
	// copyData gives a rebuilt, running, empty server the master's data,
	// or nothing when replication from the first transaction does it.
	copyData(ctx context.Context, s *Sandbox, in, master Instance) error
}

func serverFor(ctx context.Context, f backend.Flavor, log io.Writer) (server, error) {
	if log == nil {
		log = io.Discard
	}
	switch f {
	case backend.MySQL:
		return findMySQL(ctx, log)
	case backend.MariaDB, "":
		return findMariaDB()
	}
	return nil, fmt.Errorf("flavor %q: use mariadb or mysql", f)
}

// mariaDB is Debian's mariadb-server.
type mariaDB struct{ mariadbd, installDB string }

func findMariaDB() (*mariaDB, error) {
	m := &mariaDB{
		mariadbd:  findBinary("mariadbd", "/usr/sbin/mariadbd", "/usr/libexec/mariadbd"),
		installDB: findBinary("mariadb-install-db", "/usr/bin/mariadb-install-db"),
	}
	if m.mariadbd == "" || m.installDB == "" {
		return nil, errors.New("mariadbd or mariadb-install-db not found: install them with " +
			"'apt-get install -y mariadb-server mariadb-client' (or run 'make deps')")
	}
	return m, nil
}

func (m *mariaDB) initTemplate(ctx context.Context, dir string, log io.Writer) error {
	fmt.Fprintf(log, "installing template datadir with %s\n", m.installDB)
	cmd := exec.CommandContext(ctx, m.installDB, "--no-defaults", "--datadir="+dir, "--user=root",
		"--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	return nil
}

// mariadbInitSQL runs at every server start (init-file) and creates the
// sandbox accounts without writing them to the binlog, so every server has
// them and no GTID is spent. IF NOT EXISTS makes it idempotent.
const mariadbInitSQL = `SET SESSION sql_log_bin=0;
CREATE USER IF NOT EXISTS '` + MonitorUser + `'@'%' IDENTIFIED BY '` + MonitorPassword + `';
GRANT ALL PRIVILEGES ON *.* TO '` + MonitorUser + `'@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS '` + ReplUser + `'@'%' IDENTIFIED BY '` + ReplPassword + `';
GRANT REPLICATION SLAVE ON *.* TO '` + ReplUser + `'@'%';
CREATE USER IF NOT EXISTS '` + AppUser + `'@'%' IDENTIFIED BY '` + AppPassword + `';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, SHOW DATABASES,
  CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE,
  EVENT, TRIGGER, PROCESS, DELETE HISTORY ON *.* TO '` + AppUser + `'@'%';
`

func (m *mariaDB) config(s *Sandbox, in Instance, readOnly bool) (map[string]string, string) {
	// Semi-sync as a master only on the master: a replica with it on
	// makes its applier wait rpl_semi_sync_master_timeout for acks from
	// replicas it does not have (seen as STOP SLAVE taking 2 s in a
	// failover). Promotion turns it on, following turns it off.
	ro, semi := "OFF", "ON"
	if readOnly {
		ro, semi = "ON", "OFF"
	}
	cnf := fmt.Sprintf(`[mariadbd]
user = root
datadir = %[1]s/data
socket = %[1]s/mariadb.sock
pid-file = %[1]s/mariadb.pid
tmpdir = %[1]s/tmp
log-error = %[1]s/error.log
init-file = %[1]s/init.sql
port = %[2]d
bind-address = %[5]s
server-id = %[3]d
skip-name-resolve
log-bin = mariadb-bin
relay-log = relay-bin
binlog-format = ROW
log-slave-updates = ON
gtid-strict-mode = ON
gtid-domain-id = 0
sync-binlog = 1
read-only = %[4]s
rpl-semi-sync-master-enabled = %[8]s
rpl-semi-sync-slave-enabled = ON
rpl-semi-sync-master-wait-point = AFTER_SYNC
rpl-semi-sync-master-timeout = 2000
slave-net-timeout = 10
# As many appliers as concurrent writers (the tests run 8, sysbench 16):
# with 4, a replica falls seconds behind under 8 writers (measured: 4,800
# transactions after 15 s at 1,900/s; 16 threads: none), and a failover
# waits for that backlog twice: the candidate applies it, and STOP SLAVE
# on the other replicas waits for what their workers queued.
slave-parallel-threads = 16
slave-parallel-mode = optimistic
max-allowed-packet = 128M
max-connections = 3000
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
innodb-buffer-pool-size = 64M
innodb-log-file-size = 48M
performance-schema = OFF
skip-external-locking
ssl-cert = %[6]s
ssl-key = %[7]s
`, in.Dir, in.Port, in.ServerID, ro, in.HostOrLoopback(), s.certPath(), s.keyPath(), semi)
	return map[string]string{"init.sql": mariadbInitSQL}, cnf
}

func (m *mariaDB) command(myCnf string) []string {
	return []string{m.mariadbd, "--defaults-file=" + myCnf}
}

func (m *mariaDB) asReplicaOptions() []string {
	return []string{"--read-only=ON", "--init-rpl-role=SLAVE", "--rpl-semi-sync-master-enabled=OFF"}
}

// copyData: nothing to copy, the master's binary logs hold everything
// (MariaDB's parallel replication replays them from the first).
func (m *mariaDB) copyData(context.Context, *Sandbox, Instance, Instance) error { return nil }
