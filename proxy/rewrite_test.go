package proxy

import "testing"

func TestWithConnectionID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT CONNECTION_ID()", "SELECT 10042 AS `CONNECTION_ID()`"},
		{"select connection_id() as id, 1", "select 10042 as id, 1"},
		{"SELECT a, Connection_Id( ) FROM t", "SELECT a, 10042 AS `Connection_Id( )` FROM t"},
		{"SELECT CONNECTION_ID() + 1", "SELECT 10042 + 1"},
		{"SELECT CONCAT('id ', CONNECTION_ID())", "SELECT CONCAT('id ', 10042)"},
		{"KILL QUERY CONNECTION_ID()", "KILL QUERY 10042"},
		{"SELECT 'CONNECTION_ID()', `connection_id()`, \"connection_id()\"", "SELECT 'CONNECTION_ID()', `connection_id()`, \"connection_id()\""},
		{"SELECT 1 /* CONNECTION_ID() */ -- CONNECTION_ID()\n", "SELECT 1 /* CONNECTION_ID() */ -- CONNECTION_ID()\n"},
		{"SELECT 'it''s', CONNECTION_ID()", "SELECT 'it''s', 10042 AS `CONNECTION_ID()`"},
		{"SELECT db.connection_id()", "SELECT db.connection_id()"},
		{"SELECT my_connection_id()", "SELECT my_connection_id()"},
		{"INSERT INTO log VALUES (CONNECTION_ID(), NOW())", "INSERT INTO log VALUES (10042, NOW())"},
	}
	for _, tt := range tests {
		if got := withConnectionID(tt.in, 10042); got != tt.want {
			t.Errorf("%q\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}
