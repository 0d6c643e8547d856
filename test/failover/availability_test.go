package failover_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

// TestKillUnderEveryConnectionPattern: the master is SIGKILLed under 8
// writers that use connections as applications do — a connection per
// worker, a driver's pool (db.Exec with arguments), a new connection per
// write (PHP) — and only the writes in flight at the kill may fail: new
// connections log in without the master and their writes wait for the
// new one. No acknowledged write is lost.
func TestKillUnderEveryConnectionPattern(t *testing.T) {
	for i, pattern := range []harness.Pattern{harness.ConnPerWriter, harness.SharedPool, harness.ConnPerWrite} {
		t.Run(pattern.String(), func(t *testing.T) {
			p := startProxy(t, harness.ProxyOptions{})
			adm := p.Admin(t)
			table := fmt.Sprintf("pattern%d", i)
			w := harness.StartWritersPattern(t, p, 8, "fo", table, pattern)
			w.WaitMore(t, 100)
			old := masterName(t, adm)
			killed := time.Now()
			if err := env.Sandbox.Kill(old, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			took := harness.WaitFor(t, "a new master after killing "+old, 20*time.Second, func() bool { return masterName(t, adm) != old })
			neu := masterName(t, adm)
			w.WaitMore(t, 100)
			acked := w.Stop()
			steps := harness.AdminRows(t, adm, "SHOW FAILOVERS")
			t.Logf("%s: killed %s, new master %s named after %s, first write acknowledged %s after the kill; failed %d %v; steps %s",
				pattern, old, neu, took.Round(time.Millisecond), w.FirstAckAfter(killed).Round(time.Millisecond), w.Failed(), w.Errors(),
				steps[len(steps)-1]["steps"])
			for _, line := range strings.Split(p.Log(), "\n") {
				if strings.Contains(line, "slow failover statement") {
					t.Log(line)
				}
			}
			env.RestartAsReplica(t, adm, old)
			if w.Failed() > 8 {
				t.Errorf("%d writes failed; only the 8 in flight at the kill may", w.Failed())
			}
			lost, rows := env.Lost(t, neu, "fo", table, acked)
			t.Logf("acknowledged %d writes, lost %d (rows on %s: %d)", len(acked), lost, neu, rows)
			if lost != 0 {
				t.Errorf("%d acknowledged writes are missing on the new master", lost)
			}
		})
	}
}

// TestReadsWithoutMaster: the master dies and no failover replaces it
// (failover disabled): sessions already open and sessions that log in
// afterwards read from the replicas without a single failure; a write
// fails after hold_timeout with an error that says why; the status says
// the failover is blocked.
func TestReadsWithoutMaster(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Failover: "  enabled: false\n  hold_timeout: 2s\n"})
	adm := p.Admin(t)
	db, _ := sql.Open("mysql", p.DSN("app", "app", "", "timeout=5s"))
	defer db.Close()
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS fo", "CREATE TABLE IF NOT EXISTS fo.r (id INT PRIMARY KEY)", "REPLACE INTO fo.r VALUES (1), (2)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	open := p.Session(t, "app", "app", "fo", "timeout=5s")
	master := masterName(t, adm)
	// The data was written before the outage: every replica has it.
	for _, in := range env.Sandbox.Instances {
		harness.WaitFor(t, in.Name+" to have fo.r", 10*time.Second, func() bool {
			var n int
			return env.InstanceDB(t, in.Name).QueryRow("SELECT COUNT(*) FROM fo.r").Scan(&n) == nil && n == 2
		})
	}
	if err := env.Sandbox.Kill(master, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restartAsMaster(t, adm, master) })
	reads, failures := readFor(t, p, open, 5*time.Second)
	t.Logf("master %s dead, no failover: %d reads (new and open sessions), %d failed", master, reads, failures)
	if failures != 0 {
		t.Errorf("%d of %d reads failed without a master", failures, reads)
	}
	start := time.Now()
	_, err := db.Exec("INSERT INTO fo.r VALUES (3)")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || !strings.Contains(me.Message, "no writable master") || !strings.Contains(me.Message, "failover.enabled: false") {
		t.Fatalf("a write without a master: %v; want an error saying there is no master and why", err)
	}
	if waited := time.Since(start); waited < 2*time.Second || waited > 10*time.Second {
		t.Errorf("the write failed after %s; hold_timeout is 2s", waited)
	}
	b := backends(t, adm)[master]
	if !strings.Contains(b["state"], "failover-blocked") {
		t.Errorf("SHOW BACKENDS does not say the failover is blocked: %v", b)
	}
	if c := harness.AdminRows(t, adm, "SHOW CLUSTERS"); c[0]["failover_blocked"] != "disabled" {
		t.Errorf("SHOW CLUSTERS: %v", c)
	}
}

// readFor reads for d from the open session and from a new session each
// time (a new connection per read), and counts the failures.
func readFor(t *testing.T, p *harness.Proxy, open *sql.Conn, d time.Duration) (reads, failures int) {
	t.Helper()
	dsn := p.DSN("app", "app", "fo", "timeout=5s")
	for end := time.Now().Add(d); time.Now().Before(end); {
		var n int
		fresh, _ := sql.Open("mysql", dsn)
		if err := fresh.QueryRow("SELECT COUNT(*) FROM r").Scan(&n); err != nil || n < 2 {
			failures++
			t.Logf("new session: %v", err)
		}
		fresh.Close()
		if err := open.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM r").Scan(&n); err != nil || n < 2 {
			failures++
			t.Logf("open session: %v", err)
		}
		reads += 2
		time.Sleep(20 * time.Millisecond)
	}
	return reads, failures
}

// restartAsMaster brings a killed master back as it was (failover was
// disabled, so it is still the topology's master).
func restartAsMaster(t *testing.T, adm *sql.DB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.Sandbox.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	// It restarts with the read_only of its last role (a replica's, if
	// it was one before): it is the master.
	for _, q := range []string{harness.Pick("SET GLOBAL read_only = 0", "SET GLOBAL super_read_only = 0"), "SET GLOBAL read_only = 0"} {
		if _, err := env.InstanceDB(t, name).Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	harness.WaitFor(t, name+" back up, its replicas replicating again", 30*time.Second, func() bool {
		for n, b := range backends(t, adm) {
			if b["state"] != "up" || (n != name && b["replication"] != "io=Yes sql=Yes") {
				return false
			}
		}
		return true
	})
}

// TestCooldownOnlyAfterAutomaticFailover: a switchover does not start the
// cooldown (the new master's crash is failed over at once); an automatic
// failover does, and the blocked failover shows in SHOW BACKENDS, SHOW
// CLUSTERS, /api/status and the metrics; admin FAILOVER still works.
func TestCooldownOnlyAfterAutomaticFailover(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Failover: "  cooldown: 1h\n  hold_timeout: 15s\n"})
	adm := p.Admin(t)
	sw := harness.AdminRows(t, adm, "SWITCHOVER")
	switched := sw[0]["new_master"]
	old, neu, took := env.KillMaster(t, adm)
	if old != switched {
		t.Fatalf("killed %s, the switchover made %s master", old, switched)
	}
	t.Logf("switchover to %s, then its kill: failed over to %s in %s (no cooldown after a switchover)", switched, neu, took.Round(time.Millisecond))
	env.RestartAsReplica(t, adm, old)

	// An automatic failover just happened: the next dead master stays.
	dead := masterName(t, adm)
	if err := env.Sandbox.Kill(dead, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the failover to be reported blocked by the cooldown", 10*time.Second, func() bool {
		return strings.Contains(backends(t, adm)[dead]["state"], "failover-blocked")
	})
	if c := harness.AdminRows(t, adm, "SHOW CLUSTERS"); c[0]["failover_blocked"] != "cooldown" || !strings.Contains(c[0]["failover_blocked_reason"], "failover.cooldown") {
		t.Errorf("SHOW CLUSTERS: %v", c)
	}
	if st := apiStatus(t, p); st.Clusters[0].FailoverBlockedKind != "cooldown" {
		t.Errorf("/api/status: %+v", st.Clusters[0])
	}
	if m := p.Scrape(t); m["switchyard_failover_blocked,cluster=default,reason=cooldown"] != 1 {
		t.Errorf("metric switchyard_failover_blocked{reason=cooldown}: %v", m["switchyard_failover_blocked,cluster=default,reason=cooldown"])
	}
	if got := masterName(t, adm); got != dead {
		t.Fatalf("failed over to %s within the cooldown", got)
	}
	rows := harness.AdminRows(t, adm, "FAILOVER")
	t.Logf("admin FAILOVER within the cooldown: %v", rows)
	if masterName(t, adm) == dead {
		t.Fatal("admin FAILOVER did not replace the dead master")
	}
	env.RestartAsReplica(t, adm, dead)
}

// statusClusters is the part of /api/status these tests read.
type statusClusters struct {
	Clusters []struct {
		Name                string `json:"name"`
		FailoverBlocked     string `json:"failover_blocked"`
		FailoverBlockedKind string `json:"failover_blocked_kind"`
	} `json:"clusters"`
}

func apiStatus(t *testing.T, p *harness.Proxy) statusClusters {
	t.Helper()
	resp, err := p.HTTPGet("/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st statusClusters
	if err := json.Unmarshal(body, &st); err != nil || len(st.Clusters) == 0 {
		t.Fatalf("/api/status: %v %s", err, body)
	}
	return st
}
