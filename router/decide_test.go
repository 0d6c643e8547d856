package router

import (
	"errors"
	"testing"
	"time"

	"github.com/switchyard/switchyard/backend"
)

func lag(n int64) *int64 { return &n }

// fixture: m1 master, r1 (weight 1) and r2 (weight 3) healthy replicas at
// GTID 0-1-100, r3 lagging 60 s.
func fixture() *backend.Topology {
	pos, _ := backend.ParsePosition("0-1-100")
	rep := func(l *int64) *backend.ReplicaStatus {
		return &backend.ReplicaStatus{MasterHost: "h", IORunning: true, SQLRunning: true, SecondsBehind: l}
	}
	return &backend.Topology{Epoch: 3, Master: "m1", Servers: []backend.ServerState{
		{Server: backend.Server{Name: "m1", Weight: 1}, Health: backend.Health{Up: true, Current: pos}},
		{Server: backend.Server{Name: "r1", Weight: 1}, Health: backend.Health{Up: true, ReadOnly: true, Replica: rep(lag(0)), Applied: pos}},
		{Server: backend.Server{Name: "r2", Weight: 3}, Health: backend.Health{Up: true, ReadOnly: true, Replica: rep(lag(1)), Applied: pos}},
		{Server: backend.Server{Name: "r3", Weight: 5}, Health: backend.Health{Up: true, ReadOnly: true, Replica: rep(lag(60)), Applied: pos}},
	}}
}

var policy = Policy{Split: true, ReadYourWrites: true, MaxLag: 10 * time.Second, ReplicaFallbackToMaster: true}

func TestDecideRoutes(t *testing.T) {
	read := Class{Kind: KindRead, Tables: []string{"t"}}
	tests := []struct {
		name    string
		class   Class
		ctx     Context
		session func(*Session)
		topo    func(*backend.Topology)
		policy  func(*Policy)
		want    string // "replica" = r1 or r2
		wantErr error
	}{
		{"plain read", read, Context{}, nil, nil, nil, "replica", nil},
		{"write", Class{Kind: KindWrite}, Context{}, nil, nil, nil, "m1", nil},
		{"begin", Class{Kind: KindBegin}, Context{}, nil, nil, nil, "m1", nil},
		{"session statement", Class{Kind: KindSession}, Context{}, nil, nil, nil, "m1", nil},
		{"read in transaction", read, Context{TxOn: "m1"}, nil, nil, nil, "m1", nil},
		{"read-only transaction stays on its replica", read, Context{TxOn: "r2"}, nil, nil, nil, "r2", nil},
		{"begin read only", Class{Kind: KindBeginReadOnly}, Context{}, nil, nil, nil, "replica", nil},
		{"autocommit off", read, Context{AutocommitOff: true}, nil, nil, nil, "m1", nil},
		{"temp table read", read, Context{}, func(s *Session) { s.tempTables = map[string]bool{"t": true} }, nil, nil, "m1", nil},
		{"other table with temp tables around", Class{Kind: KindRead, Tables: []string{"u"}}, Context{}, func(s *Session) { s.tempTables = map[string]bool{"t": true} }, nil, nil, "replica", nil},
		{"master hint", Class{Kind: KindRead, Hint: HintMaster}, Context{}, nil, nil, nil, "m1", nil},
		{"replica hint on a write is ignored", Class{Kind: KindWrite, Hint: HintReplica}, Context{}, nil, nil, nil, "m1", nil},
		{"diagnostics follow the last statement", Class{Kind: KindLastBackend}, Context{LastTarget: "r1"}, nil, nil, nil, "r1", nil},
		{"split off", read, Context{}, nil, nil, func(p *Policy) { p.Split = false }, "m1", nil},
		{"no replica: master", read, Context{}, nil, func(t *backend.Topology) {
			for i := 1; i < len(t.Servers); i++ {
				t.Servers[i].Up = false
			}
		}, nil, "m1", nil},
		{"no replica: error", read, Context{}, nil, func(t *backend.Topology) {
			for i := 1; i < len(t.Servers); i++ {
				t.Servers[i].Offline = true
			}
		}, func(p *Policy) { p.ReplicaFallbackToMaster = false }, "", ErrNoReplica},
		{"sql thread stopped excluded", read, Context{}, nil, func(t *backend.Topology) {
			t.Servers[1].Replica = &backend.ReplicaStatus{IORunning: true}
			t.Servers[2].Offline = true
		}, nil, "m1", nil},
		{"no master", Class{Kind: KindWrite}, Context{}, nil, func(t *backend.Topology) { t.Master = "" }, nil, "", ErrNoMaster},
		{"master down: reconnecting replicas still serve reads", read, Context{}, nil, func(t *backend.Topology) {
			t.Servers[0].Up = false
			for i := 1; i < len(t.Servers); i++ {
				t.Servers[i].Replica = &backend.ReplicaStatus{IOState: "Connecting", SQLRunning: true}
			}
			t.Servers[3].Offline = true
		}, nil, "replica", nil},
		{"master up: IO thread stopped excludes", read, Context{}, nil, func(t *backend.Topology) {
			for i := 1; i < len(t.Servers); i++ {
				t.Servers[i].Replica = &backend.ReplicaStatus{IOState: "No", SQLRunning: true}
			}
		}, nil, "m1", nil},
		{"master down: a replica that missed what another received does not serve", read, Context{}, nil, func(t *backend.Topology) {
			t.Servers[0].Up = false
			behind, _ := backend.ParsePosition("0-1-98")
			t.Servers[2].Applied, t.Servers[3].Applied = behind, behind
		}, nil, "r1", nil},
		{"master down, failover blocked: a session setting runs on a replica", Class{Kind: KindSession, Reason: "session state", Pin: true}, Context{}, nil, func(t *backend.Topology) {
			t.Servers[0].Up = false
			t.FailoverBlocked = "failover disabled"
			t.Servers[3].Offline = true
		}, nil, "replica", nil},
		{"master down: a read under autocommit off runs on a replica", read, Context{AutocommitOff: true}, nil, func(t *backend.Topology) {
			t.Servers[0].Up = false
			t.Servers[3].Offline = true
		}, nil, "replica", nil},
		{"master down: a user variable still waits for the master", Class{Kind: KindSession, Reason: "user variable", State: ConnState{UserVars: true}}, Context{}, nil, func(t *backend.Topology) {
			t.Servers[0].Up = false
		}, nil, "m1", nil},
		{"master down: a write still goes to the master (to wait there)", Class{Kind: KindWrite}, Context{}, nil, func(t *backend.Topology) {
			t.Servers[0].Up = false
		}, nil, "m1", nil},
		{"avoided replicas", read, Context{}, func(s *Session) { s.Avoid("r1", time.Minute); s.Avoid("r2", time.Minute) }, nil, nil, "m1", nil},
		{"rule: a read to the master", read, Context{Route: RouteMaster, Rule: "r"}, nil, nil, nil, "m1", nil},
		{"rule: a read to a replica with the split off", read, Context{Route: RouteReplica, Rule: "r"}, nil, nil, func(p *Policy) { p.Split = false }, "replica", nil},
		{"rule cannot send a write to a replica", Class{Kind: KindWrite}, Context{Route: RouteReplica, Rule: "r"}, nil, nil, nil, "m1", nil},
		{"rule cannot move a transaction", read, Context{TxOn: "m1", Route: RouteReplica, Rule: "r"}, nil, nil, nil, "m1", nil},
		{"rule cannot send a temporary table's read to a replica", read, Context{Route: RouteReplica, Rule: "r"},
			func(s *Session) { s.tempTables = map[string]bool{"t": true} }, nil, nil, "m1", nil},
		{"rule cannot send session state to a replica", Class{Kind: KindSession, Reason: "user variable", State: ConnState{UserVars: true}},
			Context{Route: RouteReplica, Rule: "r"}, nil, nil, nil, "m1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSession()
			if tt.session != nil {
				tt.session(s)
			}
			topo := fixture()
			if tt.topo != nil {
				tt.topo(topo)
			}
			p := policy
			if tt.policy != nil {
				tt.policy(&p)
			}
			d, err := Decide(&tt.class, tt.ctx, s, topo, p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			switch tt.want {
			case "replica":
				if d.Target != "r1" && d.Target != "r2" {
					t.Fatalf("target %q, want a healthy replica", d.Target)
				}
			default:
				if d.Target != tt.want {
					t.Fatalf("target %q (%s), want %q", d.Target, d.Reason, tt.want)
				}
			}
		})
	}
}

// TestWeightsAndLagExclusion: per statement, and per session across many
// sessions, reads follow the weights and skip the lagging replica.
func TestWeightsAndLagExclusion(t *testing.T) {
	perStatement := policy
	perStatement.PerStatement = true
	for _, tc := range []struct {
		name string
		p    Policy
		next func(*Session) *Session
	}{
		{"per statement, one session", perStatement, func(s *Session) *Session { return s }},
		{"per session, many sessions", policy, func(*Session) *Session { return NewSession() }},
	} {
		t.Run(tc.name, func(t *testing.T) { checkWeights(t, tc.p, tc.next) })
	}
}

func checkWeights(t *testing.T, p Policy, next func(*Session) *Session) {
	s := NewSession()
	counts := map[string]int{}
	const n = 40000
	for i := 0; i < n; i++ {
		s = next(s)
		d, err := Decide(&Class{Kind: KindRead}, Context{}, s, fixture(), p)
		if err != nil {
			t.Fatal(err)
		}
		counts[d.Target]++
	}
	if counts["r3"] != 0 || counts["m1"] != 0 {
		t.Fatalf("lagging replica or master used: %v", counts)
	}
	ratio := float64(counts["r2"]) / float64(counts["r1"])
	if ratio < 2.7 || ratio > 3.3 {
		t.Fatalf("r2/r1 = %.2f, want about 3 (weights 3:1): %v", ratio, counts)
	}
}

// TestSessionKeepsItsReplica: with per-session choice a session reads
// from one replica until that one stops being usable or fails it.
func TestSessionKeepsItsReplica(t *testing.T) {
	s := NewSession()
	topo := fixture()
	first, err := Decide(&Class{Kind: KindRead}, Context{}, s, topo, policy)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if d, _ := Decide(&Class{Kind: KindRead}, Context{}, s, topo, policy); d.Target != first.Target {
			t.Fatalf("read %d went to %s, the session's replica is %s", i, d.Target, first.Target)
		}
	}
	other := map[string]string{"r1": "r2", "r2": "r1"}[first.Target]
	s.Avoid(first.Target, time.Minute)
	if d, _ := Decide(&Class{Kind: KindRead}, Context{}, s, topo, policy); d.Target != other {
		t.Fatalf("after the session's replica failed, read went to %s, want %s", d.Target, other)
	}
	// The new one is kept, even once the first is usable again.
	s.avoid = nil
	if d, _ := Decide(&Class{Kind: KindRead}, Context{}, s, topo, policy); d.Target != other {
		t.Fatalf("session moved back to %s", d.Target)
	}
	// A replica that goes down is left at once.
	down := fixture()
	down.Server(other).Up = false
	if d, _ := Decide(&Class{Kind: KindRead}, Context{}, s, down, policy); d.Target != first.Target {
		t.Fatalf("replica down: read went to %s, want %s", d.Target, first.Target)
	}
}

func TestReadYourWrites(t *testing.T) {
	s := NewSession()
	topo := fixture()
	// A write committed as 0-1-101: replicas are at 100, so a read must wait.
	s.Observe(&Class{Kind: KindWrite}, Outcome{Target: "m1", OK: true, LastGTID: "0-1-101"})
	d, _ := Decide(&Class{Kind: KindRead}, Context{}, s, topo, policy)
	if d.WaitGTID != "0-1-101" || d.Fallback != "m1" {
		t.Fatalf("want a wait for 0-1-101 with fallback m1, got %+v", d)
	}
	s.CaughtUp(d.Target)
	for i := 0; i < 50; i++ {
		d2, _ := Decide(&Class{Kind: KindRead}, Context{}, s, topo, policy)
		if d2.Target == d.Target && d2.WaitGTID != "" {
			t.Fatalf("replica known caught up still waits: %+v", d2)
		}
		if d2.Target != d.Target && d2.WaitGTID == "" {
			t.Fatalf("other replica not known caught up does not wait: %+v", d2)
		}
	}
	// Once the monitor sees the replica past the write, no wait at all.
	pos, _ := backend.ParsePosition("0-1-105")
	for i := range topo.Servers {
		topo.Servers[i].Applied = pos
	}
	s2 := NewSession()
	s2.Observe(&Class{Kind: KindWrite}, Outcome{Target: "m1", OK: true, LastGTID: "0-1-101"})
	if d, _ := Decide(&Class{Kind: KindRead}, Context{}, s2, topo, policy); d.WaitGTID != "" {
		t.Fatalf("unneeded wait: %+v", d)
	}
	// eventual consistency never waits.
	p := policy
	p.ReadYourWrites = false
	s3 := NewSession()
	s3.Observe(&Class{Kind: KindWrite}, Outcome{Target: "m1", OK: true, LastGTID: "0-1-999"})
	if d, _ := Decide(&Class{Kind: KindRead}, Context{}, s3, fixture(), p); d.WaitGTID != "" {
		t.Fatalf("eventual waited: %+v", d)
	}
}

func TestObserveTempTables(t *testing.T) {
	s := NewSession()
	s.Observe(&Class{Kind: KindWrite, TempCreated: []string{"tmp"}}, Outcome{Target: "m1", OK: true})
	if !s.tempTables["tmp"] {
		t.Fatal("temp table not recorded")
	}
	s.Observe(&Class{Kind: KindWrite, TempCreated: []string{"failed"}}, Outcome{Target: "m1", OK: false})
	if s.tempTables["failed"] {
		t.Fatal("temp table recorded although CREATE failed")
	}
	if got := s.TempTables(); len(got) != 1 || got[0] != "tmp" {
		t.Fatalf("TempTables() = %v", got)
	}
	s.Observe(&Class{Kind: KindWrite, TempDropped: []string{"tmp"}}, Outcome{Target: "m1", OK: true})
	if s.tempTables["tmp"] {
		t.Fatal("dropped temp table still recorded")
	}
}
