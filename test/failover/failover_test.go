// Package failover_test kills real MariaDB servers (SIGKILL) under write
// load through the proxy and checks that no acknowledged write is lost.
package failover_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/sandbox"
	"github.com/switchyard/switchyard/test/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithSandbox(m, 2, 4, &env))
}

// failoverConfig is the proxy config used here: fast cooldown so several
// failovers can happen in one test.
const failoverConfig = "  cooldown: 1s\n  hold_timeout: 15s\n"

func startProxy(t *testing.T, o harness.ProxyOptions) *harness.Proxy {
	t.Helper()
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	o.Failover += failoverConfig
	p := env.StartProxy(t, o)
	t.Cleanup(func() {
		if t.Failed() {
			log := p.Log()
			path := filepath.Join(os.TempDir(), "switchyard-"+strings.ReplaceAll(t.Name(), "/", "_")+".log")
			_ = os.WriteFile(path, []byte(log), 0o644)
			if len(log) > 20000 {
				log = log[len(log)-20000:]
			}
			t.Logf("proxy log (tail; all of it in %s):\n%s", path, log)
		}
	})
	return p
}

// masterName asks the proxy which backend is the master.
func masterName(t *testing.T, adm *sql.DB) string {
	t.Helper()
	for _, r := range harness.AdminRows(t, adm, "SHOW STATUS") {
		if r["variable"] == "master" {
			return r["value"]
		}
	}
	t.Fatal("no master in SHOW STATUS")
	return ""
}

func backends(t *testing.T, adm *sql.DB) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, r := range harness.AdminRows(t, adm, "SHOW BACKENDS") {
		out[r["name"]] = r
	}
	return out
}

// assertAllPresent checks every acknowledged id is on the master, once.
func assertAllPresent(t *testing.T, master string, acked []int64) {
	t.Helper()
	lost, rows := env.Lost(t, master, "fo", "acks", acked)
	t.Logf("acknowledged %d writes, lost %d (rows on master %s: %d)", len(acked), lost, master, rows)
	if lost != 0 {
		t.Fatalf("%d acknowledged writes are missing on the new master", lost)
	}
}

func TestKillMasterUnderWriteLoadThreeTimes(t *testing.T) {
	p := startProxy(t, harness.ProxyOptions{})
	adm := p.Admin(t)
	w := harness.StartWriters(t, p, 8, "fo", "acks")
	w.WaitMore(t, 100)
	for cycle := 1; cycle <= 3; cycle++ {
		old, neu, took := env.KillMaster(t, adm)
		t.Logf("cycle %d: killed %s, new master %s after %s", cycle, old, neu, took.Round(time.Millisecond))
		// Writes resume through the same client connections.
		before := w.Acked()
		harness.WaitFor(t, "writes to resume", 15*time.Second, func() bool { return w.Acked() > before+50 })
		// Every other replica follows the new master.
		harness.WaitFor(t, "replicas to follow "+neu, 15*time.Second, func() bool {
			for name, b := range backends(t, adm) {
				if name != old && name != neu && (b["role"] != "replica" || b["state"] != "up") {
					return false
				}
			}
			return true
		})
		env.RestartAsReplica(t, adm, old)
	}
	acked := w.Stop()
	t.Logf("failed writes during the cycles: %d (%v)", w.Failed(), w.Errors())
	final := masterName(t, adm)
	assertAllPresent(t, final, acked)
	// All servers converge to the same GTID position.
	var positions map[string]string
	converged := func() bool {
		positions = map[string]string{}
		distinct := map[string]bool{}
		for _, in := range env.Sandbox.Instances {
			var pos string
			if err := env.InstanceDB(t, in.Name).QueryRow(harness.Flavor().GTIDPositionSQL()).Scan(&pos); err != nil {
				return false
			}
			positions[in.Name], distinct[pos] = pos, true
		}
		return len(distinct) == 1
	}
	for deadline := time.Now().Add(30 * time.Second); !converged(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("servers did not converge to one GTID position: %v\n%v", positions, harness.AdminRows(t, adm, "SHOW BACKENDS"))
		}
	}
	hist := harness.AdminRows(t, adm, "SHOW FAILOVERS")
	if len(hist) < 3 {
		t.Fatalf("SHOW FAILOVERS has %d entries", len(hist))
	}
	for _, h := range hist {
		if h["succeeded"] != "1" || !strings.Contains(h["steps"], "promote=") {
			t.Errorf("failover record: %v", h)
		}
	}
}

func TestMostAdvancedReplicaWinsAndNoMasterRespected(t *testing.T) {
	p := startProxy(t, harness.ProxyOptions{})
	adm := p.Admin(t)
	master := masterName(t, adm)
	var reps []string
	for _, in := range env.Sandbox.Instances {
		if in.Name != master {
			reps = append(reps, in.Name)
		}
	}
	// The replica first in config misses the last writes.
	first, second := reps[0], reps[1]
	if _, err := env.InstanceDB(t, first).Exec(harness.Pick("STOP SLAVE IO_THREAD", "STOP REPLICA IO_THREAD")); err != nil {
		t.Fatal(err)
	}
	db, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
	defer db.Close()
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS fo", "CREATE TABLE IF NOT EXISTS fo.adv (id INT PRIMARY KEY)", "REPLACE INTO fo.adv VALUES (1), (2), (3)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	harness.WaitFor(t, second+" to receive the writes", 10*time.Second, func() bool {
		var c int
		return env.InstanceDB(t, second).QueryRow("SELECT COUNT(*) FROM fo.adv").Scan(&c) == nil && c == 3
	})
	old, neu, _ := env.KillMaster(t, adm)
	if neu != second {
		t.Fatalf("promoted %s, want the most advanced replica %s (the other, %s, missed writes)", neu, second, first)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM fo.adv").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows after failover: %d %v", n, err)
	}
	// The lagging replica was repointed and catches up.
	harness.WaitFor(t, first+" to catch up", 15*time.Second, func() bool {
		var c int
		return env.InstanceDB(t, first).QueryRow("SELECT COUNT(*) FROM fo.adv").Scan(&c) == nil && c == 3
	})
	env.RestartAsReplica(t, adm, old)

	// Now mark the most advanced candidate no_master: it must not win.
	master = masterName(t, adm)
	var others []string
	for _, in := range env.Sandbox.Instances {
		if in.Name != master {
			others = append(others, in.Name)
		}
	}
	p.Stop()
	p2 := startProxy(t, harness.ProxyOptions{BackendExtra: map[string]string{others[1]: "no_master: true"}})
	adm2 := p2.Admin(t)
	old2, neu2, _ := env.KillMaster(t, adm2)
	if neu2 != others[0] {
		t.Fatalf("promoted %s; %s is no_master so %s had to win", neu2, others[1], others[0])
	}
	env.RestartAsReplica(t, adm2, old2)
}

// forwarder relays TCP to a server and can be cut: the proxy reaches the
// master through it while replicas connect directly.
type forwarder struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    atomic.Bool
}

func TestNoFailoverWhenOnlyTheProxyLosesTheMaster(t *testing.T) {
	master := ""
	{
		p := startProxy(t, harness.ProxyOptions{})
		master = masterName(t, p.Admin(t))
		p.Stop()
	}
	var addr string
	for _, in := range env.Sandbox.Instances {
		if in.Name == master {
			addr = in.Addr()
		}
	}
	f := newForwarder(t, addr)
	p := startProxy(t, harness.ProxyOptions{Addr: map[string]string{master: f.l.Addr().String()}})
	adm := p.Admin(t)
	epochBefore := status(t, adm, "epoch")
	f.setCut(true)
	harness.WaitFor(t, "the master to be reported unreachable from the proxy", 10*time.Second, func() bool {
		return strings.Contains(backends(t, adm)[master]["state"], "unreachable-from-proxy")
	})
	time.Sleep(2 * time.Second) // an observation window: no failover may happen in it
	if got := masterName(t, adm); got != master || status(t, adm, "epoch") != epochBefore {
		t.Fatalf("failed over to %s although every replica still replicates from %s", got, master)
	}
	f.setCut(false)
	harness.WaitFor(t, "the master to be reachable again", 10*time.Second, func() bool {
		return backends(t, adm)[master]["state"] == "up"
	})
}

func status(t *testing.T, adm *sql.DB, name string) string {
	for _, r := range harness.AdminRows(t, adm, "SHOW STATUS") {
		if r["variable"] == name {
			return r["value"]
		}
	}
	return ""
}

func TestSwitchoverUnderWriteLoad(t *testing.T) {
	p := startProxy(t, harness.ProxyOptions{})
	adm := p.Admin(t)
	w := harness.StartWriters(t, p, 8, "fo", "acks")
	w.WaitMore(t, 100)
	old := masterName(t, adm)
	rows := harness.AdminRows(t, adm, "SWITCHOVER")
	if len(rows) != 1 || rows[0]["old_master"] != old || rows[0]["new_master"] == old {
		t.Fatalf("switchover result: %v", rows)
	}
	neu := rows[0]["new_master"]
	w.WaitMore(t, 100) // writes go on on the new master
	acked := w.Stop()
	if w.Failed() != 0 {
		t.Fatalf("%d writes failed during the switchover: %v", w.Failed(), w.Errors())
	}
	assertAllPresent(t, neu, acked)
	rec := harness.AdminRows(t, adm, "SHOW FAILOVERS")
	last := rec[len(rec)-1]
	t.Logf("switchover steps: %s", last["steps"])
	harness.WaitFor(t, old+" to replicate from "+neu, 15*time.Second, func() bool {
		b := backends(t, adm)[old]
		return b["role"] == "replica" && b["state"] == "up"
	})
}

// The hook moves an address between network namespaces the test makes,
// one per backend; afterwards the address is in the new master's.
func TestHookMovesVirtualIP(t *testing.T) {
	const vip = "127.77.0.1/32"
	var nss []string
	for _, in := range env.Sandbox.Instances {
		ns := "syvip-" + in.Name
		run(t, "ip", "netns", "add", ns)
		nss = append(nss, ns)
		run(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	}
	t.Cleanup(func() {
		for _, ns := range nss {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	script, _ := filepath.Abs("../../conf/hooks/move-vip.sh")
	extra := fmt.Sprintf("hooks:\n  post_failover: VIP=%s VIP_DEV=lo VIP_NETNS_PREFIX=syvip- %s\n  post_switchover: VIP=%s VIP_DEV=lo VIP_NETNS_PREFIX=syvip- %s\n",
		vip, script, vip, script)
	p := startProxy(t, harness.ProxyOptions{Extra: extra})
	adm := p.Admin(t)
	master := masterName(t, adm)
	run(t, "ip", "netns", "exec", "syvip-"+master, "ip", "addr", "add", vip, "dev", "lo")
	old, neu, _ := env.KillMaster(t, adm)
	harness.WaitFor(t, "the VIP to move", 10*time.Second, func() bool {
		return hasAddr(t, "syvip-"+neu, vip) && !hasAddr(t, "syvip-"+old, vip)
	})
	env.RestartAsReplica(t, adm, old)
}

func hasAddr(t *testing.T, ns, addr string) bool {
	out, err := exec.Command("ip", "netns", "exec", ns, "ip", "-o", "addr", "show", "dev", "lo").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec %s: %v %s", ns, err, out)
	}
	return strings.Contains(string(out), strings.TrimSuffix(addr, "/32"))
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// Runs last: it leaves the old master diverged on purpose.
func TestZZOldMasterWithErrantTransactionIsNotRejoined(t *testing.T) {
	p := startProxy(t, harness.ProxyOptions{})
	adm := p.Admin(t)
	master := masterName(t, adm)
	for _, in := range env.Sandbox.Instances {
		if in.Name != master {
			if _, err := env.InstanceDB(t, in.Name).Exec(harness.Pick("STOP SLAVE IO_THREAD", "STOP REPLICA IO_THREAD")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A transaction only the master has (no replica receives it).
	m := env.InstanceDB(t, master)
	for _, q := range []string{harness.Pick("SET GLOBAL rpl_semi_sync_master_timeout = 100", "SET GLOBAL rpl_semi_sync_source_timeout = 100"), "CREATE DATABASE IF NOT EXISTS errant_db"} {
		if _, err := m.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old, neu, _ := env.KillMaster(t, adm)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Restarted without crash-recovery truncation, it keeps the errant GTID.
	if err := env.Sandbox.Start(ctx, old, "--read-only=ON"); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, old+" to be reported diverged", 20*time.Second, func() bool {
		b := backends(t, adm)[old]
		return b["role"] == "diverged" && strings.Contains(b["last_error"], "diverged")
	})
	b := backends(t, adm)[old]
	t.Logf("%s: %s", old, b["last_error"])
	var ro int
	if err := env.InstanceDB(t, old).QueryRow("SELECT @@read_only").Scan(&ro); err != nil || ro != 1 {
		t.Fatalf("diverged server is writable")
	}
	var io string
	rows := env.InstanceDB(t, old).QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'errant_db'")
	_ = rows.Scan(&io)
	if masterName(t, adm) != neu {
		t.Fatal("master changed again")
	}
}

var _ = sandbox.AppUser
