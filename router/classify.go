package router

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/mysql"
	_ "github.com/pingcap/tidb/pkg/parser/test_driver" // value expressions for the parser
)

// Kind is what a statement does, as far as routing cares.
type Kind uint8

const (
	// KindRead is a plain read a replica may serve.
	KindRead Kind = iota
	// KindWrite changes data or schema, or has a side effect: master.
	KindWrite
	// KindBegin opens a transaction (BEGIN, START TRANSACTION).
	KindBegin
	// KindBeginReadOnly is START TRANSACTION READ ONLY: one replica may
	// serve the whole transaction.
	KindBeginReadOnly
	// KindEnd closes a transaction (COMMIT, ROLLBACK).
	KindEnd
	// KindSession changes session state (SET, USE): master, and the
	// change is then replayed on every connection the session uses.
	KindSession
	// KindLastBackend must run where the previous statement ran (SHOW
	// WARNINGS, SHOW ERRORS, @@warning_count …).
	KindLastBackend
)

func (k Kind) String() string {
	return [...]string{"read", "write", "begin", "begin-read-only", "end", "session", "last-backend"}[k]
}

// Class is the routing-relevant summary of one statement. It depends only
// on the SQL text (and ANSI_QUOTES), so it can be cached and computed once
// per prepared statement; session state is applied later, in Decide.
type Class struct {
	Kind Kind
	// Reason says why a statement must go to the master ("" for reads).
	Reason string
	// Tables are the lower-cased names of the tables referenced
	// (unqualified), to spot reads of the session's temporary tables.
	Tables []string
	// Schemas are the lower-cased databases the statement names (tables
	// qualified with one, USE, CREATE/DROP DATABASE); Unqualified: it
	// names a table without a database (the current one). Together they
	// choose the cluster (ClusterMap.Pick).
	Schemas     []string
	Unqualified bool
	// TempCreated / TempDropped name temporary tables created or dropped.
	TempCreated []string
	TempDropped []string
	// Hint is a routing hint found in a comment (HintNone if none).
	Hint Hint
	// Digest is the statement with literals replaced by "?" (for the
	// query statistics); empty for statements too long to normalize.
	Digest string
	// DigestHash is a hash of Digest, computed once per cached class:
	// tables kept by digest index it without hashing the text per
	// statement. Zero when Digest is empty.
	DigestHash uint64
	// Pin: the statement may leave state on its server connection that
	// later statements depend on (user variables, named locks, table
	// locks, temporary tables, SET, SQL-level PREPARE, or SQL we could not
	// parse). With multiplexing, the session then keeps its backend
	// connections until it is reset or ends.
	Pin bool
	// Rollback: a full ROLLBACK (not to a savepoint).
	Rollback bool
	// DDL: a data definition statement (CREATE, ALTER, DROP, TRUNCATE,
	// RENAME …), for rules matching kind ddl; Tables then names the
	// tables it changes, when it names any.
	DDL bool
	// DML: a data statement (SELECT, INSERT, UPDATE, DELETE, REPLACE,
	// LOAD DATA …) that never ends a transaction, explicitly or implicitly.
	// Such a statement lost in flight inside a transaction may run again
	// after the transaction is replayed elsewhere; anything else (COMMIT,
	// DDL, BEGIN …) may have committed.
	DML bool
	// State is what the statement may leave on its server connection
	// that another connection cannot be given: user variables, named and
	// table locks.
	State ConnState
	// SetsTracking: the statement sets the session's own
	// session_track_system_variables or session_track_schema.
	SetsTracking bool
	// ConnectionID: the statement calls CONNECTION_ID(), which the proxy
	// answers with the session's own id.
	ConnectionID bool
	// SetsGlobal: SET GLOBAL. New sessions on that server start from the
	// new values; pooled connections reset before it still have the old.
	SetsGlobal bool
}

// ConnState is connection-bound state a statement touches. A session
// follows it to know what a new master cannot have.
type ConnState struct {
	// UserVars: user variables are read or set.
	UserVars bool
	// SetsUserVars: user variables are assigned; UserVarsFromData: a
	// value assigned comes from data (a table, a column, a subquery) or a
	// function that gives another value each time (NOW, RAND, UUID …), so
	// running the statement again need not give it again.
	SetsUserVars, UserVarsFromData bool
	// GetLocks and ReleaseLocks name named locks (GET_LOCK, RELEASE_LOCK)
	// taken or released; UnknownLock: a lock name is not a literal.
	GetLocks, ReleaseLocks []string
	UnknownLock            bool
	// ReleaseAllLocks: RELEASE_ALL_LOCKS().
	ReleaseAllLocks bool
	// LockTables / UnlockTables: LOCK TABLES, UNLOCK TABLES.
	LockTables, UnlockTables bool
}

// Hint is a comment-borne routing override.
type Hint uint8

const (
	HintNone Hint = iota
	HintMaster
	HintReplica
)

// sessionFuncs read or change state bound to one server connection, or
// have side effects: a statement calling one goes to the master.
var sessionFuncs = map[string]bool{
	"last_insert_id": true, "found_rows": true, "row_count": true,
	"get_lock": true, "release_lock": true, "release_all_locks": true, "is_used_lock": true, "is_free_lock": true,
	"connection_id": true, "nextval": true, "lastval": true, "setval": true,
	"master_pos_wait": true, "master_gtid_wait": true, "source_pos_wait": true,
	"binlog_gtid_pos": true, "sys_exec": true,
}

// connectionVars are system variables bound to one server connection:
// reading them anywhere but where the session's statements ran is wrong.
var connectionVars = map[string]bool{
	"last_insert_id": true, "identity": true, "insert_id": true, "last_gtid": true,
	"warning_count": true, "error_count": true, "in_transaction": true, "pseudo_thread_id": true,
	"gtid_seq_no": true, "rand_seed1": true, "rand_seed2": true,
}

// replicaShows are SHOW statements about data and schema (same on every
// server); any other SHOW is about one server or session: master.
var replicaShows = map[ast.ShowStmtType]bool{
	ast.ShowDatabases: true, ast.ShowTables: true, ast.ShowTableStatus: true, ast.ShowColumns: true,
	ast.ShowIndex: true, ast.ShowCreateTable: true, ast.ShowCreateView: true, ast.ShowCreateDatabase: true,
	ast.ShowCreateSequence: true, ast.ShowTriggers: true, ast.ShowProcedureStatus: true,
	ast.ShowFunctionStatus: true, ast.ShowEvents: true, ast.ShowCharset: true, ast.ShowCollation: true,
	ast.ShowEngines: true, ast.ShowPrivileges: true, ast.ShowCreateProcedure: true,
}

// Classifier parses statements with a pool of TiDB parsers (a parser is
// not goroutine-safe and reuses its AST) and caches results by text.
type Classifier struct {
	parsers sync.Pool
	cache   *classCache
}

// NewClassifier returns a classifier caching up to cacheSize statements.
func NewClassifier(cacheSize int) *Classifier {
	c := &Classifier{cache: newClassCache(cacheSize)}
	c.parsers.New = func() any { return parser.New() }
	return c
}

// ClassifyBytes is Classify for a text the caller will reuse: looked up
// in the cache without a copy, copied only when it is not there.
func (c *Classifier) ClassifyBytes(sql []byte, ansiQuotes bool) Class {
	if len(sql) == 0 {
		return c.Classify("", ansiQuotes)
	}
	return c.classifyText(unsafe.String(&sql[0], len(sql)), false, ansiQuotes)
}

// Classify returns the class of one SQL text (possibly several
// statements). ansiQuotes must reflect the session's sql_mode. It never
// fails: what the parser cannot read goes to the master.
func (c *Classifier) Classify(sql string, ansiQuotes bool) Class {
	return c.classifyText(sql, true, ansiQuotes)
}

// classifyText classifies sql; owned says it may be kept as a cache key
// as it is (otherwise it is copied first: the caller reuses its memory).
func (c *Classifier) classifyText(sql string, owned, ansiQuotes bool) Class {
	key := cacheKey{sql: sql, ansi: ansiQuotes}
	if cl, ok := c.cache.get(key); ok {
		return cl
	}

	// Second level: the statement's shape, its literals replaced by "?"
	// (one pass over the text, ~0.1 µs for 100 bytes, where the parser's
	// normalizer takes ~3 µs). Literals never change a class, and texts
	// of one shape have one digest. Not used with ANSI_QUOTES ("x" would
	// read as a literal but is an identifier) nor with comments (hints,
	// and MariaDB's executable /*M! */ comments).
	useShape := c.cache.size > 0 && !ansiQuotes && len(sql) > 0 && len(sql) <= maxCachedSQL && shapeSafe(sql)
	var buf [256]byte
	var shape []byte
	if useShape {
		shape = appendShape(buf[:0], sql)
		if cl, ok := c.cache.get(cacheKey{sql: unsafe.String(&shape[0], len(shape)), shape: true}); ok {
			return cl // the text itself is not kept: one entry per shape
		}
	}
	if !owned {
		sql = strings.Clone(sql) // from here on it may be kept
		key.sql = sql
	}
	cl := c.classify(sql, ansiQuotes)
	if len(sql) <= maxCachedSQL {
		cl.Digest = parser.Normalize(sql, "ON")
		cl.DigestHash = digestHash(cl.Digest)
	}
	c.cache.put(key, cl)
	if useShape && cl.Reason != reasonUnparsable {
		c.cache.put(cacheKey{sql: string(shape), shape: true}, cl)
	}
	return cl
}

// appendShape appends sql with every literal (a number, a quoted string,
// a hex or bit value) replaced by "?": texts that differ only in their
// literals get one shape. Identifiers, quoted with backticks or not
// (sbtest1 stays sbtest1), are kept as they are. The text between
// literals is copied a run at a time.
func appendShape(dst []byte, sql string) []byte {
	run := 0 // sql[run:i] is kept as it is, not yet appended
	for i := 0; i < len(sql); {
		for i < len(sql) && !shapeMark[sql[i]] {
			i++
		}
		if i == len(sql) {
			break
		}
		switch ch := sql[i]; {
		case ch == '\'' || ch == '"':
			dst = append(append(dst, sql[run:i]...), '?')
			i = skipQuoted(sql, i)
			run = i
		case ch == '`':
			j := strings.IndexByte(sql[i+1:], '`')
			if j < 0 {
				return append(dst, sql[run:]...)
			}
			i += j + 2
		case i > 0 && identByte(sql[i-1]): // a digit inside an identifier (sbtest1)
			i++
		default: // a number
			dst = append(append(dst, sql[run:i]...), '?')
			for i < len(sql) && (identByte(sql[i]) || sql[i] == '.' ||
				(sql[i] == '+' || sql[i] == '-') && (sql[i-1] == 'e' || sql[i-1] == 'E')) {
				i++
			}
			run = i
		}
	}
	return append(dst, sql[run:]...)
}

// shapeMark marks the bytes appendShape looks at: quotes, backticks and
// digits; every other byte is copied as it is.
var shapeMark = func() (m [256]bool) {
	for _, ch := range "'\"`0123456789" {
		m[ch] = true
	}
	return m
}()

// skipQuoted returns the index after the string literal opening at i
// (backslash escapes and doubled quotes included).
func skipQuoted(sql string, i int) int {
	q := sql[i]
	for j := i + 1; j < len(sql); j++ {
		switch sql[j] {
		case '\\':
			j++
		case q:
			if j+1 < len(sql) && sql[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(sql)
}

func identByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

func (c *Classifier) classify(sql string, ansiQuotes bool) Class {
	hint := findHint(sql)
	if strings.Contains(sql, "/*!") || strings.Contains(sql, "/*M!") {
		// Executable comments run code the parser reads as a comment.
		return Class{Kind: KindWrite, Reason: "executable comment", Hint: hint, Pin: true, State: guessState(sql)}
	}
	stmts, release, err := c.parse(sql, ansiQuotes)
	defer release() // the AST lives in the parser's memory until then
	if err != nil || len(stmts) == 0 {
		kind, rollback := fallbackKind(sql)
		return Class{Kind: kind, Reason: reasonUnparsable, Hint: hint, Pin: true, Rollback: rollback, State: guessState(sql),
			ConnectionID: strings.Contains(strings.ToLower(sql), "connection_id")}
	}
	var out Class
	for i, st := range stmts {
		cl := classifyStmt(st)
		if _, ddl := st.(ast.DDLNode); ddl {
			cl.DDL = true
			if cl.Tables == nil && cl.TempCreated == nil && cl.TempDropped == nil { // a session's own tables are no one else's
				cl.Tables = collect(st).tables
			}
		}
		cl.Schemas, cl.Unqualified = scope(st)
		cl.Pin = pins(st)
		cl.State = connState(st)
		cl.ConnectionID = callsConnectionID(st)
		if i == 0 {
			out = cl
			continue
		}
		out = merge(out, cl)
	}
	out.Hint = hint
	if out.Kind == KindRead && strings.Contains(sql, "$@") {
		// A user variable inside an XPath string (ExtractValue(x,
		// '/a[$@i]')): the parser sees a string, the server a variable.
		out.Kind, out.Reason, out.State.UserVars = KindWrite, "user variable in an XPath expression", true
	}
	return out
}

// digestSeed keeps digestHash one function for the whole process (the
// class cache has its own seed).
var digestSeed = maphash.MakeSeed()

// digestHash is Class.DigestHash of a digest.
func digestHash(digest string) uint64 {
	if digest == "" {
		return 0
	}
	return maphash.String(digestSeed, digest)
}

// NormalizeDigest puts a digest as an operator writes it ("SELECT `v`
// FROM `t` WHERE `id` = ?") in the form statements get, as SHOW QUERY
// STATS prints it ("select `v` from `t` where `id` = ?").
func NormalizeDigest(d string) string { return parser.Normalize(d, "ON") }

// parse runs a pooled parser. The statements point into the parser's
// own memory, which its next Parse overwrites: release hands the parser
// back and is called only once they are no longer read. Some valid SQL
// makes the TiDB parser's value driver panic (an 82-digit decimal
// literal): that is an error here, and the parser, in an unknown state,
// is not pooled again.
func (c *Classifier) parse(sql string, ansiQuotes bool) (stmts []ast.StmtNode, release func(), err error) {
	p := c.parsers.Get().(*parser.Parser)
	release = func() { c.parsers.Put(p) }
	defer func() {
		if r := recover(); r != nil {
			stmts, release, err = nil, func() {}, fmt.Errorf("parser panic: %v", r)
		}
	}()
	var mode mysql.SQLMode
	if ansiQuotes {
		mode = mysql.ModeANSIQuotes
	}
	p.SetSQLMode(mode)
	stmts, _, err = p.Parse(sql, "", "")
	return stmts, release, err
}

// merge combines the classes of a multi-statement: the strongest kind
// wins, and anything but all-reads goes to the master.
func merge(a, b Class) Class {
	a.Tables = append(a.Tables, b.Tables...)
	a.DDL = a.DDL || b.DDL
	for _, db := range b.Schemas {
		a.Schemas = addOnce(a.Schemas, db)
	}
	a.Unqualified = a.Unqualified || b.Unqualified
	a.TempCreated = append(a.TempCreated, b.TempCreated...)
	a.TempDropped = append(a.TempDropped, b.TempDropped...)
	a.Pin = a.Pin || b.Pin
	a.DML = a.DML && b.DML
	a.SetsTracking = a.SetsTracking || b.SetsTracking
	a.ConnectionID = a.ConnectionID || b.ConnectionID
	a.SetsGlobal = a.SetsGlobal || b.SetsGlobal
	a.Rollback = false // a multi-statement is not a plain ROLLBACK
	a.State = a.State.merge(b.State)
	if a.Kind == KindRead && b.Kind == KindRead {
		return a
	}
	a.Kind, a.Reason = KindWrite, "multi-statement with "+nonEmpty(b.Reason, a.Reason, b.Kind.String())
	return a
}

func nonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func classifyStmt(st ast.StmtNode) Class {
	switch n := st.(type) {
	case *ast.SelectStmt, *ast.SetOprStmt:
		return classifyRead(st)
	case *ast.ShowStmt:
		switch {
		case n.Tp == ast.ShowWarnings || n.Tp == ast.ShowErrors || n.Tp == ast.ShowProfile || n.Tp == ast.ShowProfiles:
			return Class{Kind: KindLastBackend, Reason: "diagnostics of the previous statement"}
		case replicaShows[n.Tp]:
			return classifyRead(st)
		default:
			return Class{Kind: KindWrite, Reason: "server-specific SHOW"}
		}
	case *ast.ExplainStmt:
		if n.Analyze {
			return Class{Kind: KindWrite, Reason: "EXPLAIN ANALYZE executes"}
		}
		inner := classifyStmt(n.Stmt)
		if inner.Kind == KindRead {
			return inner
		}
		return Class{Kind: KindWrite, Reason: "EXPLAIN of a write", Tables: inner.Tables}
	case *ast.InsertStmt, *ast.UpdateStmt, *ast.DeleteStmt, *ast.LoadDataStmt:
		return Class{Kind: KindWrite, Reason: "write", Tables: collect(st).tables, DML: true}
	case *ast.CallStmt:
		return Class{Kind: KindWrite, Reason: "CALL"}
	case *ast.LockTablesStmt, *ast.UnlockTablesStmt:
		return Class{Kind: KindWrite, Reason: "table locks"}
	}
	return classifyControl(st)
}

// classifyControl classifies transaction control, session statements and
// DDL; anything else is a write.
func classifyControl(st ast.StmtNode) Class {
	switch n := st.(type) {
	case *ast.BeginStmt:
		if n.ReadOnly && n.AsOf == nil {
			return Class{Kind: KindBeginReadOnly}
		}
		return Class{Kind: KindBegin, Reason: "transaction"}
	case *ast.CommitStmt:
		return Class{Kind: KindEnd, Reason: "transaction"}
	case *ast.RollbackStmt:
		return Class{Kind: KindEnd, Reason: "transaction", Rollback: n.SavepointName == ""}
	case *ast.SetStmt:
		return classifySet(n)
	case *ast.UseStmt:
		return Class{Kind: KindSession, Reason: "session state"}
	case *ast.CreateTableStmt:
		cl := Class{Kind: KindWrite, Reason: "DDL"}
		if n.TemporaryKeyword != ast.TemporaryNone {
			cl.TempCreated = []string{n.Table.Name.L}
			cl.Reason = "temporary table"
		}
		return cl
	case *ast.DropTableStmt:
		cl := Class{Kind: KindWrite, Reason: "DDL"}
		if n.TemporaryKeyword != ast.TemporaryNone {
			for _, t := range n.Tables {
				cl.TempDropped = append(cl.TempDropped, t.Name.L)
			}
		}
		return cl
	}
	if ast.IsReadOnly(st, true) {
		// e.g. DO SLEEP(1), HELP: nothing to gain, keep session semantics.
		return Class{Kind: KindWrite, Reason: "utility statement"}
	}
	return Class{Kind: KindWrite, Reason: "write"}
}

// classifySet classifies SET: session state, a user variable, or SET
// GLOBAL (a write: it changes the server for everyone).
func classifySet(n *ast.SetStmt) Class {
	cl := Class{Kind: KindSession, Reason: "session state"}
	for _, v := range n.Variables {
		if v.IsGlobal {
			return Class{Kind: KindWrite, Reason: "SET GLOBAL", SetsGlobal: true}
		}
		if !v.IsSystem && v.Name != ast.SetNames && v.Name != ast.SetCharset {
			cl.Reason = "user variable"
		}
		if name := strings.ToLower(v.Name); v.IsSystem && (name == "session_track_system_variables" || name == "session_track_schema") {
			cl.SetsTracking = true
		}
	}
	return cl
}

// diagnosticFuncs read what the previous statement left on the
// connection; the proxy keeps the connection for a few statements after a
// write instead of pinning the session for them (as ProxySQL does).
var diagnosticFuncs = map[string]bool{"last_insert_id": true, "found_rows": true, "row_count": true, "connection_id": true}

// pins reports whether st leaves state on its server connection that a
// later statement may depend on (see Class.Pin).
func pins(st ast.StmtNode) bool {
	switch n := st.(type) {
	case *ast.UseStmt:
		return false // the default database is replayed on any connection
	case *ast.SetStmt, *ast.LockTablesStmt, *ast.PrepareStmt, *ast.ExecuteStmt:
		return true
	case *ast.CreateTableStmt:
		if n.TemporaryKeyword != ast.TemporaryNone {
			return true
		}
	}
	v := collect(st)
	return v.userVar || v.stateFunc || v.calcFoundRows
}

// classifyRead checks a SELECT (or UNION, SHOW) for anything that ties it
// to the master: locking, INTO, session functions, user variables,
// connection-bound system variables.
func classifyRead(st ast.StmtNode) Class {
	v := collect(st)
	cl := Class{Kind: KindRead, Tables: v.tables, DML: true}
	switch {
	case v.locking:
		cl.Kind, cl.Reason = KindWrite, "locking read"
	case v.into:
		cl.Kind, cl.Reason = KindWrite, "SELECT INTO"
	case v.calcFoundRows:
		cl.Kind, cl.Reason = KindWrite, "SQL_CALC_FOUND_ROWS"
	case v.sessionFunc != "":
		cl.Kind, cl.Reason = KindWrite, "session function "+v.sessionFunc+"()"
	case v.userVar:
		cl.Kind, cl.Reason = KindWrite, "user variable"
	case v.diagVar:
		cl.Kind, cl.Reason = KindLastBackend, "diagnostics of the previous statement"
	case v.connVar != "":
		cl.Kind, cl.Reason = KindWrite, "connection variable @@"+v.connVar
	}
	return cl
}

// scope returns the databases a statement names and whether it names a
// table of the current database (unqualified, and not a CTE).
func scope(st ast.StmtNode) (schemas []string, unqualified bool) {
	switch n := st.(type) {
	case *ast.UseStmt:
		return []string{strings.ToLower(n.DBName)}, false
	case *ast.CreateDatabaseStmt:
		return []string{n.Name.L}, false
	case *ast.DropDatabaseStmt:
		return []string{n.Name.L}, false
	case *ast.AlterDatabaseStmt:
		if n.Name.L != "" {
			return []string{n.Name.L}, false
		}
	}
	v := collect(st)
	for _, t := range v.bare {
		if !v.ctes[t] {
			unqualified = true
		}
	}
	return v.schemas, unqualified
}

// addOnce appends s unless list holds it.
func addOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// visitor walks an AST and notes what routing cares about.
type visitor struct {
	tables []string
	// schemas: databases qualifying a table; bare: tables without one;
	// ctes: names of common table expressions (bare names that are not
	// tables).
	schemas     []string
	bare        []string
	ctes        map[string]bool
	locking     bool
	into        bool
	sessionFunc string
	userVar     bool
	connVar     string
	// calcFoundRows: SQL_CALC_FOUND_ROWS, read back by FOUND_ROWS().
	calcFoundRows bool
	// stateFunc: a session function that leaves state (GET_LOCK, NEXTVAL …).
	stateFunc bool
	diagVar   bool
	locks     ConnState
	// setsUserVar: @x := … ; readsData: a table, a column, a subquery or a
	// volatile function appears.
	setsUserVar, readsData bool
}

// noteLockCall records named locks taken or released by a call.
func (v *visitor) noteLockCall(x *ast.FuncCallExpr) {
	var list *[]string
	switch x.FnName.L {
	case "get_lock":
		list = &v.locks.GetLocks
	case "release_lock":
		list = &v.locks.ReleaseLocks
	case "release_all_locks":
		v.locks.ReleaseAllLocks = true
		return
	default:
		return
	}
	if len(x.Args) > 0 {
		if lit, ok := x.Args[0].(ast.ValueExpr); ok && lit.GetValue() != nil {
			*list = append(*list, lit.GetString())
			return
		}
	}
	v.locks.UnknownLock = true
}

// callsConnectionID reports a CONNECTION_ID() call anywhere in st.
func callsConnectionID(st ast.StmtNode) bool {
	f := &funcFinder{name: "connection_id"}
	st.Accept(f)
	return f.found
}

// funcFinder looks for a call of one function.
type funcFinder struct {
	name  string
	found bool
}

func (f *funcFinder) Enter(n ast.Node) (ast.Node, bool) {
	if c, ok := n.(*ast.FuncCallExpr); ok && c.FnName.L == f.name {
		f.found = true
	}
	return n, f.found
}

func (f *funcFinder) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// connState lists the connection-bound state a statement touches.
func connState(st ast.StmtNode) ConnState {
	switch st.(type) {
	case *ast.LockTablesStmt:
		return ConnState{LockTables: true}
	case *ast.UnlockTablesStmt:
		return ConnState{UnlockTables: true}
	}
	v := collect(st)
	s := v.locks
	s.UserVars = v.userVar
	s.SetsUserVars, s.UserVarsFromData = v.setsUserVar, v.setsUserVar && v.readsData
	if set, ok := st.(*ast.SetStmt); ok {
		for _, a := range set.Variables {
			if !a.IsSystem && a.Name != ast.SetNames && a.Name != ast.SetCharset {
				s.UserVars, s.SetsUserVars = true, true
				s.UserVarsFromData = s.UserVarsFromData || (a.Value != nil && collect(a.Value).readsData)
			}
		}
	}
	return s
}

// volatileFuncs give another value each time, or depend on where and
// when they run: a user variable set from one cannot be set again by
// running the statement again.
var volatileFuncs = map[string]bool{
	"now": true, "current_timestamp": true, "localtime": true, "localtimestamp": true, "sysdate": true,
	"curdate": true, "current_date": true, "curtime": true, "current_time": true, "utc_date": true,
	"utc_time": true, "utc_timestamp": true, "unix_timestamp": true, "rand": true, "uuid": true,
	"uuid_short": true, "sys_guid": true, "connection_id": true, "last_insert_id": true, "found_rows": true,
	"row_count": true, "sleep": true, "benchmark": true, "get_lock": true, "release_lock": true,
	"is_free_lock": true, "is_used_lock": true, "nextval": true, "lastval": true, "setval": true,
	"database": true, "schema": true, "user": true, "current_user": true, "session_user": true,
	"system_user": true, "master_pos_wait": true, "master_gtid_wait": true, "load_file": true,
}

func (a ConnState) merge(b ConnState) ConnState {
	a.UserVars = a.UserVars || b.UserVars
	a.SetsUserVars = a.SetsUserVars || b.SetsUserVars
	a.UserVarsFromData = a.UserVarsFromData || b.UserVarsFromData
	a.GetLocks = append(a.GetLocks, b.GetLocks...)
	a.ReleaseLocks = append(a.ReleaseLocks, b.ReleaseLocks...)
	a.UnknownLock = a.UnknownLock || b.UnknownLock
	a.ReleaseAllLocks = a.ReleaseAllLocks || b.ReleaseAllLocks
	a.LockTables = a.LockTables || b.LockTables
	a.UnlockTables = a.UnlockTables || b.UnlockTables
	return a
}

func collect(st ast.Node) *visitor {
	v := &visitor{}
	st.Accept(v)
	return v
}

func (v *visitor) Enter(n ast.Node) (ast.Node, bool) {
	switch x := n.(type) {
	case *ast.SelectStmt:
		if x.LockInfo != nil && x.LockInfo.LockType != ast.SelectLockNone {
			v.locking = true
		}
		if x.SelectIntoOpt != nil {
			v.into = true
		}
		if x.SelectStmtOpts != nil && x.SelectStmtOpts.CalcFoundRows {
			v.calcFoundRows = true
		}
	case *ast.TableName:
		v.tables = append(v.tables, x.Name.L)
		if x.Schema.L != "" {
			v.schemas = addOnce(v.schemas, x.Schema.L)
		} else {
			v.bare = append(v.bare, x.Name.L)
		}
		v.readsData = true
	case *ast.CommonTableExpression:
		if v.ctes == nil {
			v.ctes = map[string]bool{}
		}
		v.ctes[x.Name.L] = true
	case *ast.ColumnNameExpr, *ast.SubqueryExpr:
		v.readsData = true
	case *ast.FuncCallExpr:
		v.noteLockCall(x)
		v.readsData = v.readsData || volatileFuncs[x.FnName.L]
		if sessionFuncs[x.FnName.L] && v.sessionFunc == "" {
			v.sessionFunc = x.FnName.L
		}
		if sessionFuncs[x.FnName.L] && !diagnosticFuncs[x.FnName.L] {
			v.stateFunc = true
		}
	case *ast.VariableExpr:
		if !x.IsSystem {
			v.userVar = true
			v.setsUserVar = v.setsUserVar || x.Value != nil
		} else if name := strings.ToLower(x.Name); !x.IsGlobal {
			if name == "warning_count" || name == "error_count" {
				v.diagVar = true
			} else if connectionVars[name] {
				v.connVar = name
			}
		}
	}
	return n, false
}

func (v *visitor) Leave(n ast.Node) (ast.Node, bool) { return n, true }

const reasonUnparsable = "not parsable"

// shapeSafe reports whether normalizing sql keeps everything that decides
// its class: comments (hints, executable comments) and bytes the lexer
// may drop make the shape lossy.
func shapeSafe(sql string) bool {
	// "$@" is a user variable inside an XPath string (see Classify's
	// check): a literal that changes the class.
	return !strings.Contains(sql, "/*") && !strings.Contains(sql, "#") && !strings.Contains(sql, "--") &&
		!strings.Contains(sql, "$@") && utf8.ValidString(sql)
}

// fallbackKind recognises transaction control the parser rejects (BEGIN
// WORK, COMMIT WORK, ROLLBACK WORK …) so it is still counted as such;
// everything else unparsable is a write, for the master.
func fallbackKind(sql string) (kind Kind, rollback bool) {
	words := strings.Fields(strings.ToUpper(strings.TrimRight(strings.TrimSpace(sql), ";")))
	if len(words) == 0 || len(words) > 4 {
		return KindWrite, false
	}
	switch words[0] {
	case "BEGIN":
		return KindBegin, false
	case "COMMIT":
		return KindEnd, false
	case "ROLLBACK":
		if len(words) > 1 && words[1] == "TO" {
			return KindWrite, false
		}
		return KindEnd, true
	}
	return KindWrite, false
}

// guessState is connState for text the parser cannot read: it assumes
// the worst wherever the text allows it.
func guessState(sql string) ConnState {
	lower := strings.ToLower(sql)
	userVars := strings.Contains(strings.ReplaceAll(lower, "@@", ""), "@")
	return ConnState{
		UserVars: userVars, SetsUserVars: userVars, UserVarsFromData: userVars,
		UnknownLock: strings.Contains(lower, "get_lock"),
		LockTables:  strings.Contains(lower, "lock table"),
	}
}

// findHint looks for a routing hint comment: /* master */ or
// /* switchyard:master */ force the master, /* replica */, /* slave */ or
// /* switchyard:replica */ ask for a replica. Case and spaces inside the
// comment do not matter; the comment may be anywhere in the statement.
func findHint(sql string) Hint {
	for i := 0; i+4 <= len(sql); {
		j := strings.Index(sql[i:], "/*")
		if j < 0 {
			return HintNone
		}
		start := i + j + 2
		end := strings.Index(sql[start:], "*/")
		if end < 0 {
			return HintNone
		}
		body := strings.ToLower(strings.TrimSpace(sql[start : start+end]))
		body = strings.TrimPrefix(body, "+")
		body = strings.TrimSpace(body)
		switch body {
		case "master", "primary", "switchyard:master":
			return HintMaster
		case "replica", "slave", "switchyard:replica":
			return HintReplica
		}
		i = start + end + 2
	}
	return HintNone
}
