package proxy

import (
	"slices"
	"strings"
	"testing"
)

// TestSessionVariablesReplayedOneByOne: a variable the new server
// refuses is dropped alone, and the statement at hand says which; the
// other variables carry over.
func TestSessionVariablesReplayedOneByOne(t *testing.T) {
	f := newFakeBackends()
	s := newFakeSession(t, f)
	if p := s.run(t, "INSERT INTO t VALUES (1)"); errCode(p) != 0 {
		t.Fatalf("%q", p)
	}
	s.state.setVar("sql_mode", "ANSI_QUOTES")
	s.state.setVar("timestamp", "1732900000.123456")
	s.state.setVar("only_on_m", "1")
	s.state.version++
	f.servers["r1"].answer("@@session.only_on_m", errPayload(1193, "HY000", "Unknown system variable 'only_on_m'"))
	f.SetMaster("r1")
	p := s.run(t, "INSERT INTO t VALUES (2)")
	if errCode(p) != erConnectionKilled || !strings.Contains(string(p), "only_on_m") {
		t.Fatalf("first statement on the new master: %q", p)
	}
	if p := s.run(t, "INSERT INTO t VALUES (3)"); errCode(p) != 0 {
		t.Fatalf("second statement: %q", p)
	}
	if s.state.has("only_on_m") || !s.state.has("sql_mode") || !s.state.has("timestamp") {
		t.Errorf("variables after the replay: %v", s.state.vars)
	}
	if got := sqlValue("timestamp", "1732900000.123456"); got != "1732900000.123456" {
		t.Errorf("a fractional timestamp is written %s (quoted, the server refuses it)", got)
	}
}

// TestBoundStateAcrossMasterChange: user variables set from constants
// are set again on the new master; state that cannot move (temporary
// tables, named locks, LOCK TABLES, variables set from data) gives the
// next statement a clear error once, and is gone.
func TestBoundStateAcrossMasterChange(t *testing.T) {
	cases := []struct {
		name  string
		setup []string
		// cut: the monitor cuts the master connection instead of a
		// master change.
		cut      bool
		wantCode uint16
		// wantOnNew: statements the new master must receive before the
		// next statement.
		wantOnNew []string
	}{
		{name: "user variables from constants: set again", setup: []string{"SET @x = 42", "SET @y = @x + 1", "SET @x = 42"},
			wantOnNew: []string{"SET @y = @x + 1", "SET @x = 42", "SELECT @x, @y"}},
		{name: "user variable from data: lost, said so", setup: []string{"SET @x = (SELECT MAX(id) FROM t)"}, wantCode: erConnectionKilled},
		{name: "temporary table: lost, said so", setup: []string{"CREATE TEMPORARY TABLE tmp (a INT)"}, wantCode: erConnectionKilled},
		{name: "named lock on a cut connection: lost, said so", setup: []string{"SELECT GET_LOCK('job', 1)"}, cut: true, wantCode: erConnectionKilled},
		{name: "a released lock is not a loss", setup: []string{"SELECT GET_LOCK('job', 1)", "SELECT RELEASE_LOCK('job')"}, cut: true},
		{name: "LOCK TABLES: lost, said so", setup: []string{"LOCK TABLES t WRITE"}, wantCode: erConnectionKilled},
		{name: "a temporary table lost, the user variables beside it set again", setup: []string{"SET @x = 7", "CREATE TEMPORARY TABLE tmp (a INT)"},
			wantCode: erConnectionKilled, wantOnNew: []string{"SET @x = 7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeBackends()
			s := newFakeSession(t, f)
			for _, q := range tc.setup {
				if p := s.run(t, q); errCode(p) != 0 {
					t.Fatalf("%s: %q", q, p)
				}
			}
			newMaster := "r1"
			if tc.cut {
				s.conns.get("m").bc.Kill()
				newMaster = "m"
			} else {
				f.SetMaster("r1")
			}
			before := len(f.servers[newMaster].received(""))
			p := s.run(t, "SELECT @x, @y")
			if got := errCode(p); got != tc.wantCode {
				t.Fatalf("first statement after the change: %q (error %d), want error %d", p, got, tc.wantCode)
			}
			if tc.wantOnNew != nil {
				if got := f.servers[newMaster].received("")[before:]; !slices.Equal(got[:min(len(got), len(tc.wantOnNew))], tc.wantOnNew) {
					t.Errorf("%s received %q, want first %q", newMaster, got, tc.wantOnNew)
				}
			}
			if tc.wantCode != 0 {
				if !strings.Contains(string(p), "did not survive") {
					t.Errorf("the error does not say what was lost: %q", p)
				}
				// Said once: the session goes on without the lost state.
				if p := s.run(t, "SELECT 1"); errCode(p) != 0 {
					t.Errorf("the statement after the error: %q", p)
				}
			}
		})
	}
}
