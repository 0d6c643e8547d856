package operator_test

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/test/harness"
)

// TestReloadAppliesEverythingOrRefuses: a reload applies every setting
// that can change at runtime (pool limit, monitor, failover and routing
// settings, a user's backend password), and SHOW CONFIG prints what runs;
// a file that also changes what needs a restart is refused whole, with
// the list, and nothing of it is applied.
func TestReloadAppliesEverythingOrRefuses(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info"})
	adm := p.Admin(t)
	master := byName(rowsOf(t, adm, "SHOW STATUS"), "variable")["master"]["value"]
	mdb := env.InstanceDB(t, master)
	for _, q := range []string{"DROP USER IF EXISTS 'reload_app'@'%'", "CREATE USER 'reload_app'@'%' IDENTIFIED BY 'first-pw'",
		"GRANT SELECT ON *.* TO 'reload_app'@'%'"} {
		if _, err := mdb.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	orig, err := os.ReadFile(p.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(p.ConfigPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	withDave := func(pw string) string {
		return strings.Replace(string(orig), "users:\n", "users:\n  - name: dave\n    password: davepw\n    backend_user: reload_app\n    backend_password: "+pw+"\n", 1)
	}
	write(withDave("first-pw"))
	rowsOf(t, adm, "RELOAD CONFIG")
	dave, _ := sql.Open("mysql", p.DSN("dave", "davepw", "", ""))
	defer dave.Close()
	holdTransactions := func(n int) error {
		var conns []*sql.Conn
		defer func() {
			for _, c := range conns {
				_, _ = c.ExecContext(context.Background(), "ROLLBACK")
				c.Close()
			}
		}()
		for range n { // each holds a master connection: new ones are dialled
			c, err := dave.Conn(context.Background())
			if err != nil {
				return err
			}
			conns = append(conns, c)
			if _, err := c.ExecContext(context.Background(), "BEGIN"); err != nil {
				return err
			}
			var one int
			if err := c.QueryRowContext(context.Background(), "SELECT 1 FOR UPDATE").Scan(&one); err != nil {
				return err
			}
		}
		return nil
	}
	if err := holdTransactions(2); err != nil {
		t.Fatalf("dave with the first password: %v", err)
	}
	// The backend password changes on the server and in the file; the
	// monitor, failover, routing and pool settings change too.
	if _, err := mdb.Exec("ALTER USER 'reload_app'@'%' IDENTIFIED BY 'second-pw'"); err != nil {
		t.Fatal(err)
	}
	changed := withDave("second-pw")
	for old, neu := range map[string]string{
		"monitor:\n":  "monitor:\n  failcount: 7\n",
		"failover:\n": "failover:\n  apply_timeout: 17s\n",
	} {
		if !strings.Contains(changed, old) {
			t.Fatalf("the generated config has no %q", old)
		}
		changed = strings.Replace(changed, old, neu, 1)
	}
	changed += "routing:\n  max_replica_lag: 23s\npool:\n  max_connections: 33\n  max_idle: 8\n"
	write(changed)
	rowsOf(t, adm, "RELOAD CONFIG")
	if err := holdTransactions(6); err != nil {
		t.Fatalf("dave after the backend password changed: %v", err)
	}
	running := rowsOf(t, adm, "SHOW CONFIG")[0]["config"]
	for _, want := range []string{"failcount: 7", "apply_timeout: 17s", "max_replica_lag: 23s", "max_connections: 33"} {
		if !strings.Contains(running, want) {
			t.Errorf("SHOW CONFIG after the reload lacks %q", want)
		}
	}
	if got := p.Scrape(t)["switchyard_pool_max_connections,cluster=default"]; got != 33 {
		t.Errorf("pool limit after the reload: %v", got)
	}
	// A file that changes the listener as well: refused whole.
	refused := strings.Replace(changed, "max_connections: 33", "max_connections: 44", 1)
	refused = strings.Replace(refused, "listen: "+p.Addr, "listen: 127.0.0.1:1", 1)
	write(refused)
	_, err = adm.Exec("RELOAD CONFIG")
	if err == nil || !strings.Contains(err.Error(), "listen") || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("a listen change was not refused with the list: %v", err)
	}
	running = rowsOf(t, adm, "SHOW CONFIG")[0]["config"]
	if !strings.Contains(running, "max_connections: 33") || strings.Contains(running, "127.0.0.1:1\n") {
		t.Errorf("the refused file was partly applied:\n%s", running)
	}
	if got := p.Scrape(t)["switchyard_pool_max_connections,cluster=default"]; got != 33 {
		t.Errorf("pool limit after a refused reload: %v", got)
	}
	write(string(orig))
	rowsOf(t, adm, "RELOAD CONFIG")
}

// TestReloadAndMetricsDuringASwitchover: while a switchover runs (held
// here in its post_switchover hook), RELOAD CONFIG and /metrics answer
// at once: neither waits for the change to end (the change keeps the
// settings it started with).
func TestReloadAndMetricsDuringASwitchover(t *testing.T) {
	// The package's shared proxy is stopped while this test's proxy
	// changes masters: two instances not coordinated through etcd would
	// both manage the servers (one rejoining as a replica what the other
	// is promoting). It starts again once this test's proxy has stopped
	// (cleanups run last registered first).
	if err := proxy.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Relaunch(proxy); err != nil {
			t.Errorf("the shared proxy did not start again: %v", err)
		}
	})
	marker := t.TempDir() + "/hook-running"
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info",
		Extra: "hooks:\n  post_switchover: touch " + marker + "; sleep 4\n  timeout: 30s\n"})
	adm := p.Admin(t)
	done := make(chan error, 1)
	go func() {
		_, err := adm.Exec("SWITCHOVER")
		done <- err
	}()
	harness.WaitFor(t, "the switchover to reach its hook", 20*time.Second, func() bool {
		_, err := os.Stat(marker)
		return err == nil
	})
	orig, _ := os.ReadFile(p.ConfigPath)
	changed := strings.Replace(string(orig), "  - name: replica2\n    host: 127.0.0.1\n", "  - name: replica2\n    host: 127.0.0.1\n    weight: 4\n", 1)
	if err := os.WriteFile(p.ConfigPath, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Exec("RELOAD CONFIG"); err != nil {
		t.Fatalf("reload during a switchover: %v", err)
	}
	scraped := p.Scrape(t)
	select {
	case err := <-done:
		t.Fatalf("the reload and the scrape waited for the switchover to end (%v)", err)
	default:
	}
	if len(scraped) == 0 {
		t.Fatal("empty scrape")
	}
	if w := byName(rowsOf(t, adm, "SHOW BACKENDS"), "name")["replica2"]["weight"]; w != "4" {
		t.Errorf("weight after the reload: %s", w)
	}
	if err := <-done; err != nil {
		t.Fatalf("switchover: %v", err)
	}
	_ = os.WriteFile(p.ConfigPath, orig, 0o600)
	// Back to the sandbox's first master for the tests that follow, with
	// every replica replicating from it before the shared proxy's
	// pre-flight check looks.
	if _, err := adm.Exec("SWITCHOVER TO 'master'"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"replica1", "replica2"} {
		harness.WaitFor(t, name+" replicating from the master", 30*time.Second, func() bool {
			b := harness.Backend(t, adm, name)
			return b["role"] == "replica" && b["state"] == "up" && b["lag_seconds"] != ""
		})
	}
}
