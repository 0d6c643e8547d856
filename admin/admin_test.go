package admin

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/rules"
)

// fakeSources is a process with the given clusters (no engine) and
// nothing else.
type fakeSources struct {
	clusters []Cluster
	reload   func() error
	changes  []string // runtime changes asked for
}

func (f *fakeSources) Version() string                      { return "test" }
func (f *fakeSources) Started() time.Time                   { return time.Now() }
func (f *fakeSources) Clusters() []Cluster                  { return f.clusters }
func (f *fakeSources) Sessions() []SessionInfo              { return nil }
func (f *fakeSources) Counters() map[string]uint64          { return map[string]uint64{"queries": 7} }
func (f *fakeSources) QueryStats() []QueryStat              { return nil }
func (f *fakeSources) ResetQueryStats()                     {}
func (f *fakeSources) TxOutcomes(string, uint64) (int, int) { return 0, 0 }
func (f *fakeSources) Kill(uint32, bool) error              { return errors.New("no such session") }
func (f *fakeSources) Config() string                       { return "" }
func (f *fakeSources) Members() []Member                    { return nil }
func (f *fakeSources) Rules() []rules.RuleInfo {
	return []rules.RuleInfo{{Name: "hot", Match: "digest=x", Action: "cache_ttl=2s", Hits: 3, CacheHits: 2, CacheMiss: 1,
		LastHit: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}, {Name: "cold", Match: "user=a", Action: "log"}}
}

func (f *fakeSources) AddUser(u UserChange) (int64, error) {
	f.changes = append(f.changes, fmt.Sprintf("add user %+v", u))
	return int64(len(f.changes)), nil
}
func (f *fakeSources) DropUser(n string) (int64, error) { return f.record("drop user " + n) }
func (f *fakeSources) AddRule(y, before string) (int64, error) {
	return f.record("add rule " + y + " before " + before)
}
func (f *fakeSources) DropRule(n string) (int64, error) { return f.record("drop rule " + n) }
func (f *fakeSources) SetWeight(b string, w int) (int64, error) {
	return f.record(fmt.Sprint("weight ", b, " ", w))
}

// SetOffline applies to the topology, as the real one does after
// persisting.
func (f *fakeSources) SetOffline(b string, off bool) (int64, error) {
	for _, c := range f.clusters {
		if err := c.Backend.Topo.SetOffline(b, off); err == nil {
			return f.record(fmt.Sprint("offline ", b, " ", off))
		}
	}
	return 0, errors.New("no backend " + b)
}

func (f *fakeSources) record(s string) (int64, error) {
	if strings.Contains(s, "bad") {
		return 0, errors.New("invalid: " + s)
	}
	f.changes = append(f.changes, s)
	return int64(len(f.changes)), nil
}

// ExplainRoute echoes its arguments, for the parsing to be checked.
func (f *fakeSources) ExplainRoute(sql, user, db string) (RouteExplanation, error) {
	return RouteExplanation{Cluster: "default", Target: "r", Reason: "user=" + user + " db=" + db, Rules: sql}, nil
}
func (f *fakeSources) Reload() error {
	if f.reload == nil {
		return errors.New("reload is not available")
	}
	return f.reload()
}

// testCluster is a master m and a replica r (weight 2, 4 s behind).
func testCluster(name, master, replica string) Cluster {
	c := backend.NewCluster(name, []backend.Server{{Name: master, Addr: "127.0.0.1:1", Weight: 1}, {Name: replica, Addr: "127.0.0.1:2", Weight: 2}}, master,
		backend.PoolOptions{MaxOpen: 1}, nil)
	lag := int64(4)
	c.Topo.SetHealth(replica, backend.Health{Up: true, ReadOnly: true, Replica: &backend.ReplicaStatus{IORunning: true, SQLRunning: true, SecondsBehind: &lag}})
	return Cluster{Name: name, Backend: c, Coordination: "standalone", CoordinationOK: true}
}

func testServerWith(t *testing.T, src Sources) *Server {
	t.Helper()
	s, err := New(src, "admin", "pw", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testServer(t *testing.T) *Server {
	return testServerWith(t, &fakeSources{clusters: []Cluster{testCluster("default", "m", "r")}})
}

func cells(t *testing.T, r *mysql.Result) [][]string {
	t.Helper()
	// The admin port sends RowDatas (text protocol); decode them as a
	// client would.
	var out [][]string
	for _, rd := range r.RowDatas {
		vals, err := rd.Parse(r.Fields, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		var row []string
		for _, v := range vals {
			switch x := v.Value().(type) {
			case []byte:
				row = append(row, string(x))
			case nil:
				row = append(row, "")
			default:
				row = append(row, fmt.Sprint(x))
			}
		}
		out = append(out, row)
	}
	return out
}

func TestAdminCommands(t *testing.T) {
	s := testServer(t)
	tests := []struct {
		query string
		check func(t *testing.T, rows [][]string)
	}{
		{"help", func(t *testing.T, rows [][]string) {
			if len(rows) < 12 {
				t.Errorf("HELP lists %d commands", len(rows))
			}
		}},
		{"SHOW  backends", func(t *testing.T, rows [][]string) {
			if len(rows) != 2 || rows[0][0] != "default" || rows[0][3] != "master" || rows[1][3] != "replica" || rows[1][5] != "4" ||
				rows[0][6] != "" || rows[1][6] != "io=Yes sql=Yes" || rows[1][14] != "2" {
				t.Errorf("SHOW BACKENDS: %v", rows)
			}
		}},
		{"show status", func(t *testing.T, rows [][]string) {
			found := map[string]string{}
			for _, r := range rows {
				found[r[0]] = r[1]
			}
			if found["master"] != "m" || found["epoch"] != "1" || found["queries"] != "7" {
				t.Errorf("SHOW STATUS: %v", rows)
			}
		}},
		{"SHOW VERSION", func(t *testing.T, rows [][]string) {
			if rows[0][0] != "test" {
				t.Errorf("version %v", rows)
			}
		}},
		{"SHOW RULES", func(t *testing.T, rows [][]string) {
			if len(rows) != 2 || rows[0][0] != "hot" || rows[0][3] != "3" || rows[0][4] != "2026-12-03T10:00:00Z" || rows[0][5] != "2" ||
				rows[1][4] != "" {
				t.Errorf("SHOW RULES: %v", rows)
			}
		}},
		{"EXPLAIN ROUTE FOR USER 'report' IN shop SELECT * FROM t WHERE a = 'x y'", func(t *testing.T, rows [][]string) {
			if len(rows) != 1 || rows[0][2] != "user=report db=shop" || rows[0][3] != "SELECT * FROM t WHERE a = 'x y'" {
				t.Errorf("EXPLAIN ROUTE: %v", rows)
			}
		}},
		{"explain route select 1", func(t *testing.T, rows [][]string) {
			if rows[0][2] != "user= db=" || rows[0][3] != "select 1" {
				t.Errorf("EXPLAIN ROUTE without user: %v", rows)
			}
		}},
		{"select @@version_comment limit 1", func(t *testing.T, rows [][]string) {
			if !strings.Contains(rows[0][0], "Switchyard") {
				t.Errorf("version comment %v", rows)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r, err := s.run(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cells(t, r))
		})
	}
}

// TestRuntimeCommands: the runtime configuration statements reach the
// process parsed; a refused change is an error naming why.
func TestRuntimeCommands(t *testing.T) {
	f := &fakeSources{clusters: []Cluster{testCluster("default", "m", "r")}}
	s := testServerWith(t, f)
	for _, q := range []string{
		"ADD USER 'report' IDENTIFIED BY 's3cret' BACKEND 'app' CLUSTER c2 MAX_CONNECTIONS 5",
		"add user bob identified by password '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19' backend 'app' identified by 'apppw'",
		"DROP USER 'bob'",
		"ADD RULE BEFORE 'hot' {name: x, match: {user: report}, route: replica}",
		"DROP RULE x",
		"SET BACKEND 'r' WEIGHT 3",
	} {
		r, err := s.run(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if rows := cells(t, r); len(rows) != 1 || rows[0][0] != fmt.Sprint(len(f.changes)) {
			t.Errorf("%s: %v", q, rows)
		}
	}
	want := []string{
		"add user {Name:report Password:s3cret PasswordHash: Backend:app BackendPassword: Cluster:c2 MaxConnections:5}",
		"add user {Name:bob Password: PasswordHash:*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19 Backend:app BackendPassword:apppw Cluster: MaxConnections:0}",
		"drop user bob", "add rule {name: x, match: {user: report}, route: replica} before hot", "drop rule x", "weight r 3",
	}
	if fmt.Sprint(f.changes) != fmt.Sprint(want) {
		t.Errorf("changes\n got %q\nwant %q", f.changes, want)
	}
	if _, err := s.run("DROP RULE 'bad'"); err == nil || !strings.Contains(err.Error(), "nothing applied") {
		t.Errorf("a refused change: %v", err)
	}
}

func TestAdminOfflineAndErrors(t *testing.T) {
	s := testServer(t)
	if _, err := s.run("SET BACKEND 'r' OFFLINE"); err != nil {
		t.Fatal(err)
	}
	topo := func() *backend.Topology { return s.src.Clusters()[0].Backend.Topology() }
	if st := topo().Server("r"); !st.Offline {
		t.Fatal("OFFLINE not applied")
	}
	if _, err := s.run("set backend 'r' online"); err != nil || topo().Server("r").Offline {
		t.Fatalf("ONLINE: %v", err)
	}
	for q, want := range map[string]string{
		"SHOW NONSENSE":            "HELP",
		"SET BACKEND 'zz' OFFLINE": "unknown backend",
		"SWITCHOVER":               "failover engine not running",
		"RELOAD CONFIG":            "not available",
	} {
		_, err := s.run(q)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", q, err, want)
		}
	}
}

// TestAdminTwoClusters: every surface names the cluster; a change names
// its cluster, or the server it moves to does.
func TestAdminTwoClusters(t *testing.T) {
	c1, c2 := testCluster("c1", "m1", "r1"), testCluster("c2", "m2", "r2")
	c2.Backend.Topo.SetFailoverBlocked("automatic failover is disabled")
	s := testServerWith(t, &fakeSources{clusters: []Cluster{c1, c2}})
	r, err := s.run("SHOW BACKENDS")
	if err != nil {
		t.Fatal(err)
	}
	rows := cells(t, r)
	if len(rows) != 4 || rows[0][0] != "c1" || rows[0][1] != "m1" || rows[3][0] != "c2" || rows[3][1] != "r2" {
		t.Fatalf("SHOW BACKENDS: %v", rows)
	}
	r, err = s.run("SHOW CLUSTERS")
	if err != nil {
		t.Fatal(err)
	}
	rows = cells(t, r)
	if len(rows) != 2 || rows[1][0] != "c2" || rows[1][5] != "automatic failover is disabled" || rows[0][5] != "" {
		t.Fatalf("SHOW CLUSTERS: %v", rows)
	}
	r, err = s.run("SHOW STATUS")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, row := range cells(t, r) {
		found[row[0]] = row[1]
	}
	if found["c1.master"] != "m1" || found["c2.master"] != "m2" || found["c2.failover_blocked"] == "" {
		t.Fatalf("SHOW STATUS: %v", found)
	}
	for q, want := range map[string]string{
		"SWITCHOVER":               "name the cluster: c1, c2",
		"SWITCHOVER c3":            "unknown cluster",
		"SWITCHOVER c2":            "failover engine not running",
		"SWITCHOVER TO 'r2'":       "cluster c2",
		"FAILOVER c1 TO r1":        "failover engine not running",
		"SET BACKEND 'm9' OFFLINE": "unknown backend",
	} {
		_, err := s.run(q)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", q, err, want)
		}
	}
	if _, err := s.run("SET BACKEND 'r2' OFFLINE"); err != nil || !c2.Backend.Topology().Server("r2").Offline {
		t.Fatalf("SET BACKEND in the second cluster: %v", err)
	}
}
