package proxy

import (
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/router"
)

// TestKeepReason: every kind of session state keeps the backend
// connections; a clean session gives them back.
func TestKeepReason(t *testing.T) {
	srv := fuzzServer(t)
	cases := []struct {
		name  string
		setup func(s *session)
		want  string // "" = may give back
	}{
		{"clean", func(s *session) {}, ""},
		{"transaction flag", func(s *session) { s.status |= mysql.SERVER_STATUS_IN_TRANS }, "transaction"},
		{"transaction seen by router", func(s *session) { s.route.InTx = true }, "transaction"},
		{"autocommit off", func(s *session) { s.route.AutocommitOff = true }, "autocommit off"},
		{"temporary table", func(s *session) { s.route.TempTables = map[string]bool{"t": true} }, "temporary tables"},
		{"session variable", func(s *session) { s.state.setVar("sql_mode", "ANSI") }, "session variables"},
		{"only connection-bound variables", func(s *session) { s.state.setVar("last_insert_id", "5") }, ""},
		{"prepared statement", func(s *session) { s.stmts.add(&preparedStmt{}) }, "prepared statements"},
		{"cursor", func(s *session) { s.status |= mysql.SERVER_STATUS_CURSOR_EXISTS }, "open cursor"},
		{"recent insert id", func(s *session) { s.mux.keepFor = keepAfterInsertID }, "result of a recent statement"},
		{"pinned by a statement", func(s *session) {
			s.mux.notePin(router.Class{Pin: true, Reason: "user variable"})
		}, "connection state (user variable)"},
		{"read does not pin", func(s *session) { s.mux.notePin(router.Class{Kind: router.KindRead}) }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(srv, srv.settings.Load(), discardClient{})
			s.status = mysql.SERVER_STATUS_AUTOCOMMIT
			tc.setup(s)
			if got := s.keepReason(); got != tc.want {
				t.Errorf("keepReason() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStateTagFollowsState: the tag changes with everything a parked
// connection carries, so a connection is never reused in another state.
func TestStateTagFollowsState(t *testing.T) {
	srv := fuzzServer(t)
	s := newSession(srv, srv.settings.Load(), discardClient{})
	s.caps = mysql.CLIENT_MULTI_STATEMENTS
	s.state.collationID = 45
	seen := map[string]string{}
	note := func(what string) {
		tag := s.stateTag()
		if prev, dup := seen[tag]; dup {
			t.Errorf("%s: tag %q same as after %s", what, tag, prev)
		}
		seen[tag] = what
	}
	note("start")
	s.state.db = "app"
	s.stateChanged("m")
	note("USE app")
	s.state.multiOff = true
	note("multi-statements off")
	s.state.collationID = 33
	s.stateChanged("m")
	note("another collation")
	if s.stateTag() != s.stateTag() {
		t.Error("tag not stable between changes")
	}
}
