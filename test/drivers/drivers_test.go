// Package drivers_test runs one scenario per client driver — PHP mysqli
// and PDO, PyMySQL, mysqlclient, node mysql2, DBD::MariaDB, MariaDB
// Connector/J, Ruby mysql2, go-sql-driver and the mariadb CLI — against the
// master directly and through the proxy, and requires the same transcript.
// The scenario: connect with and without a database, utf8mb4, server-side
// prepared statements (reused, NULLs, a blob), transactions with COMMIT
// and ROLLBACK, multi-statements and CALL, errors with code and SQLSTATE, a
// 20,000-row result, and a query killed from another connection (what the
// CLI's Ctrl-C and Connector/J's cancel send).
package drivers_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/sandbox"
	"github.com/switchyard/switchyard/test/harness"
)

var (
	env   *harness.Env
	proxy *harness.Proxy
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, 2, 14, harness.ProxyOptions{LogLevel: "info"}, &env, &proxy))
}

// here is this package's directory (scripts live below it).
func here() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Dir(f)
}

// driver runs the scenario script of one client library.
type driver struct {
	name    string
	version func() string
	command func(host, port string) *exec.Cmd
}

func script(name string) string { return filepath.Join(here(), "scripts", name) }

func drivers() []driver {
	cmd := func(name string, args ...string) func(host, port string) *exec.Cmd {
		return func(host, port string) *exec.Cmd {
			return exec.Command(name, append(args, host, port, "app", "app")...)
		}
	}
	out := func(name string, args ...string) func() string {
		return func() string {
			b, err := exec.Command(name, args...).CombinedOutput()
			if err != nil {
				return "unknown: " + err.Error()
			}
			return strings.TrimSpace(string(b))
		}
	}
	return []driver{
		{"php-mysqli", out("php", "-r", "echo mysqli_get_client_info();"), cmd("php", script("mysqli.php"))},
		{"php-pdo", out("php", "-r", "echo PHP_VERSION, ' pdo_mysql ', phpversion('pdo_mysql');"), cmd("php", script("pdo.php"))},
		{"pymysql", out("/usr/bin/python3", "-c", "import pymysql; print('PyMySQL', pymysql.__version__)"), cmd("/usr/bin/python3", script("python.py"), "pymysql")},
		{"mysqlclient", out("/usr/bin/python3", "-c", "import MySQLdb; print('mysqlclient', MySQLdb.__version__)"), cmd("/usr/bin/python3", script("python.py"), "MySQLdb")},
		{"node-mysql2", out("node", "-p", "'mysql2 ' + require('"+filepath.Join(here(), "node", "node_modules", "mysql2", "package.json")+"').version"),
			cmd("node", filepath.Join(here(), "node", "scenario.js"))},
		{"dbd-mariadb", out("perl", "-MDBD::MariaDB", "-e", "print 'DBD::MariaDB ', $DBD::MariaDB::VERSION"), cmd("perl", script("perl.pl"))},
		{"connector-j", func() string { return "MariaDB Connector/J " + connectorJVersion() },
			cmd("java", "-cp", connectorJ, script("Scenario.java"))},
		{"ruby-mysql2", out("ruby", "-rmysql2", "-e", "puts 'mysql2 ' + Mysql2::VERSION"), cmd("ruby", script("ruby.rb"))},
	}
}

// connectorJ is Debian's libmariadb-java.
const connectorJ = "/usr/share/java/mariadb-java-client.jar"

// connectorJVersion reads the version from the versioned name Debian
// installs beside the jar.
func connectorJVersion() string {
	names, _ := filepath.Glob(filepath.Join(filepath.Dir(connectorJ), "mariadb-java-client-*.jar"))
	if len(names) == 0 {
		return "unknown"
	}
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(names[0]), "mariadb-java-client-"), ".jar")
}

// setup gives every run the same start: an empty table, a procedure,
// replicated to every replica (the proxy reads from them).
func setup(t *testing.T) {
	t.Helper()
	m := env.InstanceDB(t, "master")
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS drv",
		"DROP TABLE IF EXISTS drv.t",
		"CREATE TABLE drv.t (id INT PRIMARY KEY, name VARCHAR(50), data LONGBLOB, n DECIMAL(10,2)) DEFAULT CHARSET=utf8mb4",
		"DROP PROCEDURE IF EXISTS drv.two_results",
		"CREATE PROCEDURE drv.two_results() BEGIN SELECT 1 AS one; SELECT 2 AS two, 'b' AS bee; END",
	} {
		if _, err := m.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var pos string
	if err := m.QueryRow("SELECT @@gtid_current_pos").Scan(&pos); err != nil {
		t.Fatal(err)
	}
	for _, in := range env.Sandbox.ReplicaInstances() {
		var ok sql.NullInt64
		if err := env.InstanceDB(t, in.Name).QueryRow("SELECT MASTER_GTID_WAIT(?, 20)", pos).Scan(&ok); err != nil || ok.Int64 != 0 {
			t.Fatalf("%s did not apply the setup: %v", in.Name, err)
		}
	}
}

// run runs a scenario against addr and returns its transcript. When the
// script prints "cancel-id: N" and starts its slow query, the statement
// is killed with KILL QUERY N through the same address, as a second
// client would.
func run(t *testing.T, cmd *exec.Cmd, addr string) []string {
	t.Helper()
	setup(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if id, ok := strings.CutPrefix(line, "cancel-id: "); ok {
			go killWhenRunning(t, addr, id, "SLEEP(5)")
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s against %s: %v\n%s\n%s", cmd.Args[0], addr, err, strings.Join(lines, "\n"), stderr.String())
	}
	return lines
}

// killWhenRunning kills session id's statement through addr once a
// statement containing text runs on a server.
func killWhenRunning(t *testing.T, addr, id, text string) {
	deadline := time.Now().Add(10 * time.Second)
	for !running(t, text) {
		if time.Now().After(deadline) {
			t.Errorf("the statement to cancel never ran")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/", sandbox.AppUser, sandbox.AppPassword, addr))
	if err != nil {
		t.Error(err)
		return
	}
	defer db.Close()
	if _, err := db.Exec("KILL QUERY " + id); err != nil {
		t.Errorf("KILL QUERY %s through %s: %v", id, addr, err)
	}
}

func running(t *testing.T, text string) bool {
	for _, in := range env.Sandbox.Instances {
		if harness.Running(t, env.InstanceDB(t, in.Name), text) {
			return true
		}
	}
	return false
}

// steps every transcript must have: a script that dies early must not
// pass by failing the same way twice.
var steps = []string{"connect-nodb", "connect-db", "utf8mb4", "prepared-reused", "prepared-row", "rollback", "commit",
	"multi", "call", "error-table", "error-dup", "large", "cancel", "after-cancel"}

// compare requires the same transcript through the proxy as directly
// (connection ids aside).
func compare(t *testing.T, direct, proxied []string) {
	t.Helper()
	keep := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			if !strings.HasPrefix(l, "cancel-id:") {
				out = append(out, l)
			}
		}
		return out
	}
	d, p := keep(direct), keep(proxied)
	for i := 0; i < max(len(d), len(p)); i++ {
		var dl, pl string
		if i < len(d) {
			dl = d[i]
		}
		if i < len(p) {
			pl = p[i]
		}
		if dl != pl {
			t.Errorf("line %d differs:\n  direct: %s\n  proxy:  %s", i+1, dl, pl)
		}
	}
	for _, s := range steps {
		if !hasStep(p, s) {
			t.Errorf("step %s missing from the transcript", s)
		}
	}
	for _, l := range p {
		if l == "cancel: result 0" {
			t.Error("the query was not cancelled")
		}
	}
}

func hasStep(lines []string, step string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, step+":") {
			return true
		}
	}
	return false
}

func TestDriverMatrix(t *testing.T) {
	mhost, mport, _ := net.SplitHostPort(env.Sandbox.Master().Addr())
	phost, pport, _ := net.SplitHostPort(proxy.Addr)
	for _, d := range drivers() {
		t.Run(d.name, func(t *testing.T) {
			t.Logf("%s: %s", d.name, d.version())
			direct := run(t, d.command(mhost, mport), env.Sandbox.Master().Addr())
			proxied := run(t, d.command(phost, pport), proxy.Addr)
			compare(t, direct, proxied)
			t.Logf("%d steps, same transcript directly and through the proxy", len(proxied))
		})
	}
}

// TestMariadbCLI: the mariadb command-line client in batch mode, errors
// included (--force), prints the same through the proxy.
func TestMariadbCLIScenario(t *testing.T) {
	runCLI := func(addr string) string {
		setup(t)
		host, port, _ := net.SplitHostPort(addr)
		in, err := os.Open(script("cli.sql"))
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		cmd := exec.Command("mariadb", "-h", host, "-P", port, "-u", sandbox.AppUser, "-p"+sandbox.AppPassword,
			"--batch", "--force", "--default-character-set=utf8mb4", "drv")
		cmd.Stdin = in
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	v, _ := exec.Command("mariadb", "--version").Output()
	t.Logf("%s", strings.TrimSpace(string(v)))
	direct, proxied := runCLI(env.Sandbox.Master().Addr()), runCLI(proxy.Addr)
	if direct != proxied {
		t.Fatalf("the mariadb CLI printed\n%s\nthrough the proxy, and directly\n%s", proxied, direct)
	}
	if !strings.Contains(proxied, "ERROR 1146 (42S02)") || !strings.Contains(proxied, "end") {
		t.Fatalf("transcript lacks the error or the end:\n%s", proxied)
	}
}

// Ctrl-C in the interactive mariadb CLI, driven with tmux: the CLI sends
// KILL QUERY with the id it got in the handshake; the proxy's SLEEP(10)
// stops within a second, and the session goes on.
func TestMariadbCLICtrlC(t *testing.T) {
	host, port, _ := net.SplitHostPort(proxy.Addr)
	name := fmt.Sprintf("sy%d", os.Getpid())
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-s", name, "-x", "200", "-y", "50",
		fmt.Sprintf("mariadb -h %s -P %s -u%s -p%s", host, port, sandbox.AppUser, sandbox.AppPassword))
	defer exec.Command("tmux", "kill-session", "-t", name).Run()
	screen := func() string { return tmux("capture-pane", "-p", "-t", name) }
	harness.WaitFor(t, "the CLI prompt", 10*time.Second, func() bool { return strings.Contains(screen(), "MariaDB [(none)]>") })
	typeLine := func(line string) { // tmux reads a trailing ';' as its own separator unless escaped
		tmux("send-keys", "-t", name, "-l", strings.ReplaceAll(line, ";", `\;`))
		tmux("send-keys", "-t", name, "Enter")
	}
	typeLine("SELECT SLEEP(10) AS marker_ctrl_c;")
	harness.WaitFor(t, "the query to run", 10*time.Second, func() bool { return running(t, "marker_ctrl_c") })
	start := time.Now()
	tmux("send-keys", "-t", name, "C-c")
	took := harness.WaitFor(t, "the query to be interrupted", 5*time.Second, func() bool {
		return strings.Contains(screen(), "Query execution was interrupted")
	})
	t.Logf("Ctrl-C interrupted the query after %s", time.Since(start).Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("the interrupt took %s", took)
	}
	typeLine("SELECT 'still here' AS s;")
	harness.WaitFor(t, "the session to answer after Ctrl-C", 5*time.Second, func() bool { return strings.Contains(screen(), "still here") })
}

// The go-sql-driver scenario, as the other drivers' (go-sql-driver uses
// server-side prepared statements for queries with arguments).
func TestGoSQLDriver(t *testing.T) {
	scenario := func(addr string) []string {
		setup(t)
		var out []string
		say := func(step string, v any) { out = append(out, fmt.Sprintf("%s: %v", step, v)) }
		ctx := context.Background()
		nodb, _ := sql.Open("mysql", fmt.Sprintf("app:app@tcp(%s)/", addr))
		defer nodb.Close()
		var one int
		_ = nodb.QueryRow("SELECT 1").Scan(&one)
		say("connect-nodb", one)
		db, _ := sql.Open("mysql", fmt.Sprintf("app:app@tcp(%s)/drv?charset=utf8mb4&multiStatements=true", addr))
		defer db.Close()
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var s string
		_ = c.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&s)
		say("connect-db", s)
		_, _ = c.ExecContext(ctx, "INSERT INTO t (id, name) VALUES (10, ?)", "é漢字😀")
		_ = c.QueryRowContext(ctx, "SELECT name FROM t WHERE id = ?", 10).Scan(&s)
		say("utf8mb4", s)
		st, err := c.PrepareContext(ctx, "INSERT INTO t (id, name, data, n) VALUES (?, ?, ?, ?)")
		if err != nil {
			t.Fatal(err)
		}
		n := int64(0)
		for _, args := range [][]any{{1, "a", nil, "1.50"}, {2, nil, bytes.Repeat([]byte("0123456789abcdef"), 6400), nil}} {
			r, err := st.ExecContext(ctx, args...)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := r.RowsAffected()
			n += a
		}
		st.Close()
		say("prepared-reused", n)
		rows, _ := c.QueryContext(ctx, "SELECT id, name, LENGTH(data), MD5(data), n FROM t WHERE id IN (?, ?) ORDER BY id", 1, 2)
		for rows.Next() {
			var id int
			var name, l, h, num sql.NullString
			_ = rows.Scan(&id, &name, &l, &h, &num)
			say("prepared-row", fmt.Sprint(id, name, l, h, num))
		}
		rows.Close()
		for _, end := range []string{"ROLLBACK", "COMMIT"} {
			tx, _ := c.BeginTx(ctx, nil)
			_, _ = tx.Exec("INSERT INTO t (id) VALUES (3)")
			if end == "ROLLBACK" {
				_ = tx.Rollback()
			} else {
				_ = tx.Commit()
			}
			_ = c.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&one)
			say(strings.ToLower(end), one)
		}
		for _, q := range [][2]string{{"multi", "SELECT 1 AS a; SELECT 2 AS b, 'x' AS c"}, {"call", "CALL two_results()"}} {
			rows, err := c.QueryContext(ctx, q[1])
			if err != nil {
				say(q[0], err)
				continue
			}
			for {
				var set [][]string
				cols, _ := rows.Columns()
				for rows.Next() {
					vals := make([]sql.RawBytes, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					_ = rows.Scan(ptrs...)
					var row []string
					for _, v := range vals {
						row = append(row, string(v))
					}
					set = append(set, row)
				}
				say(q[0], set)
				if !rows.NextResultSet() {
					break
				}
			}
			rows.Close()
		}
		_, err = c.ExecContext(ctx, "SELECT * FROM nope")
		say("error-table", err)
		_, err = c.ExecContext(ctx, "INSERT INTO t (id) VALUES (1)")
		say("error-dup", err)
		rows, _ = c.QueryContext(ctx, "SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000")
		count, sum := 0, 0
		for rows.Next() {
			var seq int
			var x string
			_ = rows.Scan(&seq, &x)
			count++
			sum += seq
		}
		rows.Close()
		say("large", fmt.Sprint(count, " ", sum))
		var id int
		_ = c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id)
		go killWhenRunning(t, addr, strconv.Itoa(id), "SLEEP(5)")
		var slept int
		err = c.QueryRowContext(ctx, "SELECT SLEEP(5)").Scan(&slept)
		if err != nil {
			say("cancel", err)
		} else {
			say("cancel", fmt.Sprint("result ", slept))
		}
		_ = c.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		say("after-cancel", one)
		return out
	}
	compare(t, scenario(env.Sandbox.Master().Addr()), scenario(proxy.Addr))
}
