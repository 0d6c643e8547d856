package transactions_test

import (
	"context"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/test/harness"
)

// Session state across a switchover: a user variable, a session
// variable, the database and a prepared statement carry over to the new
// master; the temporary table does not, and the first statement after the
// change says so (once).
func TestSessionStateAcrossSwitchover(t *testing.T) {
	p, adm := txProxy(t)
	ctx := context.Background()
	c := conn(t, p, "")
	exec(t, c, "CREATE DATABASE IF NOT EXISTS ts")
	exec(t, c, "USE ts")
	exec(t, c, "SET @x = 42")
	exec(t, c, "SET SESSION sql_mode = 'ANSI_QUOTES'")
	stmt, err := c.PrepareContext(ctx, "SELECT ? + 1")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	exec(t, c, "CREATE TEMPORARY TABLE tmp (a INT)")
	exec(t, c, "INSERT INTO tmp VALUES (1)")
	harness.AdminRows(t, adm, "SWITCHOVER")
	neu := harness.MasterOf(t, adm)

	_, err = c.ExecContext(ctx, "INSERT INTO tmp VALUES (2)")
	if code(err) != int(harness.ConnectionKilled()) || !strings.Contains(err.Error(), "temporary tables (tmp)") {
		t.Fatalf("first statement after the switchover: %v, want %d naming the temporary table", err, harness.ConnectionKilled())
	}
	var x, mode, db string
	var id, sum int
	if err := c.QueryRowContext(ctx, "SELECT @x, @@server_id").Scan(&x, &id); err != nil || x != "42" || env.ServerName(id) != neu {
		t.Errorf("@x = %q on server %d (%v), want 42 on %s", x, id, err, neu)
	}
	if err := c.QueryRowContext(ctx, "SELECT @@sql_mode, DATABASE()").Scan(&mode, &db); err != nil || !strings.Contains(mode, "ANSI_QUOTES") || db != "ts" {
		t.Errorf("sql_mode %q, database %q (%v)", mode, db, err)
	}
	if err := stmt.QueryRowContext(ctx, 41).Scan(&sum); err != nil || sum != 42 {
		t.Errorf("prepared statement: %d (%v)", sum, err)
	}
	if _, err := c.ExecContext(ctx, "SELECT * FROM tmp"); code(err) != 1146 {
		t.Errorf("the temporary table after the change: %v, want 1146 (it is gone)", err)
	}
}
