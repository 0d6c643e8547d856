package router

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// Expected routes: R = replica may serve it, M = master, B = begin,
// BRO = begin read only, E = end of transaction, S = session state,
// L = last backend (diagnostics).
const (
	R   = KindRead
	M   = KindWrite
	B   = KindBegin
	BRO = KindBeginReadOnly
	E   = KindEnd
	S   = KindSession
	L   = KindLastBackend
)

var classifyCases = []struct {
	sql  string
	want Kind
}{
	// Plain reads.
	{"SELECT 1", R},
	{"select * from t where id = 1", R},
	{"SELECT a, b FROM db.t WHERE a > 10 ORDER BY b LIMIT 5", R},
	{"SELECT COUNT(*) FROM t", R},
	{"SELECT * FROM t1 JOIN t2 ON t1.id = t2.id WHERE t2.x IN (SELECT x FROM t3)", R},
	{"SELECT * FROM t1 LEFT JOIN t2 USING (id)", R},
	{"SELECT DISTINCT a FROM t", R},
	{"SELECT a, SUM(b) FROM t GROUP BY a HAVING SUM(b) > 3", R},
	{"SELECT * FROM (SELECT a FROM t) AS x", R},
	{"SELECT a FROM t UNION SELECT a FROM u", R},
	{"SELECT a FROM t UNION ALL SELECT a FROM u ORDER BY a", R},
	{"(SELECT a FROM t) UNION (SELECT b FROM u)", R},
	{"WITH c AS (SELECT 1 AS x) SELECT * FROM c", R},
	{"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 5) SELECT * FROM r", R},
	{"SELECT NOW(), UUID(), RAND()", R},
	{"SELECT SLEEP(0)", R},
	{"SELECT @@version", R},
	{"SELECT @@session.sql_mode", R},
	{"SELECT @@sql_mode, @@time_zone", R},
	{"SELECT @@global.read_only", R},
	{"SELECT DATABASE(), USER(), CURRENT_USER()", R},
	{"SELECT * FROM v_orders", R},
	{"SELECT seq FROM seq_1_to_10", R},
	{"SELECT JSON_EXTRACT(doc, '$.a') FROM docs", R},
	{"SELECT * FROM t WHERE name LIKE 'a%' AND id BETWEEN 1 AND 10", R},
	{"SELECT CASE WHEN a > 1 THEN 'x' ELSE 'y' END FROM t", R},
	{"SELECT * FROM t FORCE INDEX (idx) WHERE a = 1", R},
	{"SELECT SQL_NO_CACHE * FROM t", R},
	{"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)", R},
	{"SELECT ROW_NUMBER() OVER (ORDER BY a) FROM t", R},
	{"SELECT a FROM t WHERE b = ?", R},
	{"SELECT ? + ?", R},
	{"select\n*\nfrom\tt", R},
	{"SELECT 'FOR UPDATE' AS s", R},
	{"SELECT * FROM t -- FOR UPDATE", R},
	{"SELECT 'last_insert_id()'", R},
	{"SELECT GROUP_CONCAT(a SEPARATOR ',') FROM t", R},
	{"SELECT CONVERT(a USING utf8mb4) FROM t", R},
	{"SELECT * FROM `db`.`t` WHERE `a` = 1", R},
	{"SELECT MD5('x'), SHA2('x', 256)", R},
	{"SELECT 1; SELECT 2", R},
	{"TABLE t", R},
	{"VALUES ROW(1, 2)", R},
	// SHOW / DESC / EXPLAIN.
	{"SHOW DATABASES", R},
	{"SHOW TABLES", R},
	{"SHOW FULL TABLES FROM db", R},
	{"SHOW TABLE STATUS LIKE 't'", R},
	{"SHOW COLUMNS FROM t", R},
	{"SHOW FULL COLUMNS FROM t", R},
	{"SHOW INDEX FROM t", R},
	{"SHOW CREATE TABLE t", R},
	{"SHOW CREATE VIEW v", R},
	{"SHOW CREATE DATABASE db", R},
	{"SHOW TRIGGERS", R},
	{"SHOW PROCEDURE STATUS", R},
	{"SHOW CHARACTER SET", R},
	{"SHOW COLLATION", R},
	{"SHOW ENGINES", R},
	{"DESC t", R},
	{"DESCRIBE t", R},
	{"EXPLAIN SELECT * FROM t", R},
	{"EXPLAIN FORMAT=JSON SELECT * FROM t", R},
	{"EXPLAIN UPDATE t SET a = 1", M},
	{"EXPLAIN DELETE FROM t", M},
	{"SHOW VARIABLES LIKE 'sql_mode'", M},
	{"SHOW SESSION STATUS", M},
	{"SHOW GLOBAL STATUS", M},
	{"SHOW PROCESSLIST", M},
	{"SHOW FULL PROCESSLIST", M},
	{"SHOW MASTER STATUS", M},
	{"SHOW GRANTS", M},
	{"SHOW PROFILES", L}, // profiles of the statements that ran where the previous one did
	{"SHOW WARNINGS", L},
	{"SHOW ERRORS", L},
	{"SHOW COUNT(*) WARNINGS", L},
	{"SELECT @@warning_count", L},
	{"SELECT @@error_count", L},
	// Writes and DDL.
	{"INSERT INTO t VALUES (1)", M},
	{"INSERT INTO t (a, b) VALUES (1, 2), (3, 4)", M},
	{"INSERT INTO t SELECT * FROM u", M},
	{"INSERT IGNORE INTO t VALUES (1)", M},
	{"INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = a + 1", M},
	{"REPLACE INTO t VALUES (1)", M},
	{"UPDATE t SET a = 1 WHERE id = 2", M},
	{"UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.a = t2.a", M},
	{"DELETE FROM t WHERE id = 1", M},
	{"DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", M},
	{"TRUNCATE TABLE t", M},
	{"LOAD DATA INFILE '/tmp/x' INTO TABLE t", M},
	{"LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t", M},
	{"CREATE TABLE t (id INT PRIMARY KEY)", M},
	{"CREATE TABLE IF NOT EXISTS t (id INT)", M},
	{"CREATE TABLE t2 LIKE t", M},
	{"CREATE TABLE t2 AS SELECT * FROM t", M},
	{"ALTER TABLE t ADD COLUMN c INT", M},
	{"DROP TABLE t", M},
	{"DROP TABLE IF EXISTS t1, t2", M},
	{"RENAME TABLE t TO u", M},
	{"CREATE INDEX i ON t (a)", M},
	{"DROP INDEX i ON t", M},
	{"CREATE DATABASE d", M},
	{"DROP DATABASE d", M},
	{"CREATE VIEW v AS SELECT 1", M},
	{"CREATE OR REPLACE VIEW v AS SELECT a FROM t", M},
	{"DROP VIEW v", M},
	{"CREATE USER 'u'@'%' IDENTIFIED BY 'p'", M},
	{"GRANT SELECT ON db.* TO 'u'@'%'", M},
	{"REVOKE SELECT ON db.* FROM 'u'@'%'", M},
	{"ANALYZE TABLE t", M},
	{"OPTIMIZE TABLE t", M},
	{"FLUSH PRIVILEGES", M},
	{"CREATE SEQUENCE s", M},
	{"CREATE TEMPORARY TABLE tmp (a INT)", M},
	{"DROP TEMPORARY TABLE tmp", M},
	// Locking reads and INTO.
	{"SELECT * FROM t WHERE id = 1 FOR UPDATE", M},
	{"SELECT * FROM t WHERE id = 1 FOR UPDATE SKIP LOCKED", M},
	{"SELECT * FROM t WHERE id = 1 FOR UPDATE NOWAIT", M},
	{"SELECT * FROM t LOCK IN SHARE MODE", M},
	{"SELECT * FROM t FOR SHARE", M},
	{"SELECT a FROM t UNION SELECT a FROM u FOR UPDATE", M},
	{"SELECT * FROM (SELECT * FROM t FOR UPDATE) x", M},
	{"SELECT a INTO @x FROM t LIMIT 1", M},
	{"SELECT * INTO OUTFILE '/tmp/out' FROM t", M},
	{"SELECT * FROM t INTO DUMPFILE '/tmp/d'", M},
	// Session-bound functions and variables.
	{"SELECT LAST_INSERT_ID()", M},
	{"select last_insert_id()", M},
	{"SELECT FOUND_ROWS()", M},
	{"SELECT ROW_COUNT()", M},
	{"SELECT GET_LOCK('l', 10)", M},
	{"SELECT RELEASE_LOCK('l')", M},
	{"SELECT IS_FREE_LOCK('l')", M},
	{"SELECT IS_USED_LOCK('l')", M},
	{"SELECT RELEASE_ALL_LOCKS()", M},
	{"SELECT CONNECTION_ID()", M},
	{"SELECT NEXTVAL(s)", M},
	{"SELECT LASTVAL(s)", M},
	{"SELECT SETVAL(s, 10)", M},
	{"SELECT MASTER_GTID_WAIT('0-1-1', 1)", M},
	{"SELECT * FROM t WHERE id = LAST_INSERT_ID()", M},
	{"SELECT @x", M},
	{"SELECT @x := 1", M},
	{"SELECT * FROM t WHERE a = @v", M},
	{"SELECT @@last_insert_id", M},
	{"SELECT @@identity", M},
	{"SELECT @@session.last_gtid", M},
	{"SELECT @@in_transaction", M},
	// Transactions.
	{"BEGIN", B},
	{"BEGIN WORK", B},
	{"START TRANSACTION", B},
	{"START TRANSACTION WITH CONSISTENT SNAPSHOT", B},
	{"START TRANSACTION READ WRITE", B},
	{"START TRANSACTION READ ONLY", BRO},
	{"COMMIT", E},
	{"COMMIT WORK", E},
	{"ROLLBACK", E},
	{"ROLLBACK WORK", E},
	{"SAVEPOINT sp1", M},
	{"ROLLBACK TO SAVEPOINT sp1", E},
	{"RELEASE SAVEPOINT sp1", M},
	// Session state.
	{"SET NAMES utf8mb4", S},
	{"SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci", S},
	{"SET CHARACTER SET latin1", S},
	{"SET autocommit = 0", S},
	{"SET SESSION sql_mode = 'ANSI_QUOTES'", S},
	{"SET @@session.time_zone = '+00:00'", S},
	{"SET @u = 1", S},
	{"SET @a = 1, @b = 2", S},
	{"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", S},
	{"USE db", S},
	{"SET GLOBAL read_only = 1", M},
	{"SET @@global.max_connections = 100", M},
	// Other statements that stay on the master.
	{"CALL p()", M},
	{"CALL db.p(1, 'a')", M},
	{"LOCK TABLES t READ", M},
	{"LOCK TABLES t WRITE, u READ", M},
	{"UNLOCK TABLES", M},
	{"DO SLEEP(1)", M},
	{"DO RELEASE_LOCK('l')", M},
	{"PREPARE s FROM 'SELECT 1'", M},
	{"EXECUTE s", M},
	{"DEALLOCATE PREPARE s", M},
	{"KILL 123", M},
	{"SELECT 1; INSERT INTO t VALUES (1)", M},
	{"INSERT INTO t VALUES (1); SELECT 1", M},
	// MariaDB syntax the TiDB parser cannot read: master, never an error.
	{"INSERT INTO t VALUES (1) RETURNING id", M},
	{"DELETE FROM t WHERE id = 1 RETURNING *", M},
	{"SET STATEMENT max_statement_time=1 FOR SELECT * FROM t", M},
	{"SELECT * FROM t FOR SYSTEM_TIME AS OF TIMESTAMP '2024-01-01'", M},
	{"CREATE OR REPLACE TABLE t (a INT)", M},
	{"SELECT * FROM t LIMIT ROWS EXAMINED 100", M},
	{"EXECUTE IMMEDIATE 'SELECT 1'", M},
	{"/*M!100100 SELECT 1 */", M},
	{"SELECT 1 /*!40001 SQL_NO_CACHE */", M},
	{"SHOW ALL SLAVES STATUS", M},
	{"SELECT * FROM JSON_TABLE('[1]', '$[*]' COLUMNS (a INT PATH '$')) AS jt", M},
	{"XA START 'x'", M},
	{"HANDLER t OPEN", M},
	{"SELECT NEXT VALUE FOR s", M},
	{"this is not sql", M},
	{"", M},
	{"SELECT * FROM", M},
}

func TestClassify(t *testing.T) {
	if len(classifyCases) < 150 {
		t.Fatalf("only %d cases", len(classifyCases))
	}
	c := NewClassifier(0) // no cache: every case is parsed
	for _, tt := range classifyCases {
		got := c.Classify(tt.sql, false)
		if got.Kind != tt.want {
			t.Errorf("%-60q got %s (%s), want %s", tt.sql, got.Kind, got.Reason, tt.want)
		}
	}
}

// Valid SQL the TiDB parser's value driver cannot handle (it panics on an
// 82-digit literal) is unparsable, for the master: never a crash.
func TestParserPanicIsUnparsable(t *testing.T) {
	c := NewClassifier(0)
	sql := "SELECT 1000000000000000000000000000000000000000000000000000000000000000000000000000000001 AS c"
	for range 2 { // the pool must not hand out the broken parser
		if cl := c.Classify(sql, false); cl.Kind != KindWrite || cl.Reason != reasonUnparsable {
			t.Fatalf("got %s (%s)", cl.Kind, cl.Reason)
		}
	}
	if cl := c.Classify("SELECT 1", false); cl.Kind != KindRead {
		t.Fatalf("after the panic: SELECT 1 is %s (%s)", cl.Kind, cl.Reason)
	}
}

// Reads whose answer depends on where the session's previous statements
// ran.
func TestSessionScopedReads(t *testing.T) {
	c := NewClassifier(0)
	for sql, want := range map[string]Kind{
		"SHOW PROFILES":                                       KindLastBackend,
		"SHOW PROFILE FOR QUERY 1":                            KindLastBackend,
		"SELECT ExtractValue(@xml, '/a/b[$@i]')":              KindWrite,
		"SELECT ExtractValue('<a><b>x</b></a>', '/a/b[$@i]')": KindWrite,
		"SELECT ExtractValue('<a/>', '/a')":                   KindRead,
	} {
		if got := c.Classify(sql, false); got.Kind != want {
			t.Errorf("%s: %s (%s), want %s", sql, got.Kind, got.Reason, want)
		}
	}
	s := NewSession()
	topo := fixture()
	ctx := Context{ReadsOnMaster: "sql_auto_is_null"}
	if d, err := Decide(new(c.Classify("SELECT * FROM t WHERE id IS NULL", false)), ctx, s, topo, Policy{Split: true}); err != nil || d.Target != topo.Master {
		t.Errorf("a read under sql_auto_is_null went to %s (%v)", d.Target, err)
	}
}

// TestSetFlags: SET statements that change the session's own tracking
// (the proxy re-reads it) or a global (new sessions start from it).
func TestSetFlags(t *testing.T) {
	c := NewClassifier(0)
	for _, tc := range []struct {
		sql              string
		tracking, global bool
	}{
		{"SET SESSION session_track_system_variables = 'autocommit'", true, false},
		{"SET @@session_track_schema = OFF, sql_mode = ''", true, false},
		{"SET sql_mode = ''", false, false},
		{"SET @session_track_schema = 1", false, false},
		{"SET GLOBAL max_allowed_packet = 1024", false, true},
		{"SET @@global.sql_mode = ''", false, true},
		{"SET sql_mode = ''; SET GLOBAL wait_timeout = 10", false, true},
		{"SET SESSION max_statement_time = 1", false, false},
		{"SET @global = 1", false, false},
		{"SELECT @@global.max_allowed_packet", false, false},
	} {
		cl := c.Classify(tc.sql, true)
		if cl.SetsTracking != tc.tracking || cl.SetsGlobal != tc.global {
			t.Errorf("%s: SetsTracking %v SetsGlobal %v, want %v %v", tc.sql, cl.SetsTracking, cl.SetsGlobal, tc.tracking, tc.global)
		}
	}
}

// TestTransactionAndConnectionState: what a session needs to keep a
// transaction and its connection state across a master change.
func TestTransactionAndConnectionState(t *testing.T) {
	c := NewClassifier(0)
	tests := []struct {
		sql           string
		rollback, dml bool
		state         ConnState
	}{
		{"ROLLBACK", true, false, ConnState{}},
		{"rollback work", true, false, ConnState{}},
		{"ROLLBACK TO SAVEPOINT s1", false, false, ConnState{}},
		{"COMMIT", false, false, ConnState{}},
		{"SELECT * FROM t WHERE id = 1 FOR UPDATE", false, true, ConnState{}},
		{"UPDATE acct SET bal = bal - 10 WHERE id = 1", false, true, ConnState{}},
		{"INSERT INTO ledger VALUES (1, 2, 10)", false, true, ConnState{}},
		{"CREATE TABLE x (a INT)", false, false, ConnState{}},
		{"BEGIN", false, false, ConnState{}},
		{"UPDATE t SET a = 1; COMMIT", false, false, ConnState{}},
		{"SET @x = 5", false, false, ConnState{UserVars: true, SetsUserVars: true}},
		{"SET @x = @y + 1, @z = CONCAT('a', 'b')", false, false, ConnState{UserVars: true, SetsUserVars: true}},
		{"SET @x = (SELECT MAX(id) FROM t)", false, false, ConnState{UserVars: true, SetsUserVars: true, UserVarsFromData: true}},
		{"SET @t = NOW(6)", false, false, ConnState{UserVars: true, SetsUserVars: true, UserVarsFromData: true}},
		{"SELECT @x", false, true, ConnState{UserVars: true}},
		{"SELECT a FROM t WHERE id = @x", false, true, ConnState{UserVars: true}},
		{"SELECT @x := a FROM t", false, true, ConnState{UserVars: true, SetsUserVars: true, UserVarsFromData: true}},
		{"SELECT @n := @n + 1", false, true, ConnState{UserVars: true, SetsUserVars: true}},
		{"SELECT a INTO @y FROM t LIMIT 1", false, false, ConnState{UserVars: true, SetsUserVars: true, UserVarsFromData: true}},
		{"SELECT GET_LOCK('job', 10)", false, true, ConnState{GetLocks: []string{"job"}}},
		{"SELECT GET_LOCK(CONCAT('j', id), 1) FROM t", false, true, ConnState{UnknownLock: true}},
		{"DO RELEASE_LOCK('job')", false, false, ConnState{ReleaseLocks: []string{"job"}}},
		{"SELECT RELEASE_ALL_LOCKS()", false, true, ConnState{ReleaseAllLocks: true}},
		{"LOCK TABLES t WRITE", false, false, ConnState{LockTables: true}},
		{"SET SESSION session_track_system_variables = 'autocommit'", false, false, ConnState{}},
		{"UNLOCK TABLES", false, false, ConnState{UnlockTables: true}},
		{"INSERT INTO t VALUES (1) RETURNING @z", false, false, ConnState{UserVars: true, SetsUserVars: true, UserVarsFromData: true}}, // not parsable: guessed
	}
	for _, tt := range tests {
		got := c.Classify(tt.sql, false)
		if got.Rollback != tt.rollback || got.DML != tt.dml || !reflect.DeepEqual(got.State, tt.state) {
			t.Errorf("%q: rollback %v dml %v state %+v; want %v %v %+v", tt.sql, got.Rollback, got.DML, got.State, tt.rollback, tt.dml, tt.state)
		}
	}
}

func TestClassifyTablesAndTemporary(t *testing.T) {
	c := NewClassifier(0)
	tests := []struct {
		sql                      string
		tables, created, dropped []string
	}{
		{"SELECT * FROM a JOIN db.b ON a.id = b.id WHERE x IN (SELECT y FROM c)", []string{"a", "b", "c"}, nil, nil},
		{"CREATE TEMPORARY TABLE Tmp1 (a INT)", nil, []string{"tmp1"}, nil},
		{"DROP TEMPORARY TABLE IF EXISTS tmp1, tmp2", nil, nil, []string{"tmp1", "tmp2"}},
		{"INSERT INTO t SELECT * FROM u", []string{"t", "u"}, nil, nil},
	}
	for _, tt := range tests {
		got := c.Classify(tt.sql, false)
		if !sameSet(got.Tables, tt.tables) || !reflect.DeepEqual(got.TempCreated, tt.created) || !reflect.DeepEqual(got.TempDropped, tt.dropped) {
			t.Errorf("%s: tables %v created %v dropped %v", tt.sql, got.Tables, got.TempCreated, got.TempDropped)
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return len(m) == len(b) || (len(a) == 0 && len(b) == 0)
}

func TestHints(t *testing.T) {
	tests := []struct {
		sql  string
		want Hint
	}{
		{"/* master */ SELECT 1", HintMaster},
		{"SELECT /*MASTER*/ 1", HintMaster},
		{"/*+ switchyard:master */ SELECT 1", HintMaster},
		{"/* primary */ SELECT 1", HintMaster},
		{"/* replica */ SELECT 1", HintReplica},
		{"/* slave */ SELECT 1", HintReplica},
		{"SELECT 1 /* switchyard:replica */", HintReplica},
		{"/* just a comment */ SELECT 1", HintNone},
		{"/* master of puppets */ SELECT 1", HintNone},
		{"SELECT '/* master */'", HintMaster}, // documented: comments are found textually
		{"/* unterminated master", HintNone},
		{"SELECT 1", HintNone},
	}
	c := NewClassifier(0)
	for _, tt := range tests {
		if got := c.Classify(tt.sql, false).Hint; got != tt.want {
			t.Errorf("%q: hint %d, want %d", tt.sql, got, tt.want)
		}
	}
}

func TestANSIQuotesChangesParsing(t *testing.T) {
	c := NewClassifier(100)
	// With ANSI_QUOTES "t" is an identifier; without, a string.
	if got := c.Classify(`SELECT * FROM "t"`, true); got.Kind != KindRead || len(got.Tables) != 1 {
		t.Errorf("ANSI_QUOTES: %+v", got)
	}
	if got := c.Classify(`SELECT * FROM "t"`, false); got.Kind != KindWrite {
		t.Errorf("without ANSI_QUOTES the statement is invalid and must go to the master: %+v", got)
	}
}

// Every case must classify the same through the caches (text and shape),
// including after other statements of the same shape were seen.
func TestClassifyThroughCaches(t *testing.T) {
	c := NewClassifier(100000)
	for round := 0; round < 2; round++ {
		for _, tt := range classifyCases {
			if got := c.Classify(tt.sql, false); got.Kind != tt.want {
				t.Errorf("round %d: %q got %s, want %s", round, tt.sql, got.Kind, tt.want)
			}
		}
	}
	// Same shape, different literal contents: classes must not leak.
	for _, q := range []string{"SELECT 'FOR UPDATE' AS s", "SELECT 'x' AS s"} {
		if got := c.Classify(q, false); got.Kind != KindRead {
			t.Errorf("%q: %s", q, got.Kind)
		}
	}
	if got := c.Classify("SELECT 1 /*M!100100 FOR UPDATE */", false); got.Kind != KindWrite {
		t.Errorf("executable comment classified %s through the shape cache", got.Kind)
	}
}

func TestCacheReturnsSameClass(t *testing.T) {
	c := NewClassifier(2)
	for i := 0; i < 3; i++ {
		for _, q := range []string{"SELECT 1", "SELECT LAST_INSERT_ID()", "INSERT INTO t VALUES (1)"} {
			want := NewClassifier(0).Classify(q, false)
			if got := c.Classify(q, false); !reflect.DeepEqual(got, want) {
				t.Fatalf("cached %q: %+v want %+v", q, got, want)
			}
		}
	}
}

// TestClassifyConcurrently: sessions classify at the same time with
// pooled parsers. A statement's AST lives in its parser's memory, so a
// parser handed back before its AST was read would give another
// session's tables (and a data race under -race).
func TestClassifyConcurrently(t *testing.T) {
	shared := NewClassifier(0) // no cache: every call parses
	var texts []string
	for i := 0; i < 40; i++ {
		texts = append(texts,
			fmt.Sprintf("SELECT a%d FROM t%d JOIN u%d ON t%d.id = u%d.id", i, i, i, i, i),
			fmt.Sprintf("UPDATE w%d SET v = v + 1; SELECT * FROM r%d FOR UPDATE", i, i))
	}
	want := make([]Class, len(texts))
	for i, q := range texts {
		want[i] = NewClassifier(0).Classify(q, false)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(texts))
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for round := 0; round < 20; round++ {
				for k := range texts {
					i := (k + g*7) % len(texts)
					if got := shared.Classify(texts[i], false); !reflect.DeepEqual(got, want[i]) {
						errs <- fmt.Sprintf("%q: %+v want %+v", texts[i], got, want[i])
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func BenchmarkClassify(b *testing.B) {
	cases := map[string]string{
		"point-select-100B": "SELECT id, name, email, created_at FROM users WHERE id = 12345 AND tenant_id = 42 LIMIT 1",
		"join-370B": "SELECT o.id, o.total, c.name, SUM(i.qty) AS items FROM orders o JOIN customers c ON c.id = o.customer_id " +
			"JOIN order_items i ON i.order_id = o.id WHERE o.created_at > '2024-01-01' AND c.country IN ('FR', 'DE', 'IT') " +
			"AND o.id NOT IN (SELECT order_id FROM refunds WHERE amount > 0) GROUP BY o.id, o.total, c.name ORDER BY o.total DESC LIMIT 50",
		"insert-10-values": "INSERT INTO t (a, b) VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d'),(5,'e'),(6,'f'),(7,'g'),(8,'h'),(9,'i'),(10,'j')",
	}
	for name, q := range cases {
		b.Run(name+"/parse", func(b *testing.B) {
			c := NewClassifier(0)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c.Classify(q, false)
			}
		})
		b.Run(name+"/same-shape", func(b *testing.B) {
			c := NewClassifier(1 << 20)
			c.Classify(q, false)
			// Same statement, other literals each time (never the same
			// text twice): served by the shape cache. The timing includes
			// building the text (~100 ns).
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.Classify(strings.Replace(q, "1", strconv.Itoa(1000000+i), 1), false)
			}
		})
		b.Run(name+"/cached", func(b *testing.B) {
			c := NewClassifier(1000)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c.Classify(q, false)
			}
		})
	}
}

// TestPin: statements that leave state on their server connection pin
// a multiplexed session; plain reads, writes and USE do not.
func TestPin(t *testing.T) {
	cases := []struct {
		sql string
		pin bool
	}{
		{"SELECT * FROM t WHERE id = 1", false},
		{"INSERT INTO t VALUES (1)", false},
		{"UPDATE t SET a = 1", false},
		{"USE db2", false},
		{"BEGIN", false},
		{"SELECT LAST_INSERT_ID()", false},
		{"SELECT FOUND_ROWS()", false},
		{"SET @x = 1", true},
		{"SELECT @x", true},
		{"SELECT @x := 5", true},
		{"INSERT INTO t VALUES (@x)", true},
		{"SET NAMES latin1", true},
		{"SET SESSION wait_timeout = 100", true},
		{"SELECT GET_LOCK('a', 1)", true},
		{"DO GET_LOCK('a', 1)", true},
		{"SELECT LAST_INSERT_ID(), GET_LOCK('a', 1)", true},
		{"LOCK TABLES t READ", true},
		{"CREATE TEMPORARY TABLE tmp (a INT)", true},
		{"CREATE TABLE real_t (a INT)", false},
		{"PREPARE s FROM 'SELECT 1'", true},
		{"SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1", true},
		{"SELECT NEXTVAL(s)", true},
		{"INSERT INTO t VALUES (1) RETURNING id", true}, // unparsable: pinned to be safe
		{"/*!50000 SET @a = 1 */", true},
		{"SELECT 1; SET @y = 2", true},
	}
	c := NewClassifier(0)
	for _, tc := range cases {
		if got := c.Classify(tc.sql, false); got.Pin != tc.pin {
			t.Errorf("%q: Pin = %v, want %v (class %+v)", tc.sql, got.Pin, tc.pin, got)
		}
	}
}

// TestAppendShape: literals become "?", identifiers (digits and all)
// stay, so texts that differ only in their literals share a shape and
// texts that differ otherwise do not.
func TestAppendShape(t *testing.T) {
	tests := []struct{ sql, want string }{
		{"SELECT c FROM sbtest1 WHERE id=4211", "SELECT c FROM sbtest1 WHERE id=?"},
		{"SELECT c FROM sbtest1 WHERE id BETWEEN 10 AND 109 ORDER BY c", "SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c"},
		{`UPDATE t SET v='it''s', w="a\"b", x=-1.5e+10, y=0x1F WHERE k=?`, "UPDATE t SET v=?, w=?, x=-?, y=? WHERE k=?"},
		{"SELECT `col 1`, `2x` FROM `db1`.`t2` WHERE a1 = 7", "SELECT `col 1`, `2x` FROM `db1`.`t2` WHERE a1 = ?"},
		{"INSERT INTO t VALUES (1,'a'),(2,'b')", "INSERT INTO t VALUES (?,?),(?,?)"},
		{"SELECT x'4142', b'01', N'n'", "SELECT x?, b?, N?"},
		{"SELECT 'unterminated", "SELECT ?"},
	}
	for _, tt := range tests {
		if got := string(appendShape(nil, tt.sql)); got != tt.want {
			t.Errorf("appendShape(%q) = %q, want %q", tt.sql, got, tt.want)
		}
	}
	if string(appendShape(nil, "SELECT * FROM t1 WHERE a=1")) == string(appendShape(nil, "SELECT * FROM t2 WHERE a=1")) {
		t.Error("two tables share a shape")
	}
}

// FuzzShapeClass: a text classified through its shape (another text of
// the same shape was classified first) gets the class the parser gives
// it, and never a panic.
func FuzzShapeClass(f *testing.F) {
	for _, s := range []string{"SELECT c FROM t WHERE id = 1", "UPDATE t SET a = 'x' WHERE id = 2", "SELECT GET_LOCK('a', 1)",
		"SELECT @a := 1", "SELECT 1 FOR UPDATE", "INSERT INTO t VALUES (1, 'a')"} {
		f.Add(s, "7")
	}
	f.Fuzz(func(t *testing.T, sql, literal string) {
		other := strings.Replace(sql, "1", literal, 1)
		if string(appendShape(nil, sql)) != string(appendShape(nil, other)) || !utf8.ValidString(other) {
			return // not the same shape: nothing to compare
		}
		shaped := NewClassifier(100)
		shaped.Classify(sql, false)
		got := shaped.Classify(other, false)
		want := NewClassifier(0).Classify(other, false)
		if got.Kind != want.Kind || got.Pin != want.Pin || got.DDL != want.DDL {
			t.Fatalf("%q through the shape of %q: %+v, parsed: %+v", other, sql, got, want)
		}
	})
}
