package failover

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// TestProcedure runs failovers and switchovers against fake servers and
// checks what was done to which server, in which order, and what it left:
// who takes writes, whom the replicas follow, which master the cluster
// routes to. Above all: never two writable servers.
func TestProcedure(t *testing.T) {
	cases := []struct {
		name    string
		planned bool
		setup   func(f *fakeServers, c *fakeCoordinator)
		// wantErr is a substring of the error ("" = success).
		wantErr      string
		wantChanges  []string
		wantMaster   string
		wantWritable []string
		wantFollows  map[string]string // server address → master address
		// wantDetached: replicas whose replication a failover stopped
		// in the background, ahead of repointing them.
		wantDetached []string
	}{
		{
			name:         "failover of a dead master: the most advanced replica, the others follow it",
			setup:        func(f *fakeServers, c *fakeCoordinator) { f.servers["a1"].down = true },
			wantChanges:  []string{"Fence db1", "Promote db2", "Follow db3"},
			wantDetached: []string{"db3"},
			wantMaster:   "db2",
			wantWritable: []string{"db2"},
			wantFollows:  map[string]string{"a3": "a2"},
		},
		{
			name:         "switchover: old master fenced, candidate promoted, everyone follows it",
			planned:      true,
			wantChanges:  []string{"Fence db1", "Promote db2", "Follow db1", "Follow db3"},
			wantMaster:   "db2",
			wantWritable: []string{"db2"},
			wantFollows:  map[string]string{"a1": "a2", "a3": "a2"},
		},
		{
			name:  "forced failover, promote fails after the candidate became writable: demoted before the old master is unfenced",
			setup: func(f *fakeServers, c *fakeCoordinator) { f.halfway["db2"] = true },
			wantChanges: []string{"Fence db1", "Promote db2",
				"Fence db2", "Follow db2", "Unfence db1", "Follow db3"},
			wantDetached: []string{"db3"},
			wantErr:      "promote failed",
			wantMaster:   "db1",
			wantWritable: []string{"db1"},
			wantFollows:  map[string]string{"a2": "a1", "a3": "a1"},
		},
		{
			name: "forced failover, half-way promote and the candidate cannot be demoted: the old master stays fenced",
			setup: func(f *fakeServers, c *fakeCoordinator) {
				f.halfway["db2"] = true
				f.fail["Fence db2"] = errors.New("dial tcp a2: i/o timeout")
			},
			wantChanges:  []string{"Fence db1", "Promote db2", "Fence db2", "Follow db3"},
			wantDetached: []string{"db3"},
			wantFollows:  map[string]string{"a3": "a1"},
			wantErr:      "db1 stays read-only",
			wantMaster:   "db1",
			wantWritable: []string{"db2"},
		},
		{
			name:         "switchover, promote fails half-way: same undo, nothing lost",
			planned:      true,
			setup:        func(f *fakeServers, c *fakeCoordinator) { f.halfway["db2"] = true },
			wantChanges:  []string{"Fence db1", "Promote db2", "Fence db2", "Follow db2", "Unfence db1"},
			wantErr:      "promote failed",
			wantMaster:   "db1",
			wantWritable: []string{"db1"},
			wantFollows:  map[string]string{"a2": "a1", "a3": "a1"},
		},
		{
			name:         "switchover, the new master cannot be published: every step undone, newest first",
			planned:      true,
			setup:        func(f *fakeServers, c *fakeCoordinator) { c.commitErr = errors.New("etcd: context deadline exceeded") },
			wantChanges:  []string{"Fence db1", "Promote db2", "Fence db2", "Follow db2", "Unfence db1"},
			wantErr:      "publish the new master",
			wantMaster:   "db1",
			wantWritable: []string{"db1"},
			wantFollows:  map[string]string{"a2": "a1", "a3": "a1"},
		},
		{
			name:  "forced failover, the new master cannot be published: replicas repointed back, candidate demoted, old master unfenced",
			setup: func(f *fakeServers, c *fakeCoordinator) { c.commitErr = errors.New("etcd: context deadline exceeded") },
			wantChanges: []string{"Fence db1", "Promote db2", "Follow db3",
				"Fence db2", "Follow db2", "Unfence db1", "Follow db3"},
			wantDetached: []string{"db3"},
			wantErr:      "publish the new master",
			wantMaster:   "db1",
			wantWritable: []string{"db1"},
			wantFollows:  map[string]string{"a2": "a1", "a3": "a1"},
		},
		{
			name:         "switchover, the fence fails: undone, nothing else touched",
			planned:      true,
			setup:        func(f *fakeServers, c *fakeCoordinator) { f.fail["Fence db1"] = errors.New("lock wait timeout") },
			wantChanges:  []string{"Fence db1", "Unfence db1"},
			wantErr:      "lock wait timeout",
			wantMaster:   "db1",
			wantWritable: []string{"db1"},
		},
		{
			name: "failover, the candidate cannot apply its relay log: nothing promoted",
			setup: func(f *fakeServers, c *fakeCoordinator) {
				f.servers["a1"].down = true
				f.fail["WaitApplied db2"] = errors.New("did not apply 0-1-10 within 1s")
			},
			wantChanges:  []string{"Fence db1", "Unfence db1", "Follow db3"},
			wantDetached: []string{"db3"},
			wantErr:      "nothing promoted",
			wantMaster:   "db1",
			wantWritable: nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServers()
			f.add("db1", "a1", "", "0-1-10")
			f.add("db2", "a2", "a1", "0-1-10")
			f.add("db3", "a3", "a1", "0-1-9")
			coord := &fakeCoordinator{}
			if tc.setup != nil {
				tc.setup(f, coord)
			}
			cluster := backend.NewCluster("default", []backend.Server{{Name: "db1", Addr: "a1"}, {Name: "db2", Addr: "a2"}, {Name: "db3", Addr: "a3"}},
				"db1", backend.PoolOptions{}, nil)
			e := New(cluster, f, Settings{ApplyTimeout: time.Second, Interval: time.Second, Hooks: Hooks{Timeout: time.Second},
				Servers: []ServerConfig{{Name: "db1", Addr: "a1"}, {Name: "db2", Addr: "a2"}, {Name: "db3", Addr: "a3"}}}, zap.NewNop())
			e.SetCoordinator(coord)
			var rec *Record
			var err error
			if tc.planned {
				rec, err = e.Switchover(context.Background(), "")
			} else {
				rec, err = e.Failover(context.Background(), "")
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("failed: %v\nsteps: %+v", err, rec.Steps)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			}
			if got := sortedRuns(f.changes()); !slices.Equal(got, tc.wantChanges) {
				t.Errorf("changes\n got %q\nwant %q", got, tc.wantChanges)
			}
			f.mu.Lock()
			detached := append([]string(nil), f.detached...)
			f.mu.Unlock()
			if slices.Sort(detached); !slices.Equal(detached, tc.wantDetached) {
				t.Errorf("detached %q, want %q", detached, tc.wantDetached)
			}
			topo := cluster.Topology()
			if topo.Master != tc.wantMaster {
				t.Errorf("cluster routes writes to %s, want %s", topo.Master, tc.wantMaster)
			}
			if topo.Holding {
				t.Error("writes still held after the change ended")
			}
			if got := f.writable(); !slices.Equal(got, tc.wantWritable) {
				t.Errorf("writable servers %q, want %q", got, tc.wantWritable)
			}
			if len(f.writable()) > 1 {
				t.Errorf("two writable masters: %q", f.writable())
			}
			for addr, master := range tc.wantFollows {
				if got := f.follows(addr); got != master {
					t.Errorf("%s follows %q, want %q", addr, got, master)
				}
			}
			if tc.wantErr != "" && coord.aborted != 1 {
				t.Errorf("coordinator told to forget the change %d times, want once", coord.aborted)
			}
		})
	}
}

// sortedRuns sorts each run of consecutive Follow calls: the servers of
// one repoint step are repointed in parallel, in no particular order.
func sortedRuns(calls []string) []string {
	out := append([]string(nil), calls...)
	for i := 0; i < len(out); {
		j := i
		for j < len(out) && strings.HasPrefix(out[j], "Follow ") {
			j++
		}
		slices.Sort(out[i:j])
		i = max(j, i+1)
	}
	return out
}

// TestTimeoutsDefaults: settings without timeouts still bound every step.
func TestTimeoutsDefaults(t *testing.T) {
	got := Timeouts{Fence: time.Minute}.withDefaults()
	want := DefaultTimeouts()
	want.Fence = time.Minute
	if got != want {
		t.Fatalf("got %+v want %+v", got, want)
	}
}

// TestRejoinWaitsForARunningChange: mid-change, a promoted candidate looks
// like a stray (no replication source, not yet the topology's master);
// the rejoin loop must leave it alone until the change is over.
func TestRejoinWaitsForARunningChange(t *testing.T) {
	f := newFakeServers()
	f.add("db1", "a1", "", "0-1-10")
	f.add("db2", "a2", "", "0-1-10") // promoted, not yet published
	cluster := backend.NewCluster("default", []backend.Server{{Name: "db1", Addr: "a1"}, {Name: "db2", Addr: "a2"}}, "db1", backend.PoolOptions{}, nil)
	cluster.Topo.SetHealth("db1", backend.Health{Up: true, CheckedAt: time.Now()})
	cluster.Topo.SetHealth("db2", backend.Health{Up: true, CheckedAt: time.Now()})
	e := New(cluster, f, Settings{Interval: time.Millisecond, Servers: []ServerConfig{{Name: "db1", Addr: "a1"}, {Name: "db2", Addr: "a2"}}}, zap.NewNop())
	e.mu.Lock() // a change is running
	e.rejoinStrays(context.Background())
	e.mu.Unlock()
	if got := f.changes(); len(got) != 0 {
		t.Fatalf("rejoin acted during a change: %q", got)
	}
	e.rejoinStrays(context.Background()) // no change running: db2 is a stray now
	if got := f.changes(); len(got) == 0 || got[0] != "Fence db2" {
		t.Fatalf("rejoin after the change: %q", got)
	}
}

// TestSwitchoverDrainsTransactions: open transactions get the drain time
// to finish; the record says how many did and how many were left.
func TestSwitchoverDrainsTransactions(t *testing.T) {
	f := newFakeServers()
	f.add("db1", "a1", "", "0-1-10")
	f.add("db2", "a2", "a1", "0-1-10")
	cluster := backend.NewCluster("default", []backend.Server{{Name: "db1", Addr: "a1"}, {Name: "db2", Addr: "a2"}}, "db1", backend.PoolOptions{}, nil)
	e := New(cluster, f, Settings{ApplyTimeout: time.Second, Interval: time.Second, SwitchoverDrain: 300 * time.Millisecond,
		Servers: []ServerConfig{{Name: "db1", Addr: "a1"}, {Name: "db2", Addr: "a2"}}}, zap.NewNop())
	cluster.Gate.TxOpened()
	cluster.Gate.TxOpened()
	go func() {
		// One transaction commits once new ones are held.
		for !cluster.Topology().Holding {
			time.Sleep(time.Millisecond)
		}
		cluster.Gate.TxClosed()
	}()
	// (Drained counts the transactions open when writes were held.)
	rec, err := e.Switchover(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Drained != 1 || rec.LeftOpen != 1 {
		t.Errorf("drained %d, left open %d; want 1 and 1", rec.Drained, rec.LeftOpen)
	}
	for _, s := range rec.Steps {
		if s.Name == "drain" && s.Duration < 300*time.Millisecond {
			t.Errorf("drain took %s: it did not wait for the transaction still open", s.Duration)
		}
	}
	if cluster.Topology().Master != "db2" {
		t.Errorf("master %s after the switchover", cluster.Topology().Master)
	}
}

// TestRejoinFollowsAChangeMadeElsewhere: the master this instance routes
// to was made a replica of a writable server outside it (an operator, an
// uncoordinated instance): that server is the master now, and is not
// fenced as a stray (which left every server read-only, replicating in a
// circle).
func TestRejoinFollowsAChangeMadeElsewhere(t *testing.T) {
	f := newFakeServers()
	f.add("db1", "10.0.0.1:3306", "10.0.0.2:3306", "0-2-10")
	f.add("db2", "10.0.0.2:3306", "", "0-2-10")
	cluster := backend.NewCluster("default", []backend.Server{{Name: "db1", Addr: "10.0.0.1:3306"}, {Name: "db2", Addr: "10.0.0.2:3306"}}, "db1", backend.PoolOptions{}, nil)
	cluster.Topo.SetHealth("db1", backend.Health{Up: true, ReadOnly: true, CheckedAt: time.Now(),
		Replica: &backend.ReplicaStatus{MasterHost: "10.0.0.2", MasterPort: 3306, IORunning: true, SQLRunning: true}})
	cluster.Topo.SetHealth("db2", backend.Health{Up: true, CheckedAt: time.Now()})
	e := New(cluster, f, Settings{Interval: time.Millisecond, Servers: []ServerConfig{{Name: "db1", Addr: "10.0.0.1:3306"}, {Name: "db2", Addr: "10.0.0.2:3306"}}}, zap.NewNop())
	e.rejoinStrays(context.Background())
	if got := f.changes(); len(got) != 0 {
		t.Fatalf("the new master was treated as a stray: %q", got)
	}
	if m := cluster.Topology().Master; m != "db2" {
		t.Fatalf("routes writes to %s, want db2", m)
	}
}
