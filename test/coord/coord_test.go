// Package coord_test runs three Switchyard instances over one sandbox,
// coordinated by a real etcd (embedded in the test process).
package coord_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/test/harness"
)

var (
	env  *harness.Env
	etcd *harness.Etcd
)

func TestMain(m *testing.M) {
	dir, _ := os.MkdirTemp("", "switchyard-etcd-")
	defer os.RemoveAll(dir)
	var err error
	if etcd, err = harness.StartEtcd(dir); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		os.Exit(1)
	}
	env, err = harness.Setup(2, 10)
	if err != nil {
		etcd.Close()
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
	code := m.Run()
	env.Teardown()
	if etcd != nil {
		etcd.Close()
	}
	os.Exit(code)
}

// instances starts n coordinated proxies with their own prefix.
func instances(t *testing.T, n int, prefix, extra string) []*harness.Proxy {
	t.Helper()
	var ps []*harness.Proxy
	for i := 0; i < n; i++ {
		id := string(rune('a' + i))
		p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info",
			Failover: "  cooldown: 1s\n  hold_timeout: 30s\n",
			Extra:    etcd.CoordinationConfig(id, prefix) + extra})
		ps = append(ps, p)
		t.Cleanup(func() {
			if t.Failed() {
				log := p.Log()
				if len(log) > 8000 {
					log = log[len(log)-8000:]
				}
				t.Logf("instance %s log tail:\n%s", id, log)
			}
		})
	}
	return ps
}

// etcdHas reports whether key exists in the test's etcd.
func etcdHas(t *testing.T, key string) bool {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.URL}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	return err == nil && len(resp.Kvs) > 0
}

func statusOf(t *testing.T, p *harness.Proxy) map[string]string {
	adm, err := sql.Open("mysql", fmt.Sprintf("admin:admin@tcp(%s)/?timeout=2s", p.AdminAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	out := map[string]string{}
	for _, r := range harness.AdminRows(t, adm, "SHOW STATUS") {
		out[r["variable"]] = r["value"]
	}
	return out
}

func failovers(t *testing.T, p *harness.Proxy) int {
	adm, _ := sql.Open("mysql", fmt.Sprintf("admin:admin@tcp(%s)/?timeout=2s", p.AdminAddr))
	defer adm.Close()
	n := 0
	for _, r := range harness.AdminRows(t, adm, "SHOW FAILOVERS") {
		if r["succeeded"] == "1" {
			n++
		}
	}
	return n
}

func allAgree(t *testing.T, ps []*harness.Proxy, not string) (string, bool) {
	master := ""
	for _, p := range ps {
		m := statusOf(t, p)["master"]
		if m == not || (master != "" && m != master) {
			return "", false
		}
		master = m
	}
	return master, true
}

func restartOld(t *testing.T, name string, ps []*harness.Proxy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.Sandbox.StartAsReplica(ctx, name); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, name+" to rejoin", 40*time.Second, func() bool {
		for _, p := range ps {
			adm, _ := sql.Open("mysql", fmt.Sprintf("admin:admin@tcp(%s)/?timeout=2s", p.AdminAddr))
			rows := harness.AdminRows(t, adm, "SHOW BACKENDS")
			adm.Close()
			for _, r := range rows {
				if r["name"] == name && r["role"] == "replica" && r["lag_seconds"] != "" {
					return true
				}
			}
		}
		return false
	})
}

func TestThreeInstancesOneFailover(t *testing.T) {
	ps := instances(t, 3, "/t1", "")
	harness.WaitFor(t, "a leader", 15*time.Second, func() bool {
		n := 0
		for _, p := range ps {
			if statusOf(t, p)["coordination"] == "etcd, leader" {
				n++
			}
		}
		return n == 1
	})
	old := statusOf(t, ps[0])["master"]
	var ws []*harness.Writers
	for _, p := range ps {
		ws = append(ws, harness.StartWriters(t, p, 2, "co", "w"))
	}
	for _, w := range ws {
		w.WaitMore(t, 20)
	}
	if err := env.Sandbox.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var newMaster string
	harness.WaitFor(t, "all three instances on one new master", 30*time.Second, func() bool {
		m, ok := allAgree(t, ps, old)
		newMaster = m
		return ok
	})
	for _, w := range ws {
		w.WaitMore(t, 20) // writes resume through every instance
	}
	var acked []int64
	for _, w := range ws {
		acked = append(acked, w.Stop()...)
	}
	total := 0
	for _, p := range ps {
		total += failovers(t, p)
	}
	if total != 1 {
		t.Fatalf("%d failovers happened across the instances, want exactly 1", total)
	}
	// Every instance writes to the new master.
	for i, p := range ps {
		db, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
		var id int
		err := db.QueryRow("/* master */ SELECT @@server_id").Scan(&id)
		db.Close()
		if err != nil || env.ServerName(id) != newMaster {
			t.Fatalf("instance %d writes to server %d (%v), want %s", i, id, err, newMaster)
		}
	}
	// No acknowledged write lost.
	lost, _ := env.Lost(t, newMaster, "co", "w", acked)
	t.Logf("new master %s; acknowledged %d writes through 3 instances, lost %d", newMaster, len(acked), lost)
	if lost != 0 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}
	adm, _ := sql.Open("mysql", fmt.Sprintf("admin:admin@tcp(%s)/", ps[0].AdminAddr))
	defer adm.Close()
	members := harness.AdminRows(t, adm, "SHOW CLUSTER")
	if len(members) != 3 {
		t.Fatalf("SHOW CLUSTER lists %d instances", len(members))
	}
	restartOld(t, old, ps)
}

func TestRacingForcedFailovers(t *testing.T) {
	ps := instances(t, 2, "/t2", "")
	master := statusOf(t, ps[0])["master"]
	target := ""
	for _, in := range env.Sandbox.Instances {
		if in.Name != master {
			target = in.Name
			break
		}
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			adm, _ := sql.Open("mysql", fmt.Sprintf("admin:admin@tcp(%s)/", p.AdminAddr))
			defer adm.Close()
			_, errs[i] = adm.Exec("FAILOVER TO '" + target + "'")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if !strings.Contains(err.Error(), "changed the topology first") && !strings.Contains(err.Error(), "in progress") {
			t.Errorf("loser's error does not say it lost the race: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d forced failovers succeeded (errors %v), want exactly 1", won, errs)
	}
	harness.WaitFor(t, "both instances on "+target, 10*time.Second, func() bool {
		m, ok := allAgree(t, ps, master)
		return ok && m == target
	})
	harness.WaitFor(t, master+" to rejoin", 40*time.Second, func() bool {
		adm, _ := sql.Open("mysql", fmt.Sprintf("admin:admin@tcp(%s)/", ps[0].AdminAddr))
		defer adm.Close()
		for _, r := range harness.AdminRows(t, adm, "SHOW BACKENDS") {
			if r["name"] == master && r["role"] == "replica" && r["lag_seconds"] != "" {
				return true
			}
		}
		return false
	})
}

func leaderIndex(t *testing.T, ps []*harness.Proxy) int {
	for i, p := range ps {
		if statusOf(t, p)["coordination"] == "etcd, leader" {
			return i
		}
	}
	return -1
}

// The leader dies in the middle of a failover (its pre-failover hook holds
// it after the change is recorded in etcd): another instance becomes
// leader, clears the dead leader's record and completes the failover.
func TestLeaderKilledDuringFailover(t *testing.T) {
	ps := instances(t, 3, "/t3", "hooks:\n  pre_failover: sleep 4\n")
	harness.WaitFor(t, "a leader", 15*time.Second, func() bool { return leaderIndex(t, ps) >= 0 })
	li := leaderIndex(t, ps)
	old := statusOf(t, ps[li])["master"]
	if err := env.Sandbox.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The change is recorded in etcd before the 4 s hook starts: kill the
	// leader while it runs.
	harness.WaitFor(t, "the leader to record the failover in etcd", 10*time.Second, func() bool {
		return etcdHas(t, "/t3/operation")
	})
	if err := syscall.Kill(ps[li].Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var rest []*harness.Proxy
	for i, p := range ps {
		if i != li {
			rest = append(rest, p)
		}
	}
	harness.WaitFor(t, "the surviving instances to complete the failover", 60*time.Second, func() bool {
		_, ok := allAgree(t, rest, old)
		return ok
	})
	// The new topology is published a moment before the engine records
	// the change in its history: wait for the record, then count.
	total := 0
	harness.WaitFor(t, "the failover in the survivors' history", 10*time.Second, func() bool {
		total = 0
		for _, p := range rest {
			total += failovers(t, p)
		}
		return total >= 1
	})
	if total != 1 {
		t.Fatalf("%d failovers completed by the surviving instances, want 1", total)
	}
	restartOld(t, old, rest)
}

// TestFailedStartLeavesNothingBehind: a start that fails after joining
// etcd (here the status page's port is taken) exits non-zero saying why,
// and leaves nothing behind: its registration in etcd is revoked at once,
// not when its lease would have expired (a minute here).
func TestFailedStartLeavesNothingBehind(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p, err := env.ProxyConfig(harness.ProxyOptions{LogLevel: "info",
		Extra: strings.Replace(etcd.CoordinationConfig("doomed", "/t5"), "session_ttl: 3s", "session_ttl: 60s", 1)})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(p.ConfigPath)
	cfg = []byte(strings.Replace(string(cfg), "http:\n  listen: "+p.HTTPAddr, "http:\n  listen: "+taken.Addr().String(), 1))
	if err := os.WriteFile(p.ConfigPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, env.Binary, "run", "--config", p.ConfigPath).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(string(out), taken.Addr().String()) {
		t.Fatalf("start with a taken port: %v\n%s", err, out)
	}
	if etcdHas(t, "/t5/instances/doomed") {
		t.Fatalf("the failed instance is still registered in etcd:\n%s", out)
	}
	for _, port := range []string{p.Addr, p.AdminAddr} {
		if c, err := net.DialTimeout("tcp", port, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts after the failed start", port)
		}
	}
}

// Runs last: it stops etcd. Instances cut off from etcd keep serving with
// the topology they knew, say so, and never promote anything.
func TestZZPartitionedFromEtcdDoesNotPromote(t *testing.T) {
	ps := instances(t, 3, "/t4", "")
	harness.WaitFor(t, "a leader", 15*time.Second, func() bool { return leaderIndex(t, ps) >= 0 })
	old := statusOf(t, ps[0])["master"]
	etcd.Close()
	etcd = nil
	harness.WaitFor(t, "every instance to notice etcd is gone", 15*time.Second, func() bool {
		for _, p := range ps {
			if !strings.Contains(statusOf(t, p)["coordination"], "unreachable") {
				return false
			}
		}
		return true
	})
	for _, p := range ps {
		resp, err := http.Get("http://" + p.HTTPAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/readyz is %d without etcd", resp.StatusCode)
		}
		db, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
		var x int
		err = db.QueryRow("SELECT 1").Scan(&x)
		db.Close()
		if err != nil {
			t.Fatalf("instance stopped serving without etcd: %v", err)
		}
	}
	if err := env.Sandbox.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = env.Sandbox.Start(ctx, old)
	}()
	time.Sleep(8 * time.Second) // an observation window: nothing may be promoted in it
	for i, p := range ps {
		if m := statusOf(t, p)["master"]; m != old {
			t.Fatalf("instance %d promoted %s without etcd", i, m)
		}
	}
	for _, in := range env.Sandbox.ReplicaInstances() {
		if in.Name == old {
			continue
		}
		db, _ := in.DB()
		var ro int
		err := db.QueryRow("SELECT @@read_only").Scan(&ro)
		db.Close()
		if err == nil && ro != 1 {
			t.Fatalf("%s was made writable without etcd", in.Name)
		}
	}
	// SIGTERM ends every instance, leader and followers alike, within the
	// drain timeout (5 s in the harness) plus a few seconds, although etcd
	// never answers their resignation.
	for i, p := range ps {
		took, err := p.StopTimed(60 * time.Second)
		if err != nil || took > 10*time.Second {
			t.Fatalf("instance %d took %v to stop without etcd: %v", i, took, err)
		}
		t.Logf("instance %d stopped in %v without etcd", i, took)
	}
}
