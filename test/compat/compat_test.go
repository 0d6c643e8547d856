// Package compat_test runs other projects' test suites through the proxy
// and directly against the same master, and compares: MariaDB's own
// `main` test suite (mariadb-test-run.pl --extern, Debian package
// mariadb-test) and go-sql-driver's test suite. The full runs take long
// and are `make test-compat` (build tag compat); a representative subset
// of MariaDB's suite runs in make test. Tests that differ are listed with
// the reason in docs/mariadb-test-suite.md, which this package reads.
package compat_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var (
	env   *harness.Env
	proxy *harness.Proxy
)

// mtrDir is where Debian's mariadb-test package installs the suite.
const mtrDir = "/usr/share/mysql/mysql-test"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := startAll(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopAll()
	return m.Run()
}

// seed numbers the sandboxes (each fresh one gets the next).
var seed = 20

// startAll starts a sandbox (a master and one replica) prepared for the
// suite, and a proxy in front of it.
func startAll() error {
	e, err := harness.Setup(1, seed)
	seed++
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	env = e
	if err := prepareForMTR(e); err != nil {
		return fmt.Errorf("preparing the sandbox for mariadb-test-run: %w", err)
	}
	p, err := e.StartProxyErr(harness.ProxyOptions{LogLevel: "warn", SkipCheck: true,
		Users:    "  - name: root\n    password: \"\"\n",
		Failover: "  enabled: false\n",
		Extra: fmt.Sprintf("load_data_local: true\nmax_allowed_packet: 1GiB\ntls:\n  cert: %s\n  key: %s\n"+
			"pool:\n  max_connections: 2048\n  tls:\n    enabled: true\n    insecure_skip_verify: true\n",
			filepath.Join(e.Sandbox.Dir, "server-cert.pem"), filepath.Join(e.Sandbox.Dir, "server-key.pem"))})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	proxy = p
	return nil
}

func stopAll() {
	if proxy != nil {
		_ = proxy.Stop()
		proxy = nil
	}
	if env != nil {
		env.Teardown()
		env = nil
	}
}

// fresh replaces the sandbox and the proxy with new ones: what one run of
// the suite left on the servers does not reach the next.
func fresh(t *testing.T) {
	t.Helper()
	stopAll()
	if err := startAll(); err != nil {
		t.Fatal(err)
	}
}

// prepareForMTR gives the sandbox what mariadb-test-run.pl --extern
// expects of a server it did not start: root without a password over TCP,
// the test database, and the mtr schema with its suppression procedures.
// The accounts are created for 127.0.0.1 exactly: the suite creates
// anonymous users at 127.0.0.1 (”@'127.0.0.1'), which would shadow
// accounts at '%'.
func prepareForMTR(e *harness.Env) error {
	master := e.Sandbox.Instances[0]
	db, err := master.DB()
	if err != nil {
		return err
	}
	defer db.Close()
	stmts := []string{
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'",
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
		"CREATE USER IF NOT EXISTS 'switchyard'@'127.0.0.1' IDENTIFIED BY 'switchyard'",
		"GRANT ALL PRIVILEGES ON *.* TO 'switchyard'@'127.0.0.1' WITH GRANT OPTION",
		"CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'",
		"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'",
		"CREATE DATABASE IF NOT EXISTS test",
		"CREATE DATABASE IF NOT EXISTS mtr",
		// MTR's own servers run without a binary log; the sandbox master
		// has one, and refuses a function not declared DETERMINISTIC (1418).
		"SET GLOBAL log_bin_trust_function_creators = 1",
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	// mtr_warnings.sql is written for mysqltest; the mariadb client takes
	// it with two lines changed. Its check_warnings procedure does not
	// parse there (--force goes on): an extern run reads no error log.
	script, err := os.ReadFile(filepath.Join(mtrDir, "include", "mtr_warnings.sql"))
	if err != nil {
		return fmt.Errorf("the mariadb-test package (make deps installs it): %w", err)
	}
	sqlText := strings.NewReplacer("delimiter ||;\n", "delimiter ||\n", "use mtr||\n", "use mtr\n").Replace(string(script))
	cmd := exec.Command("mariadb", "-h127.0.0.1", fmt.Sprint("-P", master.Port), "-uroot", "--force", "mtr")
	cmd.Stdin = strings.NewReader(sqlText)
	out, _ := cmd.CombinedOutput()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'mtr' AND ROUTINE_NAME = 'add_suppression'").Scan(&n); err != nil || n != 1 {
		return fmt.Errorf("mtr.add_suppression was not created: %v: %s", err, out)
	}
	return waitReplicated(e, "mtr")
}

// waitReplicated waits until every replica has the database.
func waitReplicated(e *harness.Env, database string) error {
	for _, in := range e.Sandbox.ReplicaInstances() {
		db, err := in.DB()
		if err != nil {
			return err
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			var n int
			if db.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", database).Scan(&n); n == 1 {
				break
			}
			if time.Now().After(deadline) {
				db.Close()
				return fmt.Errorf("%s did not get database %s", in.Name, database)
			}
			time.Sleep(100 * time.Millisecond)
		}
		db.Close()
	}
	return nil
}

// outcome of one test of the suite.
type outcome struct {
	result string // pass, fail, skipped, disabled
	detail string // the first lines MTR printed for a failure
}

var resultLine = regexp.MustCompile(`^(\w+\.[\w\-]+)(?:\s+'[^']*')?\s+(?:w\d+\s+)?\[ (pass|fail|skipped|disabled) \]`)

// mtr runs mariadb-test-run.pl against host:port as root over TCP and
// returns each test's outcome; tests empty runs the whole main suite.
func mtr(t *testing.T, name string, port int, parallel int, tests []string, extra ...string) map[string]outcome {
	t.Helper()
	vardir := filepath.Join(env.Dir, "mtr-"+name)
	_ = os.RemoveAll(vardir)
	args := []string{filepath.Join(mtrDir, "mariadb-test-run.pl"),
		"--extern", "host=127.0.0.1", "--extern", fmt.Sprintf("port=%d", port), "--extern", "user=root",
		"--extern", "protocol=tcp", "--vardir=" + vardir, "--force", "--max-test-fail=0",
		fmt.Sprintf("--parallel=%d", parallel), "--testcase-timeout=5", "--suite-timeout=600"}
	args = append(args, extra...)
	if len(tests) == 0 {
		args = append(args, "--suite=main")
	} else {
		args = append(args, tests...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Hour)
	defer cancel()
	cmd := exec.CommandContext(ctx, "perl", args...)
	cmd.Dir = mtrDir
	logPath := filepath.Join(artifacts(t), "mtr-"+name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	_ = cmd.Run() // non-zero whenever a test fails; the outcomes say which
	t.Logf("mariadb-test-run %s: %v, log in %s", name, time.Since(start).Round(time.Second), logPath)
	return parseMTR(t, logPath)
}

func parseMTR(t *testing.T, path string) map[string]outcome {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]outcome{}
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := resultLine.FindStringSubmatch(line); m != nil {
			out[m[1]] = outcome{result: m[2]}
			last = m[1]
			if m[2] == "skipped" || m[2] == "disabled" {
				o := out[m[1]]
				o.detail = strings.TrimSpace(line[strings.Index(line, "]")+1:])
				out[m[1]] = o
			}
			continue
		}
		if last != "" && out[last].result == "fail" && len(out[last].detail) < 600 {
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "Test ended at") && !strings.HasPrefix(s, "- saving") {
				o := out[last]
				o.detail += s + "\n"
				out[last] = o
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no test result in %s", path)
	}
	return out
}

func artifacts(t *testing.T) string {
	_, f, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(f), "..", "..", "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// known reads the tests docs/mariadb-test-suite.md lists as differing
// through the proxy, with their reason: table rows "| main.x | reason |".
func known(t *testing.T) map[string]string {
	_, f, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(f), "..", "..", "docs", "mariadb-test-suite.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	row := regexp.MustCompile("^\\|\\s*`?(main\\.[\\w\\-]+)`?\\s*\\|\\s*([^|]+)\\|")
	for _, line := range strings.Split(string(data), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			out[m[1]] = strings.TrimSpace(m[2])
		}
	}
	return out
}

// compare returns the tests that pass directly but not through the proxy.
func compare(direct, proxied map[string]outcome) []string {
	var worse []string
	for name, d := range direct {
		if d.result == "pass" && proxied[name].result != "pass" {
			worse = append(worse, name)
		}
	}
	sort.Strings(worse)
	return worse
}

func masterPort() int { return env.Sandbox.Instances[0].Port }

// destructive matches what a test may not do to a server it did not
// start (--extern) and that replicas follow: stop, kill or restart it
// (mysqltest's shutdown_server finds the server's pid through the server
// itself), or reset its binary log (the replicas' source).
var destructive = regexp.MustCompile(`(?i)\b(shutdown_server|restart_mysqld|kill_mysqld|start_mysqld|crash_mysqld|restart_with_mysqld|shutdown\s*;|reset\s+master|reset\s+binary\s+logs)\b`)

var sourced = regexp.MustCompile(`(?im)^\s*-{0,2}\s*source\s+([^\s;]+)`)

// unsafeForExtern lists the main suite's tests that do, or source an
// include that does, something destructive; they are skipped in both runs
// (written as a --skip-test-list file).
func unsafeForExtern(t *testing.T) string {
	t.Helper()
	memo := map[string]bool{}
	var bad func(path string, depth int) bool
	bad = func(path string, depth int) bool {
		if v, ok := memo[path]; ok || depth > 8 {
			return v
		}
		memo[path] = false
		data, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		if destructive.Match(data) {
			memo[path] = true
			return true
		}
		for _, m := range sourced.FindAllSubmatch(data, -1) {
			if bad(filepath.Join(mtrDir, string(m[1])), depth+1) || bad(filepath.Join(filepath.Dir(path), string(m[1])), depth+1) {
				memo[path] = true
				return true
			}
		}
		return false
	}
	tests, err := filepath.Glob(filepath.Join(mtrDir, "main", "*.test"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	n := 0
	for _, path := range tests {
		if bad(path, 0) {
			fmt.Fprintf(&b, "main.%s : stops, restarts or resets the server\n", strings.TrimSuffix(filepath.Base(path), ".test"))
			n++
		}
	}
	list := filepath.Join(artifacts(t), "mtr-skip-destructive.txt")
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d tests stop, restart or reset the server: skipped in both runs", n, len(tests))
	return list
}

func proxyPort(t *testing.T) int {
	var port int
	if _, err := fmt.Sscanf(proxy.Addr[strings.LastIndexByte(proxy.Addr, ':')+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}

var _ = sql.ErrNoRows

// sample is a slice of MariaDB's main suite that passes directly and
// through the proxy in the full run (make test-compat), chosen to cover
// the protocol: prepared statements, multi-statements and procedures,
// SIGNAL and errors, charsets, KILL and timeouts, COM_RESET_CONNECTION,
// temporary tables, LOAD DATA, window functions, TLS, and the test the
// full run found broken through the proxy (main.connect-no-db). Each
// passes alone too (some of the suite's tests pass only after the
// leftovers of others).
var sample = []string{
	"main.bool_innodb", "main.check_constraint_innodb", "main.comments", "main.connect-no-db",
	"main.create_replace_tmp", "main.ctype_cp866", "main.ctype_utf8mb4_unicode_ci_def", "main.func_int", "main.gis-json",
	"main.keyread", "main.kill_query-6728", "main.loaddata_autocom_innodb", "main.lock_kill", "main.mysql_protocols",
	"main.non_blocking_api", "main.odbc", "main.precedence", "main.ps_max_subselect-5113", "main.ps_missed_cmds_not_embedded",
	"main.ps_not_windows", "main.renamedb", "main.reopen_temp_table", "main.reset_connection",
	"main.rollback", "main.round", "main.set_statement_notembedded", "main.signal_demo1", "main.signal_demo2",
	"main.signal_demo3", "main.signal_sqlmode", "main.sp-no-code", "main.ssl_connect",
	"main.type_bool", "main.type_char", "main.type_varbinary", "main.win_lead_lag", "main.win_rank", "main.win_sum",
}

// TestMariaDBSuiteSample runs the sample directly and through the proxy;
// every test must pass both ways (a direct failure means the sandbox is
// not what the suite expects, and is an error too).
func TestMariaDBSuiteSample(t *testing.T) {
	direct := mtr(t, "sample-direct", masterPort(), 1, sample)
	fresh(t)
	proxied := mtr(t, "sample-proxy", proxyPort(t), 1, sample)
	for _, name := range sample {
		if d, p := direct[name], proxied[name]; d.result != "pass" || p.result != "pass" {
			t.Errorf("%s: direct %s, through the proxy %s\n%s", name, d.result, p.result, p.detail+d.detail)
		}
	}
	t.Logf("%d tests of MariaDB's main suite pass directly and through the proxy", len(sample))
}
