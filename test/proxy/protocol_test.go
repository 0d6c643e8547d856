package proxy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// rowsAsStrings reads every row as text, NULL as "<NULL>", so results
// through the proxy and straight from the server can be compared exactly.
func rowsAsStrings(t *testing.T, db *sql.DB, query string, args ...any) [][]string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		raw := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, r := range raw {
			if r == nil {
				row[i] = "<NULL>"
			} else {
				row[i] = string(r)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAllColumnTypesTextAndBinaryMatchDirect(t *testing.T) {
	db := proxy.Open(t, "", "interpolateParams=false&parseTime=false")
	mustExec(t, db, "CREATE DATABASE IF NOT EXISTS types_db", "DROP TABLE IF EXISTS types_db.t",
		`CREATE TABLE types_db.t (
			id INT PRIMARY KEY, ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, bi BIGINT UNSIGNED,
			f FLOAT, d DOUBLE, dec1 DECIMAL(30,10), dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL,
			tm TIME(6), y YEAR, c CHAR(5), vc VARCHAR(100), tx TEXT, bl BLOB, js JSON,
			e ENUM('a','b'), st SET('x','y'), b BIT(8)) DEFAULT CHARSET=utf8mb4`)
	ins := `INSERT INTO types_db.t VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`
	blob := []byte{0, 1, 2, 0xff, 0xfe, '\'', '"', '\\'}
	rows := [][]any{
		{1, -128, 65535, -8388608, uint64(18446744073709551615), 3.25, 1e20, "12345678901234567890.0123456789",
			"2024-02-29", "2024-02-29 23:59:59.123456", "2024-02-29 01:02:03.000001", "-838:59:59.000000", 2024,
			"abc", "héllo 😀", strings.Repeat("long text ", 500), blob, `{"k": [1, 2, {"x": null}]}`, "b", "x,y", []byte{0xA5}},
		{2, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
		{3, 0, 0, 0, 0, -0.5, -2.2250738585072014e-308, "-0.0000000001", "1000-01-01", "9999-12-31 23:59:59.999999",
			nil, "00:00:00.5", 1901, "", "", "", []byte{}, `[]`, "a", "", []byte{0}},
	}
	for _, r := range rows {
		if _, err := db.Exec(ins, r...); err != nil {
			t.Fatalf("insert %v: %v", r[0], err)
		}
	}
	direct := env.Direct(t, "", "interpolateParams=false")
	queries := []struct {
		sql  string
		args []any
	}{
		{"SELECT * FROM types_db.t ORDER BY id", nil},                        // text protocol
		{"SELECT * FROM types_db.t WHERE id >= ? ORDER BY id", []any{1}},     // binary protocol
		{"SELECT * FROM types_db.t WHERE id = ? OR vc = ?", []any{2, nil}},   // NULL parameter
		{"SELECT bl, js, dtm FROM types_db.t WHERE bl = ?", []any{blob}},     // blob parameter
		{"SELECT ?, ?, ?, ?", []any{int64(-1), 1.5, "😀", []byte("\x00bin")}}, // echo parameters
	}
	for _, q := range queries {
		got := rowsAsStrings(t, db, q.sql, q.args...)
		want := rowsAsStrings(t, direct, q.sql, q.args...)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s\nproxy:  %q\ndirect: %q", q.sql, got, want)
		}
		if len(got) == 0 {
			t.Errorf("%s returned no rows", q.sql)
		}
	}
}

// Re-executing a prepared statement without re-sending parameter types
// (what libmysqlclient does) must work: the proxy relays the packet.
func TestPreparedReexecuteAndNullParams(t *testing.T) {
	db := proxy.Open(t, "", "interpolateParams=false")
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := conn.PrepareContext(context.Background(), "SELECT COALESCE(?, 'was null'), ? + 1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, args := range [][]any{{"a", 1}, {nil, 2}, {"c", nil}, {nil, nil}} {
		var a string
		var b sql.NullInt64
		if err := st.QueryRow(args...).Scan(&a, &b); err != nil {
			t.Fatalf("exec %d: %v", i, err)
		}
		wantA := "was null"
		if args[0] != nil {
			wantA = args[0].(string)
		}
		if a != wantA || b.Valid != (args[1] != nil) || (b.Valid && b.Int64 != int64(args[1].(int)+1)) {
			t.Errorf("exec %d: got %q %v", i, a, b)
		}
	}
}

func TestMultiStatementsAndProcedureResultSets(t *testing.T) {
	db := proxy.Open(t, "", "multiStatements=true")
	mustExec(t, db, "CREATE DATABASE IF NOT EXISTS ms_db", "DROP PROCEDURE IF EXISTS ms_db.two",
		"CREATE PROCEDURE ms_db.two() BEGIN SELECT 1 AS a; SELECT 'x' AS b, 2 AS c UNION SELECT 'y', 3; END")
	rows, err := db.Query("CALL ms_db.two()")
	if err != nil {
		t.Fatal(err)
	}
	var sets [][]string
	for {
		cols, _ := rows.Columns()
		var set []string
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, v := range vals {
				parts = append(parts, string(v))
			}
			set = append(set, strings.Join(parts, ","))
		}
		sets = append(sets, set)
		if !rows.NextResultSet() {
			break
		}
	}
	rows.Close()
	want := [][]string{{"1"}, {"x,2", "y,3"}}
	if !reflect.DeepEqual(sets[:2], want) {
		t.Fatalf("result sets = %q, want %q", sets, want)
	}
	// Multi-statement with a write in the middle.
	mustExec(t, db, "CREATE TABLE IF NOT EXISTS ms_db.t (a INT)")
	res, err := db.Exec("DELETE FROM ms_db.t; INSERT INTO ms_db.t VALUES (1),(2); INSERT INTO ms_db.t VALUES (3)")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n < 1 {
		t.Errorf("rows affected %d", n)
	}
	var count int
	if err := db.QueryRow("SELECT COUNT(*) FROM ms_db.t").Scan(&count); err != nil || count != 3 {
		t.Fatalf("count = %d, %v", count, err)
	}
	// Without multiStatements the server must refuse "a; b" as it would directly.
	plain := proxy.Open(t, "", "")
	_, err = plain.Exec("SELECT 1; SELECT 2")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1064 {
		t.Fatalf("multi-statement without the flag: %v", err)
	}
}

func TestBackendErrorsPassThroughUnchanged(t *testing.T) {
	db := proxy.Open(t, "", "")
	direct := env.Direct(t, "", "")
	mustExec(t, db, "CREATE DATABASE IF NOT EXISTS err_db")
	for _, q := range []string{
		"CREATE VIEW err_db.v AS SELECT 1 AS a, 2 AS a", // 1060
		"SELECT * FROM err_db.no_such_table",            // 1146
		"SELEKT 1",                                      // 1064
		"SELECT no_such_column FROM DUAL",               // 1054
		"INSERT INTO mysql.user VALUES ()",              // privilege / column error
		"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom failure', MYSQL_ERRNO = 1644",
	} {
		_, perr := db.Exec(q)
		_, derr := direct.Exec(q)
		var pe, de *mysql.MySQLError
		if !errors.As(perr, &pe) || !errors.As(derr, &de) {
			t.Errorf("%s: proxy %v, direct %v", q, perr, derr)
			continue
		}
		if *pe != *de {
			t.Errorf("%s:\nproxy  %d %s %q\ndirect %d %s %q", q, pe.Number, pe.SQLState, pe.Message, de.Number, de.SQLState, de.Message)
		}
	}
	var me *mysql.MySQLError
	_, err := db.Exec("CREATE VIEW err_db.v AS SELECT 1 AS a, 2 AS a")
	if !errors.As(err, &me) || me.Number != 1060 || string(me.SQLState[:]) != "42S21" {
		t.Fatalf("want 1060/42S21, got %v", err)
	}
	// And the session goes on.
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatal(err)
	}
}

// go-mysql's client exposes warnings, status flags and the raw OK fields.
func TestOKFieldsPassThrough(t *testing.T) {
	c, err := client.Connect(proxy.Addr, "app", "app", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS ok_db", "DROP TABLE IF EXISTS ok_db.t",
		"CREATE TABLE ok_db.t (id INT AUTO_INCREMENT PRIMARY KEY, v TINYINT)"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.Execute("INSERT INTO ok_db.t (v) VALUES (1), (2), (3)")
	if err != nil {
		t.Fatal(err)
	}
	if r.AffectedRows != 3 || r.InsertId != 1 {
		t.Errorf("affected %d insert id %d", r.AffectedRows, r.InsertId)
	}
	r, err = c.Execute("INSERT IGNORE INTO ok_db.t (v) VALUES (1000)") // out of range: warning
	if err != nil {
		t.Fatal(err)
	}
	if r.Warnings != 1 || r.InsertId != 4 {
		t.Errorf("warnings %d insert id %d, want 1 and 4", r.Warnings, r.InsertId)
	}
	if _, err := c.Execute("BEGIN"); err != nil {
		t.Fatal(err)
	}
	if !c.IsInTransaction() {
		t.Error("in-transaction status flag not passed through")
	}
	r, _ = c.Execute("UPDATE ok_db.t SET v = 5 WHERE id <= 2")
	if r.AffectedRows != 2 {
		t.Errorf("update affected %d", r.AffectedRows)
	}
	if _, err := c.Execute("COMMIT"); err != nil {
		t.Fatal(err)
	}
	if c.IsInTransaction() || !c.IsAutoCommit() {
		t.Error("status after COMMIT wrong")
	}
	// Field list (COM_FIELD_LIST) and ping.
	fields, err := c.FieldList("ok_db`.`t", "")
	if err == nil && len(fields) != 2 {
		t.Errorf("field list: %d fields", len(fields))
	}
	if err := c.UseDB("ok_db"); err != nil {
		t.Fatal(err)
	}
	fields, err = c.FieldList("t", "")
	if err != nil || len(fields) != 2 || string(fields[0].Name) != "id" {
		t.Fatalf("field list: %v %v", fields, err)
	}
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	// Unknown database via COM_INIT_DB: 1049, connection still usable.
	err = c.UseDB("no_such_db_x")
	var me *gomysql.MyError
	if !errors.As(err, &me) || me.Code != 1049 {
		t.Fatalf("use unknown db: %v", err)
	}
	if r, err := c.Execute("SELECT DATABASE()"); err != nil || string(r.Values[0][0].AsString()) != "ok_db" {
		t.Fatalf("db after failed USE: %v", err)
	}
}

func TestConnectErrors(t *testing.T) {
	tests := []struct {
		name     string
		dsn      string
		wantCode uint16
	}{
		{"wrong password", proxy.DSN("app", "nope", "", ""), 1045},
		{"unknown user", proxy.DSN("mallory", "app", "", ""), 1045},
		{"unknown database", proxy.DSN("app", "app", "no_such_database", ""), 1049},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := sql.Open("mysql", tt.dsn)
			defer db.Close()
			err := db.Ping()
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != tt.wantCode {
				t.Fatalf("got %v, want %d", err, tt.wantCode)
			}
		})
	}
	// The server keeps serving others.
	db := proxy.Open(t, "", "")
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
}

func TestCharsetsAndEmojiRoundTrip(t *testing.T) {
	for _, params := range []string{"charset=utf8mb4", "charset=utf8mb4&collation=utf8mb4_unicode_ci", "charset=latin1"} {
		db := proxy.Open(t, "", params+"&interpolateParams=false")
		mustExec(t, db, "CREATE DATABASE IF NOT EXISTS cs_db", "CREATE TABLE IF NOT EXISTS cs_db.t (id INT PRIMARY KEY, s VARCHAR(20)) DEFAULT CHARSET=utf8mb4")
		direct := env.Direct(t, "", params)
		got := rowsAsStrings(t, db, "SELECT @@character_set_client, @@character_set_results, @@collation_connection")
		want := rowsAsStrings(t, direct, "SELECT @@character_set_client, @@character_set_results, @@collation_connection")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: session charset through proxy %v, direct %v", params, got, want)
		}
		if !strings.HasPrefix(params, "charset=utf8mb4") {
			continue
		}
		s := "😀 café ✓"
		mustExec(t, db, "DELETE FROM cs_db.t")
		if _, err := db.Exec("INSERT INTO cs_db.t VALUES (1, ?)", s); err != nil {
			t.Fatal(err)
		}
		var back string
		if err := db.QueryRow("SELECT s FROM cs_db.t WHERE id = 1").Scan(&back); err != nil || back != s {
			t.Fatalf("round trip %q -> %q (%v)", s, back, err)
		}
		// SET NAMES in the session is honoured.
		conn, _ := db.Conn(context.Background())
		if _, err := conn.ExecContext(context.Background(), "SET NAMES latin1"); err != nil {
			t.Fatal(err)
		}
		var cs string
		_ = conn.QueryRowContext(context.Background(), "SELECT @@character_set_client").Scan(&cs)
		conn.Close()
		if cs != "latin1" {
			t.Errorf("after SET NAMES latin1: %s", cs)
		}
	}
}

func TestLoadDataLocalRefusedByDefault(t *testing.T) {
	mysql.RegisterReaderHandler("sy_data", func() io.Reader { return strings.NewReader("1\n2\n") })
	db := proxy.Open(t, "", "allowAllFiles=true")
	mustExec(t, db, "CREATE DATABASE IF NOT EXISTS ld_db", "CREATE TABLE IF NOT EXISTS ld_db.t (a INT)")
	_, err := db.Exec("LOAD DATA LOCAL INFILE 'Reader::sy_data' INTO TABLE ld_db.t")
	if err == nil {
		t.Fatal("LOAD DATA LOCAL INFILE succeeded with load_data_local off")
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM ld_db.t").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows loaded: %d (%v)", n, err)
	}
}

func TestPingAndQueryAfterIdle(t *testing.T) {
	db := proxy.Open(t, "", "")
	db.SetMaxOpenConns(1)
	for i := 0; i < 3; i++ {
		if err := db.Ping(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // idle on purpose: the test is about idle sessions
	}
	var s string
	if err := db.QueryRow("SELECT CONCAT('a', ?)", fmt.Sprint(42)).Scan(&s); err != nil || s != "a42" {
		t.Fatal(s, err)
	}
}

// A prepared statement costs one COM_STMT_PREPARE per backend connection
// it runs on, not one per execute: executes outside and inside a
// transaction (replica, then master) reuse what each connection has.
func TestPreparedOncePerBackendConnection(t *testing.T) {
	counters := func() (prepares, executes int64) {
		for _, in := range env.Sandbox.Instances {
			db := env.InstanceDB(t, in.Name)
			rows, err := db.Query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_stmt_prepare', 'Com_stmt_execute')")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var name string
				var n int64
				if err := rows.Scan(&name, &n); err != nil {
					t.Fatal(err)
				}
				if name == "Com_stmt_prepare" {
					prepares += n
				} else {
					executes += n
				}
			}
			rows.Close()
		}
		return prepares, executes
	}
	db := proxy.Open(t, "", "interpolateParams=false")
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	prep0, exec0 := counters()
	st, err := conn.PrepareContext(ctx, "SELECT ? + 1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 50
	run := func(what string) {
		for i := 0; i < n; i++ {
			var got int
			if err := st.QueryRowContext(ctx, i).Scan(&got); err != nil || got != i+1 {
				t.Fatalf("%s execute %d: %d, %v", what, i, got, err)
			}
		}
	}
	run("autocommit")
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	run("in a transaction")
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	run("after the transaction")
	prep1, exec1 := counters()
	// One prepare where the client's PREPARE ran, at most one more on each
	// other server its executes went to.
	if p := prep1 - prep0; p < 1 || p > int64(len(env.Sandbox.Instances)) {
		t.Errorf("%d executes cost %d COM_STMT_PREPARE on the servers, want 1 to %d", 3*n, p, len(env.Sandbox.Instances))
	}
	if e := exec1 - exec0; e != 3*n {
		t.Errorf("servers ran %d COM_STMT_EXECUTE, want %d", e, 3*n)
	}
}
