package failover

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/backend"
)

func pos(s string) backend.Position {
	p, err := backend.ParsePosition(s)
	if err != nil {
		panic(err)
	}
	return p
}

const (
	uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uuidB = "4e11fa47-71ca-11e1-9e33-c80aa9429562"
	uuidC = "5e11fa47-71ca-11e1-9e33-c80aa9429562"
)

func TestConfirm(t *testing.T) {
	tests := []struct {
		name     string
		replicas []Replica
		dead     bool
		reason   string
	}{
		{"all replicas lost the master", []Replica{{Name: "r1", Reachable: true}, {Name: "r2", Reachable: true}}, true, "none of 2"},
		{"one replica still connected", []Replica{{Name: "r1", Reachable: true}, {Name: "r2", Reachable: true, IOConnected: true}}, false, "r2 still receives"},
		{"connected but unreachable replica does not count", []Replica{{Name: "r1", Reachable: true}, {Name: "r2", IOConnected: true}}, true, "none of 1"},
		{"no reachable replica", []Replica{{Name: "r1"}, {Name: "r2"}}, false, "no replica is reachable"},
		{"connected to the master (its server id)", []Replica{{Name: "r1", Reachable: true, IOConnected: true, SourceID: 1}}, false, "r1 still receives"},
		{"connected, source not known yet", []Replica{{Name: "r1", Reachable: true, IOConnected: true}}, false, "r1 still receives"},
		{"connected to another server says nothing", []Replica{{Name: "r1", Reachable: true, IOConnected: true, SourceID: 9}}, true, "none of 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Confirm(tt.replicas, 1)
			if v.Dead != tt.dead || !strings.Contains(v.Reason, tt.reason) {
				t.Fatalf("%+v", v)
			}
		})
	}
}

func TestPickCandidate(t *testing.T) {
	r := func(name string, order int, received string, mods ...func(*Replica)) Replica {
		x := Replica{Name: name, Order: order, Reachable: true, Received: pos(received), Applied: pos(received)}
		for _, m := range mods {
			m(&x)
		}
		return x
	}
	behindApplied := func(applied string) func(*Replica) { return func(x *Replica) { x.Applied = pos(applied) } }
	applied := func(p string) func(*Replica) { return func(x *Replica) { x.Current = pos(p) } }
	upTo := func(p string) func(*Replica) { return func(x *Replica) { x.Applied, x.Current = pos(p), pos(p) } }
	candidate := func(x *Replica) { x.Candidate = true }
	noMaster := func(x *Replica) { x.NoMaster = true }
	unreachable := func(x *Replica) { x.Reachable = false }
	tests := []struct {
		name     string
		replicas []Replica
		want     string
		request  string
		errLike  string
	}{
		{"most advanced wins even last in config", []Replica{r("r1", 0, "0-1-10"), r("r2", 1, "0-1-12")}, "r2", "", ""},
		{"received (relay log) counts, not only applied", []Replica{r("r1", 0, "0-1-10"), r("r2", 1, "0-1-12", behindApplied("0-1-9"))}, "r2", "", ""},
		{"tie goes to the candidate flag", []Replica{r("r1", 0, "0-1-10"), r("r2", 1, "0-1-10", candidate)}, "r2", "", ""},
		{"tie without flags goes to config order", []Replica{r("r1", 0, "0-1-10"), r("r2", 1, "0-1-10")}, "r1", "", ""},
		{"tie: the one that applied more wins", []Replica{r("r1", 0, "0-1-10", applied("0-1-4")), r("r2", 1, "0-1-10", applied("0-1-8"))}, "r2", "", ""},
		{"the candidate flag beats having applied more", []Replica{r("r1", 0, "0-1-10", applied("0-1-4"), candidate), r("r2", 1, "0-1-10", applied("0-1-8"))}, "r1", "", ""},
		{"a candidate with a large apply backlog loses to an equal replica without one",
			[]Replica{r("r1", 0, "0-1-5000", upTo("0-1-3000"), candidate), r("r2", 1, "0-1-5000", upTo("0-1-4990"))}, "r2", "", ""},
		{"a small backlog does not outweigh the candidate flag",
			[]Replica{r("r1", 0, "0-1-5000", upTo("0-1-4500"), candidate), r("r2", 1, "0-1-5000", upTo("0-1-4990"))}, "r1", "", ""},
		{"a large backlog on both: the candidate flag decides",
			[]Replica{r("r1", 0, "0-1-5000", upTo("0-1-1000"), candidate), r("r2", 1, "0-1-5000", upTo("0-1-2000"))}, "r1", "", ""},
		{"behind candidate loses to an advanced replica", []Replica{r("r1", 0, "0-1-9", candidate), r("r2", 1, "0-1-10")}, "r2", "", ""},
		{"no_master is respected even if most advanced", []Replica{r("r1", 0, "0-1-9"), r("r2", 1, "0-1-20", noMaster)}, "r1", "", ""},
		{"unreachable skipped", []Replica{r("r1", 0, "0-1-30", unreachable), r("r2", 1, "0-1-20")}, "r2", "", ""},
		{"nobody eligible", []Replica{r("r1", 0, "0-1-9", noMaster), r("r2", 1, "0-1-20", unreachable)}, "", "", "no eligible replica"},
		{"operator's choice", []Replica{r("r1", 0, "0-1-9"), r("r2", 1, "0-1-20")}, "r1", "r1", ""},
		{"operator's choice must be eligible", []Replica{r("r1", 0, "0-1-9", noMaster), r("r2", 1, "0-1-20")}, "", "r1", "cannot be promoted"},
		{"several domains", []Replica{r("r1", 0, "0-1-10,1-2-5"), r("r2", 1, "0-1-10,1-2-7")}, "r2", "", ""},
		{"MySQL: the larger GTID set wins", []Replica{r("r1", 0, uuidA+":1-10"), r("r2", 1, uuidA+":1-12")}, "r2", "", ""},
		{"MySQL: retrieved (relay log) counts", []Replica{r("r1", 0, uuidA+":1-10"), r("r2", 1, uuidA+":1-12", behindApplied(uuidA+":1-9"))}, "r2", "", ""},
		{"MySQL: tie goes to the candidate", []Replica{r("r1", 0, uuidA+":1-10,"+uuidB+":1-3"), r("r2", 1, uuidB+":1-3,"+uuidA+":1-10", candidate)}, "r2", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason, err := PickCandidate(tt.replicas, tt.request)
			if tt.errLike != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errLike) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || got.Name != tt.want {
				t.Fatalf("got %s (%s), %v; want %s", got.Name, reason, err, tt.want)
			}
		})
	}
}

func TestErrant(t *testing.T) {
	tests := []struct {
		server, master string
		want           string // substring; "" = nothing errant
	}{
		{"0-1-10", "0-2-15", ""},
		{"0-1-10", "0-1-10", ""},
		{"0-1-12", "0-2-10", "0-1-11..12"},
		{"0-1-10", "0-2-10", "conflicts"},
		{"0-1-10,5-1-3", "0-2-12", "domain 5 unknown"},
		{"", "0-2-12", ""},
		{uuidA + ":1-10", uuidA + ":1-15", ""},
		{uuidA + ":1-12", uuidA + ":1-10," + uuidB + ":1-4", uuidA + ":11-12 (not on the master)"},
		{uuidA + ":1-10," + uuidC + ":1", uuidA + ":1-10", uuidC + ":1 (not on the master)"},
	}
	for _, tt := range tests {
		got := strings.Join(Errant(pos(tt.server), pos(tt.master)), "; ")
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("Errant(%s, %s) = %q, want %q", tt.server, tt.master, got, tt.want)
		}
	}
}

// TestReplicaFromRefusesBadPositions: a position the server reports that
// does not parse is an error, never an empty position (the apply step
// would wait for nothing and promote a replica that has not applied).
func TestReplicaFromRefusesBadPositions(t *testing.T) {
	good := "0-1-10"
	tests := []struct {
		name                      string
		applied, current, receivd string
		replica                   bool
		wantErr                   string
	}{
		{"all good", good, good, good, true, ""},
		{"not a replica", good, good, "", false, ""},
		{"applied garbage", "0-1-x", good, good, true, "applied position"},
		{"current garbage", good, "zz", good, true, "current position"},
		{"received garbage", good, good, "0-1", true, "received position"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rs *backend.ReplicaStatus
			if tt.replica {
				rs = &backend.ReplicaStatus{GTIDReceived: tt.receivd, IORunning: true}
			}
			r, err := replicaFrom("a1", tt.applied, tt.current, rs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v; want an error about the %s", r, err, tt.wantErr)
				}
				return
			}
			if err != nil || r.Current.Total() != 10 || !r.Reachable || r.IOConnected != tt.replica {
				t.Fatalf("got %+v, %v", r, err)
			}
		})
	}
}
