package failover

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// engineWith is an engine over db1 (master, a1) and replicas db2, db3.
func engineWith(t *testing.T, set Settings) (*Engine, *fakeServers, *backend.Cluster) {
	t.Helper()
	f := newFakeServers()
	f.add("db1", "a1", "", "0-1-10")
	f.add("db2", "a2", "a1", "0-1-10")
	f.add("db3", "a3", "a1", "0-1-9")
	cluster := backend.NewCluster("c1", []backend.Server{{Name: "db1", Addr: "a1"}, {Name: "db2", Addr: "a2"}, {Name: "db3", Addr: "a3"}},
		"db1", backend.PoolOptions{}, nil)
	set.ApplyTimeout, set.Interval, set.FailCount, set.Hooks = time.Second, time.Second, 1, Hooks{Timeout: time.Second}
	set.Servers = []ServerConfig{{Name: "db1", Addr: "a1"}, {Name: "db2", Addr: "a2"}, {Name: "db3", Addr: "a3"}}
	return New(cluster, f, set, zap.NewNop()), f, cluster
}

// masterDies makes the topology's master dead, as the monitor reports it.
func masterDies(f *fakeServers, c *backend.Cluster) {
	t := c.Topology()
	for addr, s := range f.servers {
		if s.name == t.Master {
			s.down = true
			for _, r := range f.servers {
				if r.follows == addr {
					r.follows = "" // its IO thread lost the master
					r.writable = false
				}
			}
		}
	}
	c.Topo.SetHealth(t.Master, backend.Health{Up: false, Refused: true, Failures: 1})
}

// TestCooldownOnlyAfterAutomaticFailovers: a switchover or an operator's
// FAILOVER does not switch automatic failover off; an automatic failover
// does, for failover.cooldown, and says so.
func TestCooldownOnlyAfterAutomaticFailovers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(e *Engine) error
		wantFO bool // the dead master is replaced automatically
	}{
		{"after a switchover", func(e *Engine) error { _, err := e.Switchover(context.Background(), "db2"); return err }, true},
		{"after an operator's failover", func(e *Engine) error { _, err := e.Failover(context.Background(), "db2"); return err }, true},
		{"after an automatic failover", func(e *Engine) error {
			masterDies(e.act.(*fakeServers), e.cluster)
			e.tick(context.Background())
			if m, _ := e.cluster.Topo.Master(); m == "db1" {
				t.Fatal("the first automatic failover did not happen")
			}
			return nil
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, f, c := engineWith(t, Settings{Enabled: true, Cooldown: time.Hour})
			if err := tc.before(e); err != nil {
				t.Fatal(err)
			}
			before, _ := c.Topo.Master()
			e.lastChange.Store(0) // rejoin's pause is not what this test is about
			masterDies(f, c)
			e.tick(context.Background())
			after, _ := c.Topo.Master()
			if (after != before) != tc.wantFO {
				t.Fatalf("master %s → %s; want a failover: %v", before, after, tc.wantFO)
			}
			b, blocked := e.Blocked(), c.Topology().FailoverBlocked
			if tc.wantFO && (b.Kind != "" || blocked != "") {
				t.Errorf("blocked %+v %q after a failover that happened", b, blocked)
			}
			if !tc.wantFO && (b.Kind != "cooldown" || !strings.Contains(blocked, "failover.cooldown")) {
				t.Errorf("blocked %+v, topology says %q; want the cooldown named", b, blocked)
			}
		})
	}
}

// TestBlockedReasons: every reason a dead master stays is in the
// topology and in Blocked; a master back up clears it.
func TestBlockedReasons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		set    Settings
		setup  func(f *fakeServers)
		kind   string
		reason string
	}{
		{"disabled", Settings{Enabled: false}, nil, "disabled", "failover.enabled: false"},
		{"a replica still receives from the master", Settings{Enabled: true}, func(f *fakeServers) {
			f.servers["a2"].follows = "a1"
			f.servers["a1"].down = false
		}, "unconfirmed", "only the proxy's path"},
		{"no replica may be promoted", Settings{Enabled: true}, func(f *fakeServers) {
			f.servers["a2"].down, f.servers["a3"].down = true, true
		}, "unconfirmed", "no replica is reachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, f, c := engineWith(t, tc.set)
			masterDies(f, c)
			if tc.setup != nil {
				tc.setup(f)
			}
			e.tick(context.Background())
			if b := e.Blocked(); b.Kind != tc.kind || !strings.Contains(b.Reason, tc.reason) || c.Topology().FailoverBlocked != b.Reason {
				t.Fatalf("blocked %+v (topology: %q), want %s saying %q", b, c.Topology().FailoverBlocked, tc.kind, tc.reason)
			}
			c.Topo.SetHealth("db1", backend.Health{Up: true})
			e.tick(context.Background())
			if b := e.Blocked(); b.Kind != "" || c.Topology().FailoverBlocked != "" {
				t.Fatalf("still blocked after the master came back: %+v", b)
			}
		})
	}
}

// TestStateFile: entries per cluster survive a reopen, history is bounded,
// and a file from before clusters is read as cluster "default".
func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	f, err := OpenStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var long []Record
	for i := range maxHistory + 30 {
		long = append(long, Record{Kind: "switchover", Epoch: uint64(i)})
	}
	if err := f.save("c1", persisted{Epoch: 7, Master: "db2", History: long}); err != nil {
		t.Fatal(err)
	}
	if err := f.save("c2", persisted{Epoch: 3, Master: "db5"}); err != nil {
		t.Fatal(err)
	}
	again, err := OpenStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := again.load("c1")
	c2, _ := again.load("c2")
	if c1.Epoch != 7 || c1.Master != "db2" || len(c1.History) != maxHistory || c1.History[0].Epoch != 30 || c2.Master != "db5" {
		t.Fatalf("reopened: c1 %d %s %d records; c2 %+v", c1.Epoch, c1.Master, len(c1.History), c2)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary file left behind: %v", entries)
	}
	old := filepath.Join(dir, "old.json")
	if err := os.WriteFile(old, []byte(`{"epoch": 12, "master": "db1", "history": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	legacy, err := OpenStateFile(old)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := legacy.load("default"); !ok || p.Epoch != 12 || p.Master != "db1" {
		t.Fatalf("a state file from before clusters: %+v %v", p, ok)
	}
	if err := os.WriteFile(old, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStateFile(old); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("a torn file: %v", err)
	}
	// A directory that is a file: no write can succeed, even as root.
	if _, err := OpenStateFile(filepath.Join(path, "state.json")); err == nil {
		t.Fatal("a state file that cannot be read reported no error")
	}
	bad := &StateFile{path: filepath.Join(path, "state.json"), clusters: map[string]persisted{}}
	if err := bad.save("c1", persisted{}); err == nil {
		t.Fatal("a state file that cannot be written reported no error")
	}
}
