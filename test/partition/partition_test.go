// Package partition_test cuts the master's network link (not a kill): the
// master runs in a network namespace the test creates, joined to the root
// namespace by a veth pair; replicas and the proxy stay on loopback.
package partition_test

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/sandbox"
	"github.com/switchyard/switchyard/test/harness"
)

// Addresses of the test's own namespace (no traffic leaves this machine).
const (
	netns    = "sypart-master"
	vethRoot = "sypart0"
	vethNS   = "sypart1"
	rootIP   = "10.231.7.1"
	masterIP = "10.231.7.2"
)

var env *harness.Env

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func setupNetns() error {
	_ = exec.Command("ip", "netns", "del", netns).Run() // leftovers of an aborted run
	_ = exec.Command("ip", "link", "del", vethRoot).Run()
	for _, args := range [][]string{
		{"netns", "add", netns},
		{"link", "add", vethRoot, "type", "veth", "peer", "name", vethNS},
		{"link", "set", vethNS, "netns", netns},
		{"addr", "add", rootIP + "/30", "dev", vethRoot},
		{"link", "set", vethRoot, "up"},
		{"netns", "exec", netns, "ip", "addr", "add", masterIP + "/30", "dev", vethNS},
		{"netns", "exec", netns, "ip", "link", "set", vethNS, "up"},
		{"netns", "exec", netns, "ip", "link", "set", "lo", "up"},
	} {
		if err := ip(args...); err != nil {
			return err
		}
	}
	return nil
}

func teardownNetns() {
	_ = exec.Command("ip", "link", "del", vethRoot).Run()
	_ = exec.Command("ip", "netns", "del", netns).Run()
}

func TestMain(m *testing.M) {
	if err := setupNetns(); err != nil {
		fmt.Fprintln(os.Stderr, "network namespace setup (needs root and iproute2):", err)
		os.Exit(1)
	}
	var err error
	// Replicas listen on the root end of the veth pair, so the master's
	// namespace can reach them (it will replicate from one of them later).
	env, err = harness.SetupPlaced(2, 9, map[string]sandbox.Placement{
		"master":   {Netns: netns, Host: masterIP},
		"replica1": {Host: rootIP}, "replica2": {Host: rootIP},
	})
	if err != nil {
		teardownNetns()
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
	code := m.Run()
	env.Teardown()
	teardownNetns()
	os.Exit(code)
}

func status(t *testing.T, adm *sql.DB, key string) string {
	for _, r := range harness.AdminRows(t, adm, "SHOW STATUS") {
		if r["variable"] == key {
			return r["value"]
		}
	}
	return ""
}

func backend(t *testing.T, adm *sql.DB, name string) map[string]string {
	for _, r := range harness.AdminRows(t, adm, "SHOW BACKENDS") {
		if r["name"] == name {
			return r
		}
	}
	return nil
}

func TestMasterLinkCut(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Failover: "  cooldown: 1s\n  hold_timeout: 40s\n"})
	t.Cleanup(func() {
		if t.Failed() {
			log := p.Log()
			if len(log) > 15000 {
				log = log[len(log)-15000:]
			}
			t.Log(log)
		}
	})
	adm := p.Admin(t)
	w := harness.StartWriters(t, p, 4, "part", "w")
	w.WaitMore(t, 100)

	cut := time.Now()
	if err := ip("link", "set", vethRoot, "down"); err != nil {
		t.Fatal(err)
	}
	linkUp := false
	defer func() {
		if !linkUp {
			_ = ip("link", "set", vethRoot, "up")
		}
	}()
	// While the replicas' IO threads still believe in the master
	// (slave_net_timeout 10 s), the proxy must not fail over.
	sawUnreachable := false
	harness.WaitFor(t, "a failover after the master's link was cut", 30*time.Second, func() bool {
		if strings.Contains(backend(t, adm, "master")["state"], "unreachable-from-proxy") {
			sawUnreachable = true
		}
		return status(t, adm, "master") != "master"
	})
	took := time.Since(cut)
	newMaster := status(t, adm, "master")
	t.Logf("failed over to %s %s after the cut (the proxy saw the master unreachable while replicas still agreed: %v)",
		newMaster, took.Round(time.Millisecond), sawUnreachable)
	if !sawUnreachable {
		t.Error("the proxy never waited for the replicas to agree (no unreachable-from-proxy phase)")
	}
	if took < 5*time.Second {
		t.Errorf("failover %s after the cut: before the replicas could have noticed", took)
	}
	// Writes go on against the new master.
	before := w.Acked()
	harness.WaitFor(t, "writes to resume on the new master", 10*time.Second, func() bool { return w.Acked() > before })

	// The link comes back: the old master is fenced and rejoined, or
	// reported diverged; either way it takes no more writes.
	if err := ip("link", "set", vethRoot, "up"); err != nil {
		t.Fatal(err)
	}
	linkUp = true
	harness.WaitFor(t, "the old master to rejoin or be reported diverged", 40*time.Second, func() bool {
		b := backend(t, adm, "master")
		if (b["role"] == "replica" && b["state"] == "up" && b["lag_seconds"] != "") || b["role"] == "diverged" {
			t.Logf("old master after the link returned: %s %s", b["role"], b["last_error"])
			return true
		}
		return false
	})
	w.WaitMore(t, 100)
	acked := w.Stop()
	old := env.InstanceDB(t, "master")
	// No statement sent through Switchyard after the cut may have run on
	// the isolated master (a retransmitted write arriving when the link
	// returns would show here). Allow the statements in flight at the cut.
	var late int
	if err := old.QueryRow("SELECT COUNT(*) FROM part.w WHERE sid = 1 AND ts > ?",
		cut.Add(500*time.Millisecond).Local().Format("2006-01-02 15:04:05.999999")).Scan(&late); err != nil {
		t.Fatal(err)
	}
	if late != 0 {
		t.Fatalf("%d writes reached the isolated old master after the cut", late)
	}
	// Every acknowledged write is on the new master.
	lost, _ := env.Lost(t, newMaster, "part", "w", acked)
	t.Logf("acknowledged %d writes, lost %d", len(acked), lost)
	if lost != 0 {
		t.Fatalf("%d acknowledged writes lost across the partition", lost)
	}
}
