package proxy

import (
	"net"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/router"
)

// TestKeepReason: every kind of session state keeps the backend
// connections; a clean session gives them back.
func TestKeepReason(t *testing.T) {
	f := newFakeBackends()
	cases := []struct {
		name  string
		setup func(s fakeSession)
		want  string // "" = may give back
	}{
		{"clean", func(s fakeSession) {}, ""},
		{"transaction flag", func(s fakeSession) { s.status |= mysql.SERVER_STATUS_IN_TRANS }, "transaction"},
		{"transaction open", func(s fakeSession) { s.tx.begin("m", s.home, true) }, "transaction"},
		{"autocommit off", func(s fakeSession) { s.state.setVar("autocommit", "OFF") }, "autocommit off"},
		{"temporary table", func(s fakeSession) {
			s.home.route.Observe(&router.Class{TempCreated: []string{"t"}}, router.Outcome{OK: true})
		}, "temporary tables"},
		{"session variable", func(s fakeSession) { s.state.setVar("sql_mode", "ANSI") }, "session variables"},
		{"only connection-bound variables", func(s fakeSession) { s.state.setVar("last_insert_id", "5") }, ""},
		{"prepared statement", func(s fakeSession) { s.stmts.add(&preparedStmt{}) }, "prepared statements"},
		{"cursor", func(s fakeSession) { s.status |= mysql.SERVER_STATUS_CURSOR_EXISTS }, "open cursor"},
		{"recent insert id", func(s fakeSession) { s.mux.keepFor = keepAfterInsertID }, "result of a recent statement"},
		{"pinned by a statement", func(s fakeSession) {
			s.mux.notePin(router.Class{Pin: true, Reason: "user variable"})
		}, "connection state (user variable)"},
		{"read does not pin", func(s fakeSession) { s.mux.notePin(router.Class{Kind: router.KindRead}) }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeSession(t, f)
			set := *s.cmd.set
			set.Multiplexing = true
			s.cmd.set = &set
			proxySide, serverSide := net.Pipe()
			defer serverSide.Close()
			s.conns.held["m"] = &heldConn{bc: wrapFor(proxySide), view: s.home, synced: s.state.version}
			tc.setup(s)
			s.giveBackConns()
			if got := loadString(&s.info.heldBecause); got != tc.want {
				t.Errorf("held because %q, want %q", got, tc.want)
			}
			if kept := len(s.conns.held) == 1; kept != (tc.want != "") {
				t.Errorf("connection kept: %v, want %v", kept, tc.want != "")
			}
			if s.tx.open() {
				s.tx.end()
			}
		})
	}
}

// TestStateTagFollowsState: the tag changes with everything a parked
// connection carries, so a connection is never reused in another state.
func TestStateTagFollowsState(t *testing.T) {
	var st sessionState
	st.collationID = 45
	seen := map[string]string{}
	multi := true
	note := func(what string) {
		tag := st.tagFor(multi)
		if prev, dup := seen[tag]; dup {
			t.Errorf("%s: tag %q same as after %s", what, tag, prev)
		}
		seen[tag] = what
	}
	note("start")
	st.db = "app"
	st.version++
	note("USE app")
	multi = false
	note("multi-statements off")
	st.collationID = 33
	st.version++
	note("another collation")
	if st.tagFor(multi) != st.tagFor(multi) {
		t.Error("tag not stable between changes")
	}
}
