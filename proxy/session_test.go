package proxy

import (
	"bytes"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// TestSessionPaths drives a session through the places where a statement
// may go somewhere else than first decided, with scripted servers: which
// server ran it, and what the client was told.
func TestSessionPaths(t *testing.T) {
	cases := []struct {
		name string
		// setup scripts the servers and may act on the session.
		setup func(t *testing.T, f *fakeBackends, s fakeSession)
		sql   string
		// wantCode is the client's error code (0: OK or a result).
		wantCode uint16
		// ranOn names the servers that must have received sql exactly
		// once; notOn those that must not have received it.
		ranOn, notOn []string
	}{
		{
			name: "replica refuses: the read goes elsewhere, the client never knows",
			setup: func(t *testing.T, f *fakeBackends, s fakeSession) {
				f.servers["r1"].refuse.Store(true)
				s.home.route.Avoid("r2", time.Hour) // r1 is the only replica to draw
			},
			sql:   "SELECT c FROM t WHERE id = 1",
			ranOn: []string{"m"}, notOn: []string{"r1", "r2"},
		},
		{
			name: "master refuses: the write waits for the new master and runs there",
			setup: func(t *testing.T, f *fakeBackends, s fakeSession) {
				f.servers["m"].refuse.Store(true)
				// The failover names r1 as the write is refused; the write
				// waits for the epoch after the one it saw, so it cannot
				// miss the change.
				f.onRefuse = func() { f.SetMaster("r1") }
			},
			sql:   "INSERT INTO t VALUES (1)",
			ranOn: []string{"r1"}, notOn: []string{"m"},
		},
		{
			name: "connection cut before the statement left: sent once, on a new connection",
			setup: func(t *testing.T, f *fakeBackends, s fakeSession) {
				f.cutAtBegin = "m"
			},
			sql:   "INSERT INTO t VALUES (2)",
			ranOn: []string{"m"},
		},
		{
			name: "server gone after receiving the statement: an error, never a second send",
			setup: func(t *testing.T, f *fakeBackends, s fakeSession) {
				f.servers["m"].closeOn("VALUES (3)")
			},
			sql:      "INSERT INTO t VALUES (3)",
			wantCode: erConnectionKilled,
			ranOn:    []string{"m"},
		},
		{
			name: "a read lost in flight, nothing relayed yet: run again, the client never knows",
			setup: func(t *testing.T, f *fakeBackends, s fakeSession) {
				f.servers["m"].closeOnceOn("FROM t WHERE id = 7")
				s.home.route.Avoid("r1", time.Hour)
				s.home.route.Avoid("r2", time.Hour) // the read goes to the master
			},
			sql:   "SELECT c FROM t WHERE id = 7",
			ranOn: []string{}, // received twice: lost, then answered
		},
		{
			name: "a read lost in flight inside a read-only transaction on a replica: an error, not a read outside it",
			setup: func(t *testing.T, f *fakeBackends, s fakeSession) {
				s.home.route.Avoid("r2", time.Hour)
				if p := s.run(t, "START TRANSACTION READ ONLY"); errCode(p) != 0 {
					t.Fatalf("begin: %q", p)
				}
				f.servers["r1"].closeOnceOn("id = 8")
			},
			sql:      "SELECT c FROM t WHERE id = 8",
			wantCode: erConnectionKilled,
			ranOn:    []string{"r1"}, notOn: []string{"m", "r2"},
		},
		{
			name: "a server error reaches the client as the server sent it",
			setup: func(t *testing.T, f *fakeBackends, s fakeSession) {
				f.servers["m"].answer("VALUES (4)", errPayload(1062, "23000", "Duplicate entry '4' for key 'PRIMARY'"))
			},
			sql:      "INSERT INTO t VALUES (4)",
			wantCode: 1062,
			ranOn:    []string{"m"},
		},
		{
			name: "read-your-writes: a replica that has not applied the write sends the read to the master",
			setup: func(t *testing.T, f *fakeBackends, s fakeSession) {
				f.servers["m"].answer("VALUES (5)", okWithGTID("0-1-77"))
				s.home.route.Avoid("r2", time.Hour)
				f.servers["r1"].answer("MASTER_GTID_WAIT", intResult("w", "-1")...)
				if p := s.run(t, "INSERT INTO t VALUES (5)"); p[0] != mysql.OK_HEADER {
					t.Fatalf("write: %q", p)
				}
			},
			sql:   "SELECT c FROM t WHERE id = 5",
			ranOn: []string{"m"}, notOn: []string{"r1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeBackends()
			s := newFakeSession(t, f)
			if tc.setup != nil {
				tc.setup(t, f, s)
			}
			p := s.run(t, tc.sql)
			if got := errCode(p); got != tc.wantCode {
				t.Fatalf("client got %q (error %d), want error %d", p, got, tc.wantCode)
			}
			for _, name := range tc.ranOn {
				if n := len(f.servers[name].received(tc.sql)); n != 1 {
					t.Errorf("%s received the statement %d times, want once", name, n)
				}
			}
			for _, name := range tc.notOn {
				if n := len(f.servers[name].received(tc.sql)); n != 0 {
					t.Errorf("%s received the statement %d times, want never", name, n)
				}
			}
			// The session goes on: the next statement works.
			if p := s.run(t, "INSERT INTO t VALUES (99)"); p[0] != mysql.OK_HEADER {
				t.Errorf("next statement: %q", p)
			}
		})
	}
}

// TestSessionFollowsNewMaster: connections to the old master are given
// back when the epoch changes; the next write runs on the new master.
func TestSessionFollowsNewMaster(t *testing.T) {
	f := newFakeBackends()
	s := newFakeSession(t, f)
	if p := s.run(t, "INSERT INTO t VALUES (1)"); p[0] != mysql.OK_HEADER {
		t.Fatalf("first write: %q", p)
	}
	held := s.conns.get("m")
	if held == nil {
		t.Fatal("no connection held to the master")
	}
	f.SetMaster("r2")
	if p := s.run(t, "INSERT INTO t VALUES (2)"); p[0] != mysql.OK_HEADER {
		t.Fatalf("second write: %q", p)
	}
	if len(f.servers["r2"].received("VALUES (2)")) != 1 || len(f.servers["m"].received("VALUES (2)")) != 0 {
		t.Error("the write after the change did not run on the new master only")
	}
	if s.conns.get("m") != nil {
		t.Error("the session still holds a connection to the old master")
	}
}

// TestServerErrorBytesUnchanged: the ERR packet the client gets is the
// server's, byte for byte.
func TestServerErrorBytesUnchanged(t *testing.T) {
	f := newFakeBackends()
	s := newFakeSession(t, f)
	want := errPayload(1146, "42S02", "Table 'shop.nope' doesn't exist")
	f.servers["m"].answer("nope", want)
	if got := s.run(t, "DELETE FROM nope"); !bytes.Equal(got, want) {
		t.Fatalf("client got %q, server sent %q", got, want)
	}
}

// okWithGTID is an OK packet whose session-state block reports a commit's
// GTID, as MariaDB does with session_track_system_variables='last_gtid'.
func okWithGTID(gtid string) []byte {
	status := uint16(mysql.SERVER_STATUS_AUTOCOMMIT | mysql.SERVER_SESSION_STATE_CHANGED)
	entry := trackEntry(mysql.SESSION_TRACK_SYSTEM_VARIABLES, "last_gtid", gtid)
	p := []byte{mysql.OK_HEADER, 1, 0, byte(status), byte(status >> 8), 0, 0, 0}
	p = mysql.AppendLengthEncodedInteger(p, uint64(len(entry)))
	return append(p, entry...)
}

// A session's view of a cluster looks its settings up again when a
// reload brings a new snapshot, and keeps them while it does not.
func TestClusterViewSettingsFollowReload(t *testing.T) {
	v := &clusterView{b: &Backends{Name: "c1"}}
	first := &Settings{Clusters: map[string]*ClusterSettings{"c1": {IOTimeout: time.Second}}}
	second := &Settings{Clusters: map[string]*ClusterSettings{"c1": {IOTimeout: 2 * time.Second}}}
	for _, step := range []struct {
		set  *Settings
		want time.Duration
	}{
		{first, time.Second}, {first, time.Second}, {second, 2 * time.Second}, {first, time.Second},
		{&Settings{}, defaultClusterSettings.IOTimeout}, // the cluster gone from the config: defaults
	} {
		if got := v.settings(step.set).IOTimeout; got != step.want {
			t.Fatalf("IOTimeout %v, want %v", got, step.want)
		}
	}
}
