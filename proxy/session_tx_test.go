package proxy

import (
	"slices"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// TestTransactionAcrossLostConnection drives a transaction whose
// connection is lost in every way the issue lists, against scripted
// servers: the client sees either the whole transaction, replayed where
// it now runs, or a clear class 40 error until it sends ROLLBACK, never a
// transaction split in two.
func TestTransactionAcrossLostConnection(t *testing.T) {
	type step struct {
		sql  string
		want uint16 // error code the client must get (0: OK or a result)
	}
	cases := []struct {
		name string
		// before runs after the transaction's first statements, between
		// statements (unless it scripts a loss in flight).
		before func(f *fakeBackends, s fakeSession)
		steps  []step
		// wantOn: statements that must reach a server, in this order.
		wantOn   string
		wantSeen []string
		replayed uint64
		aborted  uint64
	}{
		{
			name:   "the master changes between statements: replayed on the new one, committed there",
			before: func(f *fakeBackends, s fakeSession) { f.SetMaster("r1") },
			steps:  []step{{"INSERT INTO t VALUES (2)", 0}, {"COMMIT", 0}},
			wantOn: "r1", wantSeen: []string{"BEGIN", "INSERT INTO t VALUES (1)", "SELECT v FROM t", "INSERT INTO t VALUES (2)", "COMMIT"},
			replayed: 1,
		},
		{
			name:   "the monitor cut the connection while the client thought: replayed on a new connection",
			before: func(f *fakeBackends, s fakeSession) { s.conns.get("m").bc.Kill() },
			steps:  []step{{"INSERT INTO t VALUES (2)", 0}, {"COMMIT", 0}},
			wantOn: "m", wantSeen: []string{"BEGIN", "INSERT INTO t VALUES (1)", "SELECT v FROM t", "BEGIN", "INSERT INTO t VALUES (1)", "SELECT v FROM t", "INSERT INTO t VALUES (2)", "COMMIT"},
			replayed: 1,
		},
		{
			name: "the master changes while the statement waits at the gate: replayed, never run outside the transaction",
			before: func(f *fakeBackends, s fakeSession) {
				f.onEnter = func() { f.SetMaster("r1") }
			},
			steps:  []step{{"INSERT INTO t VALUES (2)", 0}, {"COMMIT", 0}},
			wantOn: "r1", wantSeen: []string{"BEGIN", "INSERT INTO t VALUES (1)", "SELECT v FROM t", "INSERT INTO t VALUES (2)", "COMMIT"},
			replayed: 1,
		},
		{
			name: "the connection dies while the statement waits at the gate: replayed, never run outside the transaction on a new connection",
			before: func(f *fakeBackends, s fakeSession) {
				f.onEnter = func() { s.conns.get("m").bc.Kill() }
			},
			steps:  []step{{"INSERT INTO t VALUES (2)", 0}, {"COMMIT", 0}},
			wantOn: "m", wantSeen: []string{"BEGIN", "INSERT INTO t VALUES (1)", "SELECT v FROM t", "BEGIN", "INSERT INTO t VALUES (1)", "SELECT v FROM t", "INSERT INTO t VALUES (2)", "COMMIT"},
			replayed: 1,
		},
		{
			name: "the master changes again while the replay waits at the gate: replayed once, where the master is then",
			before: func(f *fakeBackends, s fakeSession) {
				f.servers["r2"].answer("SELECT v", intResult("v", "10")...)
				f.SetMaster("r1")
				f.onEnter = func() { f.SetMaster("r2") }
			},
			steps:  []step{{"INSERT INTO t VALUES (2)", 0}, {"COMMIT", 0}},
			wantOn: "r2", wantSeen: []string{"BEGIN", "INSERT INTO t VALUES (1)", "SELECT v FROM t", "INSERT INTO t VALUES (2)", "COMMIT"},
			replayed: 1,
		},
		{
			name:   "lost in flight before any reply: replayed, and the statement runs again unseen",
			before: func(f *fakeBackends, s fakeSession) { f.servers["m"].closeOnceOn("VALUES (2)") },
			steps:  []step{{"INSERT INTO t VALUES (2)", 0}, {"COMMIT", 0}},
			wantOn: "m", wantSeen: []string{"BEGIN", "INSERT INTO t VALUES (1)", "SELECT v FROM t", "INSERT INTO t VALUES (2)", "BEGIN", "INSERT INTO t VALUES (1)", "SELECT v FROM t", "INSERT INTO t VALUES (2)", "COMMIT"},
			replayed: 1,
		},
		{
			name: "the new master answers differently: aborted, COMMIT refused, ROLLBACK accepted",
			before: func(f *fakeBackends, s fakeSession) {
				f.servers["r1"].reanswer("SELECT v", intResult("v", "11")...) // the client saw 10
				f.SetMaster("r1")
			},
			steps:   []step{{"INSERT INTO t VALUES (2)", mysql.ER_LOCK_DEADLOCK}, {"COMMIT", mysql.ER_LOCK_DEADLOCK}, {"ROLLBACK", 0}, {"SELECT 1", 0}},
			wantOn:  "r1",
			aborted: 1,
		},
		{
			name:    "connection lost during COMMIT: outcome unknown, never OK",
			before:  func(f *fakeBackends, s fakeSession) { f.servers["m"].closeOn("COMMIT") },
			steps:   []step{{"COMMIT", erConnectionKilled}, {"INSERT INTO t VALUES (3)", mysql.ER_LOCK_DEADLOCK}, {"ROLLBACK", 0}},
			wantOn:  "m",
			aborted: 1,
		},
		{
			name:   "ROLLBACK of a transaction whose connection is gone: nothing to replay",
			before: func(f *fakeBackends, s fakeSession) { f.SetMaster("r1") },
			steps:  []step{{"ROLLBACK", 0}, {"INSERT INTO t VALUES (4)", 0}},
			wantOn: "r1", wantSeen: []string{"INSERT INTO t VALUES (4)"},
		},
		{
			name: "too large to keep: aborted when its connection is lost",
			before: func(f *fakeBackends, s fakeSession) {
				s.setCluster(func(c *ClusterSettings) { c.TxReplay.MaxSize = 10 })
				s.tx.unreplayable = "larger than max_size" // as record found after the first statement
				f.SetMaster("r1")
			},
			steps:   []step{{"INSERT INTO t VALUES (2)", mysql.ER_LOCK_DEADLOCK}, {"ROLLBACK", 0}},
			wantOn:  "r1",
			aborted: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeBackends()
			f.servers["m"].answer("SELECT v", intResult("v", "10")...)
			f.servers["r1"].answer("SELECT v", intResult("v", "10")...)
			s := newFakeSession(t, f)
			for _, q := range []string{"BEGIN", "INSERT INTO t VALUES (1)", "SELECT v FROM t"} {
				if p := s.run(t, q); errCode(p) != 0 {
					t.Fatalf("%s: %q", q, p)
				}
			}
			if !s.tx.open() || len(s.tx.log) != 3 || f.OpenTransactions() != 1 {
				t.Fatalf("transaction not followed: open %v, %d statements kept, %d open at the gate", s.tx.open(), len(s.tx.log), f.OpenTransactions())
			}
			tc.before(f, s)
			for _, st := range tc.steps {
				if p := s.run(t, st.sql); errCode(p) != st.want {
					t.Fatalf("%s: client got %q (error %d), want error %d", st.sql, p, errCode(p), st.want)
				}
			}
			if tc.wantSeen != nil {
				if got := f.servers[tc.wantOn].received(""); !slices.Equal(got, tc.wantSeen) {
					t.Errorf("%s received\n %q\nwant\n %q", tc.wantOn, got, tc.wantSeen)
				}
			}
			st := &s.srv.stats
			if st.TxReplayed.Load() != tc.replayed || st.TxAborted.Load() != tc.aborted {
				t.Errorf("replayed %d aborted %d, want %d and %d", st.TxReplayed.Load(), st.TxAborted.Load(), tc.replayed, tc.aborted)
			}
			if s.tx.open() || f.OpenTransactions() != 0 {
				t.Errorf("transaction still counted open (%v, gate %d) after it ended", s.tx.open(), f.OpenTransactions())
			}
		})
	}
}

// TestAutocommitStatementsAreNotKept: outside transactions nothing is
// logged or counted (replay costs nothing there).
func TestAutocommitStatementsAreNotKept(t *testing.T) {
	f := newFakeBackends()
	s := newFakeSession(t, f)
	for _, q := range []string{"INSERT INTO t VALUES (1)", "UPDATE t SET a = 1"} {
		if p := s.run(t, q); errCode(p) != 0 {
			t.Fatalf("%s: %q", q, p)
		}
	}
	if s.tx.open() || len(s.tx.log) != 0 || f.OpenTransactions() != 0 || s.relay.scratch.sum != nil {
		t.Fatalf("autocommit statements kept: open %v log %d gate %d checksummed %v", s.tx.open(), len(s.tx.log), f.OpenTransactions(), s.relay.scratch.sum != nil)
	}
}
