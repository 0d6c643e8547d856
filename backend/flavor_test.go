package backend

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// loadVertical parses the \G output of the mariadb CLI into a row map.
func loadVertical(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "***") {
			continue
		}
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			name, value = strings.TrimSuffix(strings.TrimSpace(line), ":"), ""
		}
		name = strings.TrimSpace(name)
		if value == "NULL" {
			continue // the driver gives NULL as an absent column
		}
		row[name] = value
	}
	return row
}

func TestParseReplicaStatusRecorded(t *testing.T) {
	lag := func(n int64) *int64 { return &n }
	tests := []struct {
		file       string
		io, sql    bool
		ioState    string
		lag        *int64
		port       int
		gtid       string
		ioErrorHas string
		ioErrno    int
	}{
		{"mariadb-10.11-show-slave-status.txt", true, true, "Yes", lag(0), 23306, "0-1-4", "", 0},
		{"mariadb-10.11-sql-stopped.txt", true, false, "Yes", nil, 23306, "0-1-4", "", 0},
		{"mariadb-10.11-io-connecting.txt", false, true, "Connecting", nil, 1, "0-1-4", "Connection refused", 2003},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rs := ParseReplicaStatus(loadVertical(t, "testdata/"+tt.file))
			if rs.IORunning != tt.io || rs.SQLRunning != tt.sql || rs.IOState != tt.ioState {
				t.Errorf("threads: io=%v(%q) sql=%v, want io=%v(%q) sql=%v", rs.IORunning, rs.IOState, rs.SQLRunning, tt.io, tt.ioState, tt.sql)
			}
			if (rs.SecondsBehind == nil) != (tt.lag == nil) || (rs.SecondsBehind != nil && *rs.SecondsBehind != *tt.lag) {
				t.Errorf("lag = %v, want %v", rs.SecondsBehind, tt.lag)
			}
			if rs.MasterPort != tt.port || rs.MasterHost != "127.0.0.1" {
				t.Errorf("master = %s:%d, want 127.0.0.1:%d", rs.MasterHost, rs.MasterPort, tt.port)
			}
			if rs.MasterServerID != 1 {
				t.Errorf("master server id %d", rs.MasterServerID)
			}
			if rs.GTIDReceived != tt.gtid || rs.UsingGTID != "Slave_Pos" {
				t.Errorf("gtid = %q using %q", rs.GTIDReceived, rs.UsingGTID)
			}
			if !strings.Contains(rs.LastIOError, tt.ioErrorHas) || rs.LastIOErrno != tt.ioErrno {
				t.Errorf("last IO error %d %q, want %d with %q", rs.LastIOErrno, rs.LastIOError, tt.ioErrno, tt.ioErrorHas)
			}
		})
	}
}

// MySQL 8.0.22+ renamed the columns; the seam must read both spellings.
func TestParseReplicaStatusMySQLNames(t *testing.T) {
	rs := ParseReplicaStatus(map[string]string{
		"Source_Host": "10.0.0.1", "Source_Port": "3306", "Replica_IO_Running": "Yes",
		"Replica_SQL_Running": "No", "Seconds_Behind_Source": "7", "Retrieved_Gtid_Set": "uuid:1-5",
	})
	if rs.MasterHost != "10.0.0.1" || rs.MasterPort != 3306 || !rs.IORunning || rs.SQLRunning ||
		rs.SecondsBehind == nil || *rs.SecondsBehind != 7 || rs.GTIDReceived != "uuid:1-5" {
		t.Fatalf("unexpected %+v", rs)
	}
}

func TestFlavorFromVersion(t *testing.T) {
	for v, want := range map[string]Flavor{
		"10.11.19-MariaDB-0+deb12u1": MariaDB, "5.5.5-10.6.12-MariaDB-log": MariaDB, "8.0.36": MySQL,
	} {
		if got := FlavorFromVersion(v); got != want {
			t.Errorf("%s: got %s want %s", v, got, want)
		}
	}
	if MariaDB.ReplicaStatusSQL() != "SHOW SLAVE STATUS" || MySQL.ReplicaStatusSQL() != "SHOW REPLICA STATUS" {
		t.Error("wrong replica status statements")
	}
}

func TestFindMaster(t *testing.T) {
	srv := func(n string) Server { return Server{Name: n} }
	rep := &ReplicaStatus{MasterHost: "h"}
	tests := []struct {
		name    string
		obs     []Observation
		want    string
		errLike string
	}{
		{"one writable", []Observation{{Server: srv("a")}, {Server: srv("b"), ReadOnly: true, Replica: rep}}, "a", ""},
		{"writable replica is not master", []Observation{{Server: srv("a"), Replica: rep}, {Server: srv("b"), ReadOnly: true}}, "", "no writable master"},
		{"two writable", []Observation{{Server: srv("a")}, {Server: srv("b")}}, "", "ambiguous"},
		{"unreachable skipped", []Observation{{Server: srv("a"), Err: os.ErrDeadlineExceeded}, {Server: srv("b")}}, "b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindMaster(tt.obs)
			if tt.errLike != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errLike) {
					t.Fatalf("err = %v, want %q", err, tt.errLike)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestFollowedMaster: with no writable master answering, the server every
// reachable replica follows is taken as the (dead) master — never when
// replicas disagree, when it answers, or when a server is no replica.
func TestFollowedMaster(t *testing.T) {
	down := Observation{Server: Server{Name: "m", Addr: "10.0.0.1:3306"}, Err: os.ErrDeadlineExceeded}
	rep := func(name, src string) Observation {
		host, port, _ := strings.Cut(src, ":")
		p, _ := strconv.Atoi(port)
		return Observation{Server: Server{Name: name, Addr: name + ":3306"}, ReadOnly: true, Replica: &ReplicaStatus{MasterHost: host, MasterPort: p}}
	}
	tests := []struct {
		name string
		obs  []Observation
		want string
	}{
		{"both replicas follow the dead master", []Observation{down, rep("r1", "10.0.0.1:3306"), rep("r2", "10.0.0.1:3306")}, "m"},
		{"replicas disagree", []Observation{down, rep("r1", "10.0.0.1:3306"), rep("r2", "10.0.0.9:3306")}, ""},
		{"they follow someone not ours", []Observation{down, rep("r1", "10.0.0.9:3306")}, ""},
		{"a writable standalone server answers", []Observation{down, {Server: Server{Name: "x", Addr: "x:1"}}}, ""},
		{"nobody answers", []Observation{down}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := followedMaster(tt.obs); got != tt.want {
				t.Fatalf("followedMaster = %q, want %q", got, tt.want)
			}
		})
	}
}
