// Package operator_test drives the operator surface of a running proxy:
// every admin command through a real client, switchyard check against
// healthy and broken setups, /metrics, /readyz, and reload under load.
package operator_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var (
	env   *harness.Env
	proxy *harness.Proxy
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, 2, 5, harness.ProxyOptions{LogLevel: "info", Failover: "  cooldown: 1s\n"}, &env, &proxy))
}

func rowsOf(t *testing.T, adm *sql.DB, q string) []map[string]string {
	return harness.AdminRows(t, adm, q)
}

func byName(rows []map[string]string, key string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, r := range rows {
		out[r[key]] = r
	}
	return out
}

func TestShowBackendsAndLag(t *testing.T) {
	adm := proxy.Admin(t)
	b := byName(rowsOf(t, adm, "SHOW BACKENDS"), "name")
	if len(b) != 3 || b["master"]["role"] != "master" || b["replica1"]["role"] != "replica" || b["replica1"]["read_only"] != "1" {
		t.Fatalf("SHOW BACKENDS: %v", b)
	}
	// Lag rises when a replica's SQL thread is stopped and the master writes.
	r1 := env.InstanceDB(t, "replica1")
	if _, err := r1.Exec(harness.Pick("STOP SLAVE SQL_THREAD", "STOP REPLICA SQL_THREAD")); err != nil {
		t.Fatal(err)
	}
	defer r1.Exec(harness.Pick("START SLAVE SQL_THREAD", "START REPLICA SQL_THREAD"))
	app, _ := sql.Open("mysql", proxy.DSN("app", "app", "", ""))
	defer app.Close()
	if _, err := app.Exec("CREATE DATABASE IF NOT EXISTS op_lag"); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "replica1's lag to reach 2s", 10*time.Second, func() bool {
		_, _ = app.Exec("CREATE TABLE IF NOT EXISTS op_lag.t (a INT)")
		_, _ = app.Exec("INSERT INTO op_lag.t VALUES (1)")
		r := byName(rowsOf(t, adm, "SHOW BACKENDS"), "name")["replica1"]
		lag, err := strconv.Atoi(r["lag_seconds"])
		return err == nil && lag >= 2
	})
	if _, err := r1.Exec(harness.Pick("START SLAVE SQL_THREAD", "START REPLICA SQL_THREAD")); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "replica1's lag back to 0", 10*time.Second, func() bool {
		return byName(rowsOf(t, adm, "SHOW BACKENDS"), "name")["replica1"]["lag_seconds"] == "0"
	})
}

func TestSessionsQueryStatsStatusVersionConfigHelp(t *testing.T) {
	adm := proxy.Admin(t)
	app, _ := sql.Open("mysql", proxy.DSN("app", "app", "mysql", ""))
	defer app.Close()
	conn, err := app.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "SELECT 1 AS marker_session FROM DUAL"); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range rowsOf(t, adm, "SHOW SESSIONS") {
		if strings.Contains(s["last_statement_digest"], "marker_session") {
			found = true
			if s["in_transaction"] != "1" || s["db"] != "mysql" || s["user"] != "app" || s["backend"] != "master" {
				t.Errorf("session row: %v", s)
			}
		}
	}
	if !found {
		t.Fatal("session not listed by SHOW SESSIONS")
	}
	_, _ = conn.ExecContext(context.Background(), "COMMIT")

	rowsOf(t, adm, "RESET QUERY STATS")
	for i := 0; i < 7; i++ {
		var x int
		if err := app.QueryRow(fmt.Sprintf("SELECT %d + 0 AS stats_marker", i)).Scan(&x); err != nil {
			t.Fatal(err)
		}
	}
	var digest map[string]string
	for _, r := range rowsOf(t, adm, "SHOW QUERY STATS") {
		if strings.Contains(r["digest"], "stats_marker") {
			digest = r
		}
	}
	if digest == nil || digest["count"] != "7" || digest["to_replica"] != "7" || digest["rows"] != "7" {
		t.Fatalf("digest row: %v (literals must be folded into one digest)", digest)
	}
	rowsOf(t, adm, "RESET QUERY STATS")
	for _, r := range rowsOf(t, adm, "SHOW QUERY STATS") {
		if strings.Contains(r["digest"], "stats_marker") {
			t.Fatal("RESET QUERY STATS left the digest")
		}
	}
	st := byName(rowsOf(t, adm, "SHOW STATUS"), "variable")
	if st["master"]["value"] != "master" || st["queries"]["value"] == "0" || st["uptime_seconds"]["value"] == "" {
		t.Fatalf("SHOW STATUS: %v", st)
	}
	if v := rowsOf(t, adm, "SHOW VERSION"); len(v) != 1 || v[0]["version"] == "" {
		t.Fatalf("SHOW VERSION: %v", v)
	}
	cfg := rowsOf(t, adm, "SHOW CONFIG")[0]["config"]
	if !strings.Contains(cfg, "replica1") || strings.Contains(cfg, "password: app") || strings.Contains(cfg, "password: switchyard") {
		t.Fatalf("SHOW CONFIG shows secrets or lacks backends:\n%s", cfg)
	}
	help := rowsOf(t, adm, "HELP")
	if len(help) < 12 {
		t.Fatalf("HELP lists %d commands", len(help))
	}
	_, err = adm.Exec("SHOW NONSENSE")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || !strings.Contains(me.Message, "HELP") {
		t.Fatalf("unknown command: %v", err)
	}
}

func TestAdminPortRefusesApplicationUsers(t *testing.T) {
	db, _ := sql.Open("mysql", fmt.Sprintf("app:app@tcp(%s)/", proxy.AdminAddr))
	defer db.Close()
	var me *mysql.MySQLError
	if err := db.Ping(); !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("application user on the admin port: %v", err)
	}
}

func TestSetBackendOfflineDrainsAndStopsRouting(t *testing.T) {
	adm := proxy.Admin(t)
	app, _ := sql.Open("mysql", proxy.DSN("app", "app", "", ""))
	defer app.Close()
	// A slow read on replica2 is running when the drain starts: a
	// read-only transaction stays on one replica, so retry until it is
	// replica2 (server id 3).
	conn := harness.PinReplica(t, app, 3)
	defer conn.Close()
	slow := make(chan error, 1)
	go func() {
		var id, z int
		err := conn.QueryRowContext(context.Background(), "SELECT @@server_id, SLEEP(1.5)").Scan(&id, &z)
		if err == nil && id != 3 {
			err = fmt.Errorf("slow query ran on server %d", id)
		}
		slow <- err
	}()
	r2 := env.InstanceDB(t, "replica2")
	harness.WaitFor(t, "the slow query to run on replica2", 10*time.Second, func() bool { return harness.Running(t, r2, "SLEEP(1.5)") })
	start := time.Now()
	rowsOf(t, adm, "SET BACKEND 'replica2' OFFLINE")
	took := time.Since(start)
	if err := <-slow; err != nil {
		t.Fatalf("running query on the drained backend failed: %v", err)
	}
	if took < time.Second {
		t.Fatalf("OFFLINE returned after %s, before the running query (1.5 s) finished", took)
	}
	_, _ = conn.ExecContext(context.Background(), "COMMIT")
	if b := byName(rowsOf(t, adm, "SHOW BACKENDS"), "name")["replica2"]; !strings.Contains(b["state"], "offline") || b["role"] != "offline" {
		t.Fatalf("replica2 after OFFLINE: %v", b)
	}
	for i := 0; i < 100; i++ {
		var id int
		if err := app.QueryRow("SELECT @@server_id").Scan(&id); err != nil || id == 3 {
			t.Fatalf("read %d went to the offline backend (%v)", i, err)
		}
	}
	rowsOf(t, adm, "SET BACKEND 'replica2' ONLINE")
	harness.WaitFor(t, "replica2 back in rotation", 10*time.Second, func() bool {
		return harness.ServerIDOfNewSession(app) == 3
	})
	if _, err := adm.Exec("SET BACKEND 'nope' OFFLINE"); err == nil {
		t.Fatal("unknown backend accepted")
	}
}

func TestSwitchoverFailoverAndHistory(t *testing.T) {
	adm := proxy.Admin(t)
	res := rowsOf(t, adm, "SWITCHOVER TO 'replica1'")
	if len(res) != 1 || res[0]["new_master"] != "replica1" {
		t.Fatalf("SWITCHOVER: %v", res)
	}
	harness.WaitFor(t, "master to follow replica1", 15*time.Second, func() bool {
		b := byName(rowsOf(t, adm, "SHOW BACKENDS"), "name")
		return b["master"]["role"] == "replica" && b["master"]["state"] == "up" && b["replica1"]["role"] == "master"
	})
	// A forced failover back to the original master (it is alive: the
	// old master is fenced and rejoins as a replica).
	res = rowsOf(t, adm, "FAILOVER TO 'master'")
	if len(res) != 1 || res[0]["new_master"] != "master" {
		t.Fatalf("FAILOVER: %v", res)
	}
	harness.WaitFor(t, "replica1 to rejoin", 20*time.Second, func() bool {
		b := byName(rowsOf(t, adm, "SHOW BACKENDS"), "name")
		return b["replica1"]["role"] == "replica" && b["replica1"]["state"] == "up"
	})
	hist := rowsOf(t, adm, "SHOW FAILOVERS")
	if len(hist) < 2 {
		t.Fatalf("SHOW FAILOVERS: %v", hist)
	}
	last := hist[len(hist)-1]
	if last["kind"] != "failover" || last["succeeded"] != "1" || !strings.Contains(last["steps"], "promote=") || last["duration"] == "" {
		t.Fatalf("failover record: %v", last)
	}
	app, _ := sql.Open("mysql", proxy.DSN("app", "app", "", ""))
	defer app.Close()
	if _, err := app.Exec("CREATE DATABASE IF NOT EXISTS op_after"); err != nil {
		t.Fatalf("write after failover: %v", err)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	// The previous test ends with a rejoin; on a loaded machine a health
	// check of the rejoined server can time out once. The gauges are
	// checked against a settled topology, not against that moment.
	harness.WaitFor(t, "both replicas usable", 20*time.Second, func() bool {
		return proxy.Scrape(t)["switchyard_replicas_usable,cluster=default"] == 2
	})
	before := proxy.Scrape(t)
	app, _ := sql.Open("mysql", proxy.DSN("app", "app", "", ""))
	defer app.Close()
	for i := 0; i < 20; i++ {
		var x int
		_ = app.QueryRow("SELECT 1").Scan(&x)
	}
	_, _ = app.Exec("CREATE DATABASE IF NOT EXISTS op_metrics")
	after := proxy.Scrape(t)
	if d := after["switchyard_queries_total,cluster=default,kind=read,route=replica"] - before["switchyard_queries_total,cluster=default,kind=read,route=replica"]; d < 20 {
		t.Errorf("replica reads counter moved by %v", d)
	}
	if after["switchyard_queries_total,cluster=default,kind=write,route=master"] <= before["switchyard_queries_total,cluster=default,kind=write,route=master"] {
		t.Error("master writes counter did not move")
	}
	if after["switchyard_query_duration_seconds,cluster=default,route=replica,count"] < 20 {
		t.Error("latency histogram empty")
	}
	if after["switchyard_backend_up,backend=master,cluster=default"] != 1 || after["switchyard_backend_master,backend=master,cluster=default"]+after["switchyard_backend_master,backend=replica1,cluster=default"] != 1 {
		t.Errorf("backend gauges: %v", after)
	}
	if _, ok := after["switchyard_backend_replication_lag_seconds,backend=replica2,cluster=default"]; !ok {
		t.Error("no lag gauge for replica2")
	}
	if after["switchyard_replicas_usable,cluster=default"] != 2 {
		t.Errorf("usable replicas: %v", after["switchyard_replicas_usable,cluster=default"])
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 401, "/": 401, "/api/status": 401} {
		resp, err := http.Get("http://" + proxy.HTTPAddr + path)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
}

func TestReloadUnderLoad(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info"})
	adm := p.Admin(t)
	var stop atomic.Bool
	var failures atomic.Int64
	var total atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
			defer db.Close()
			db.SetMaxOpenConns(1)
			for !stop.Load() {
				var x int
				if err := db.QueryRow("SELECT 1").Scan(&x); err != nil {
					failures.Add(1)
				}
				total.Add(1)
			}
		}()
	}
	orig, err := os.ReadFile(p.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	// Valid change: replica2's weight and a new user.
	changed := strings.Replace(string(orig), "  - name: replica2\n    host: 127.0.0.1\n", "  - name: replica2\n    host: 127.0.0.1\n    weight: 5\n", 1)
	changed = strings.Replace(changed, "users:\n", "users:\n  - name: carol\n    password: carolpw\n    backend_user: app\n    backend_password: app\n", 1)
	if err := os.WriteFile(p.ConfigPath, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	rowsOf(t, adm, "RELOAD CONFIG")
	if w := byName(rowsOf(t, adm, "SHOW BACKENDS"), "name")["replica2"]["weight"]; w != "5" {
		t.Fatalf("weight after reload: %s", w)
	}
	carol, _ := sql.Open("mysql", p.DSN("carol", "carolpw", "", ""))
	defer carol.Close()
	if err := carol.Ping(); err != nil {
		t.Fatalf("user added by reload cannot log in: %v", err)
	}
	// Removing a backend takes it out of routing; adding it back returns it.
	without := removeBackend(changed, "replica2")
	if err := os.WriteFile(p.ConfigPath, []byte(without), 0o600); err != nil {
		t.Fatal(err)
	}
	rowsOf(t, adm, "RELOAD CONFIG")
	if b := byName(rowsOf(t, adm, "SHOW BACKENDS"), "name"); len(b) != 2 || b["replica2"] != nil {
		t.Fatalf("after removing replica2: %v", b)
	}
	probe, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
	defer probe.Close()
	for i := 0; i < 50; i++ {
		var id int
		if err := probe.QueryRow("SELECT @@server_id").Scan(&id); err != nil || id == 3 {
			t.Fatalf("read %d reached the removed backend (%v)", i, err)
		}
	}
	if err := os.WriteFile(p.ConfigPath, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	rowsOf(t, adm, "RELOAD CONFIG")
	harness.WaitFor(t, "replica2 back after re-adding it", 10*time.Second, func() bool {
		b := byName(rowsOf(t, adm, "SHOW BACKENDS"), "name")["replica2"]
		return b != nil && b["state"] == "up" && b["role"] == "replica"
	})
	// Invalid change: rejected, the running config stays.
	if err := os.WriteFile(p.ConfigPath, []byte(changed+"bogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Exec("RELOAD CONFIG"); err == nil || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("invalid config accepted: %v", err)
	}
	// SIGHUP reloads too.
	if err := os.WriteFile(p.ConfigPath, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscallHUP(p.Pid()); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "SIGHUP reload", 5*time.Second, func() bool {
		return byName(rowsOf(t, adm, "SHOW BACKENDS"), "name")["replica2"]["weight"] == "1"
	})
	more := total.Load() + 200
	harness.WaitFor(t, "200 more statements after the last reload", 10*time.Second, func() bool { return total.Load() >= more })
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d statements failed during reloads", failures.Load(), total.Load())
	}
	t.Logf("%d statements during reloads, none failed", total.Load())
}

// removeBackend drops one "- name: X" item (and its indented lines) from
// the backends list of a generated config.
func removeBackend(cfg, name string) string {
	var out []string
	skipping := false
	for _, line := range strings.Split(cfg, "\n") {
		if strings.HasPrefix(line, "  - name: ") {
			skipping = line == "  - name: "+name
		} else if !strings.HasPrefix(line, "    ") {
			skipping = false
		}
		if !skipping {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func checkCmd(t *testing.T, cfgPath string) (string, int) {
	t.Helper()
	cmd := exec.Command(env.Binary, "check", "--config", cfgPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

func TestCheckHealthyAndBroken(t *testing.T) {
	p := proxy
	out, code := checkCmd(t, p.ConfigPath)
	if code != 0 || !strings.Contains(out, "verdict: OK") {
		t.Fatalf("healthy sandbox: exit %d\n%s", code, out)
	}
	master := byName(rowsOf(t, p.Admin(t), "SHOW STATUS"), "variable")["master"]["value"]
	var replica string
	for _, in := range env.Sandbox.Instances {
		if in.Name != master {
			replica = in.Name
		}
	}
	r := env.InstanceDB(t, replica)
	var id int
	_ = r.QueryRow("SELECT @@server_id").Scan(&id)
	tests := []struct {
		name        string
		break_, fix []string
		config      func(string) string
		want        string
	}{
		{name: "replica not read-only", break_: []string{"SET GLOBAL read_only = 0"}, fix: []string{harness.Pick("SET GLOBAL read_only = 1", "SET GLOBAL super_read_only = 1")},
			want: "read_only is OFF on a replica"},
		{name: "replication stopped", break_: []string{harness.Flavor().StopReplicaSQL()}, fix: []string{harness.Flavor().StartReplicaSQL()},
			want: "replication threads not running"},
		{name: "duplicate server id", break_: []string{"SET GLOBAL server_id = 1"}, fix: []string{fmt.Sprintf("SET GLOBAL server_id = %d", id), harness.Flavor().StopReplicaSQL(), harness.Flavor().StartReplicaSQL()},
			want: "server_id 1 is used by"},
		{name: "wrong password", config: func(s string) string {
			return strings.Replace(s, "monitor:\n  user: switchyard\n  password: switchyard", "monitor:\n  user: switchyard\n  password: wrong", 1)
		}, want: "Access denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := p.ConfigPath
			for _, q := range tt.break_ {
				if _, err := r.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			defer func() {
				for _, q := range tt.fix {
					_, _ = r.Exec(q)
				}
			}()
			if tt.config != nil {
				orig, _ := os.ReadFile(p.ConfigPath)
				path = p.ConfigPath + ".broken.yaml"
				if err := os.WriteFile(path, []byte(tt.config(string(orig))), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, code := checkCmd(t, path)
			if code != 1 || !strings.Contains(out, tt.want) || !strings.Contains(out, "verdict: NOT OK") {
				t.Fatalf("exit %d, want 1 and %q:\n%s", code, tt.want, out)
			}
			if !strings.Contains(out, " — ") {
				t.Errorf("findings carry no remedy:\n%s", out)
			}
		})
	}
	// A warning: semi-sync as a master on a replica (its applier would
	// wait for acks after each start).
	semi := harness.Pick("rpl_semi_sync_master_enabled", "rpl_semi_sync_source_enabled")
	if _, err := r.Exec("SET GLOBAL " + semi + " = 1"); err != nil {
		t.Fatal(err)
	}
	out, code = checkCmd(t, p.ConfigPath)
	_, _ = r.Exec("SET GLOBAL " + semi + " = 0")
	if code != 0 || !strings.Contains(out, "semi-sync as a master is on on a replica") || !strings.Contains(out, "1 warning") {
		t.Fatalf("semi-sync master on a replica: exit %d\n%s", code, out)
	}
	harness.WaitFor(t, "the check to pass again", 10*time.Second, func() bool {
		out, code = checkCmd(t, p.ConfigPath)
		return code == 0 && strings.Contains(out, "0 warning")
	})
}
