package sandbox

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/backend"
)

// Oracle MySQL (9.7 LTS, Debian sid's mysql-server-core) cannot be
// installed on Debian 12: it needs sid's glibc. It runs from a sid chroot
// built once per machine (mysql-chroot.sh, cached under
// /var/cache/switchyard), started through the chroot's own dynamic loader
// so that datadirs, sockets and network namespaces are the host's.

//go:embed mysql-chroot.sh
var chrootScript string

// mySQL is mysqld from the chroot at root.
type mySQL struct{ root string }

// findMySQL returns the chroot, building it on first use (about 90 s and
// 50 MB of downloads; later runs reuse it).
func findMySQL(ctx context.Context, log io.Writer) (*mySQL, error) {
	cache := os.Getenv("SWITCHYARD_CACHE")
	if cache == "" {
		cache = "/var/cache/switchyard"
	}
	root := filepath.Join(cache, "mysql-sid")
	if _, err := os.Stat(filepath.Join(root, ".switchyard-ready")); err != nil {
		fmt.Fprintf(log, "building the MySQL chroot in %s (once per machine)\n", root)
		start := time.Now()
		cmd := exec.CommandContext(ctx, "bash", "-s")
		cmd.Stdin = strings.NewReader(chrootScript)
		cmd.Env = append(os.Environ(), "SWITCHYARD_CACHE="+cache)
		cmd.Stdout, cmd.Stderr = io.Discard, log
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("build the MySQL chroot (needs root and Debian's mirror): %w", err)
		}
		fmt.Fprintf(log, "MySQL chroot ready in %s\n", time.Since(start).Round(time.Second))
	}
	m := &mySQL{root: root}
	for _, f := range []string{m.loader(), m.path("usr/sbin/mysqld")} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("MySQL chroot in %s is incomplete (%w): delete it to rebuild", root, err)
		}
	}
	return m, nil
}

func (m *mySQL) path(p string) string { return filepath.Join(m.root, p) }
func (m *mySQL) loader() string       { return m.path("usr/lib64/ld-linux-x86-64.so.2") }

// mysqld is the argv that runs the chroot's mysqld on the host.
func (m *mySQL) mysqld(args ...string) []string {
	return append([]string{m.loader(), "--library-path", m.path("usr/lib/x86_64-linux-gnu"), m.path("usr/sbin/mysqld")}, args...)
}

// paths are the options that point mysqld at the chroot's files.
func (m *mySQL) paths() []string {
	return []string{"--basedir=" + m.path("usr"), "--lc-messages-dir=" + m.path("usr/share/mysql"),
		"--plugin-dir=" + m.path("usr/lib/mysql/plugin")}
}

// mysqlAccounts are the sandbox's accounts on MySQL (the same as on
// MariaDB; MySQL has no DELETE HISTORY).
var mysqlAccounts = []string{
	"SET SESSION sql_log_bin = 0",
	"CREATE USER '" + MonitorUser + "'@'%' IDENTIFIED BY '" + MonitorPassword + "'",
	"GRANT ALL PRIVILEGES ON *.* TO '" + MonitorUser + "'@'%' WITH GRANT OPTION",
	"CREATE USER '" + ReplUser + "'@'%' IDENTIFIED BY '" + ReplPassword + "'",
	"GRANT REPLICATION SLAVE ON *.* TO '" + ReplUser + "'@'%'",
	"CREATE USER '" + AppUser + "'@'%' IDENTIFIED BY '" + AppPassword + "'",
	"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, SHOW DATABASES, " +
		"CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, " +
		"EVENT, TRIGGER, PROCESS ON *.* TO '" + AppUser + "'@'%'",
}

// initTemplate initialises a datadir, starts it once without networking
// to create the accounts (without binlogging them: no GTID is spent), and
// stops it.
func (m *mySQL) initTemplate(ctx context.Context, dir string, log io.Writer) error {
	fmt.Fprintf(log, "initialising the MySQL template datadir\n")
	initArgs := m.mysqld(append([]string{"--no-defaults", "--initialize-insecure", "--user=root", "--datadir=" + dir}, m.paths()...)...)
	if out, err := exec.CommandContext(ctx, initArgs[0], initArgs[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("mysqld --initialize-insecure: %w\n%s", err, out)
	}
	work := filepath.Dir(dir)
	sock := filepath.Join(work, "template.sock")
	errLog := filepath.Join(work, "template.err")
	args := m.mysqld(append([]string{"--no-defaults", "--user=root", "--datadir=" + dir, "--socket=" + sock,
		"--skip-networking", "--mysqlx=OFF", "--secure-file-priv=NULL", "--log-error=" + errLog,
		"--pid-file=" + filepath.Join(work, "template.pid")}, m.paths()...)...)
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the template server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
	db, err := sql.Open("mysql", "root@unix("+sock+")/?timeout=5s")
	if err != nil {
		stop()
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	deadline := time.Now().Add(60 * time.Second)
	for db.PingContext(ctx) != nil {
		select {
		case err := <-exited:
			tail, _ := os.ReadFile(errLog)
			return fmt.Errorf("template server exited: %v\n%s", err, tail)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return errors.New("template server did not start within 60s")
		}
	}
	for _, q := range mysqlAccounts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			stop()
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	_, _ = db.ExecContext(ctx, "SHUTDOWN")
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		stop()
		return errors.New("template server did not shut down")
	}
	return nil
}

func (m *mySQL) config(s *Sandbox, in Instance, readOnly bool) (map[string]string, string) {
	ro, semi := "OFF", "ON" // semi-sync as a source only on the master (see mariaDB.config)
	if readOnly {
		ro, semi = "ON", "OFF"
	}
	_ = os.MkdirAll(filepath.Join(in.Dir, "files"), 0o755)
	cnf := fmt.Sprintf(`[mysqld]
user = root
basedir = %[8]s/usr
lc-messages-dir = %[8]s/usr/share/mysql
plugin-dir = %[8]s/usr/lib/mysql/plugin
datadir = %[1]s/data
socket = %[1]s/mysqld.sock
pid-file = %[1]s/mysqld.pid
tmpdir = %[1]s/tmp
log-error = %[1]s/error.log
secure-file-priv = %[1]s/files
port = %[2]d
bind-address = %[5]s
mysqlx = OFF
server-id = %[3]d
skip-name-resolve
log-bin = mysql-bin
relay-log = relay-bin
log-replica-updates = ON
gtid-mode = ON
enforce-gtid-consistency = ON
sync-binlog = 1
read-only = %[4]s
super-read-only = %[4]s
plugin-load-add = semisync_source.so
plugin-load-add = semisync_replica.so
plugin-load-add = mysql_clone.so
loose-rpl-semi-sync-source-enabled = %[9]s
loose-rpl-semi-sync-replica-enabled = ON
loose-rpl-semi-sync-source-wait-point = AFTER_SYNC
loose-rpl-semi-sync-source-timeout = 2000
replica-net-timeout = 10
# As many appliers as concurrent writers (the tests run 8, sysbench 16):
# with 4 (MySQL's default) a replica's commit groups are smaller than the
# master's, and with sync_binlog=1 it falls seconds behind under 8 writers
# (measured: 3,000 transactions after 15 s at 670/s; 16 workers: 0-300).
replica-parallel-workers = 16
max-allowed-packet = 128M
max-connections = 3000
character-set-server = utf8mb4
innodb-buffer-pool-size = 64M
innodb-redo-log-capacity = 64M
performance-schema = OFF
ssl-cert = %[6]s
ssl-key = %[7]s
`, in.Dir, in.Port, in.ServerID, ro, in.HostOrLoopback(), s.certPath(), s.keyPath(), m.root, semi)
	return nil, cnf
}

func (m *mySQL) command(myCnf string) []string { return m.mysqld("--defaults-file=" + myCnf) }

func (m *mySQL) asReplicaOptions() []string {
	return []string{"--super-read-only=ON", "--loose-rpl-semi-sync-source-enabled=OFF"}
}

// copyData clones the master into the rebuilt server (CLONE INSTANCE, as
// MySQL operators provision a replica) and restarts it on the copy.
// Replaying the binary logs from the first transaction instead is not an
// option: MySQL's parallel applier runs a promoted source's first
// transactions before older ones they depend on ("Unknown database").
func (m *mySQL) copyData(ctx context.Context, s *Sandbox, in, master Instance) error {
	db, err := in.DB()
	if err != nil {
		return err
	}
	defer db.Close()
	donor := fmt.Sprintf("%s:%d", master.HostOrLoopback(), master.Port)
	if _, err := db.ExecContext(ctx, "SET GLOBAL clone_valid_donor_list = '"+donor+"'"); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, fmt.Sprintf("CLONE INSTANCE FROM '%s'@'%s':%d IDENTIFIED BY '%s'",
		MonitorUser, master.HostOrLoopback(), master.Port, MonitorPassword))
	// Without a supervisor the server cannot restart itself: it stops
	// after the clone and answers 3707 (or the connection drops).
	if err != nil && backend.ServerErrorCode(err) != erCloneRestart && !errors.Is(err, mysqldriver.ErrInvalidConn) {
		return fmt.Errorf("CLONE INSTANCE: %w", err)
	}
	if err := waitStopped(in, time.Minute); err != nil {
		return err
	}
	if err := s.start(in); err != nil {
		return err
	}
	return waitReady(ctx, in, 2*time.Minute)
}

// erCloneRestart: ER_CLONE_RESTART ("Restart server failed (mysqld is not
// managed by supervisor process)"): the clone itself succeeded.
const erCloneRestart = 3707
