package admin

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

func testServer(t *testing.T) *Server {
	t.Helper()
	c := backend.NewCluster([]backend.Server{{Name: "m", Addr: "127.0.0.1:1", Weight: 1}, {Name: "r", Addr: "127.0.0.1:2", Weight: 2}}, "m",
		backend.PoolOptions{MaxOpen: 1}, nil)
	lag := int64(4)
	c.SetHealth("r", backend.Health{Up: true, ReadOnly: true, Replica: &backend.ReplicaStatus{IORunning: true, SQLRunning: true, SecondsBehind: &lag}})
	s, err := New(Sources{Version: "test", Started: time.Now(), Cluster: c,
		Counters: func() map[string]uint64 { return map[string]uint64{"queries": 7} }}, "admin", "pw", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return s
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
			if len(rows) != 2 || rows[0][2] != "master" || rows[1][2] != "replica" || rows[1][4] != "4" ||
				rows[0][5] != "" || rows[1][5] != "io=Yes sql=Yes" || rows[1][11] != "2" {
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

func TestAdminOfflineAndErrors(t *testing.T) {
	s := testServer(t)
	if _, err := s.run("SET BACKEND 'r' OFFLINE"); err != nil {
		t.Fatal(err)
	}
	if st := s.src.Cluster.Topology().Server("r"); !st.Offline {
		t.Fatal("OFFLINE not applied")
	}
	if _, err := s.run("set backend 'r' online"); err != nil || s.src.Cluster.Topology().Server("r").Offline {
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
