package proxy

import (
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/rules"
)

// ruleStatement fills st with what the query rules see of a command: its
// text (the prepared statement's for an execute), digest, kind and
// tables, and who runs it from where (in database db).
func ruleStatement(st *rules.Statement, c *command, l *login, db string) {
	*st = rules.Statement{SQL: commandSQL(c), Digest: c.class.Digest, User: l.user.Name, Schema: db,
		Client: l.client, Kind: ruleKind(c.class), Tables: c.class.Tables}
}

// commandSQL is the statement text of a COM_QUERY or COM_STMT_EXECUTE,
// without a copy: valid while the command is.
func commandSQL(c *command) string {
	switch {
	case c.stmt != nil && len(c.stmt.query) > 0:
		return unsafe.String(&c.stmt.query[0], len(c.stmt.query))
	case len(c.payload) > 1 && c.payload[0] == mysql.COM_QUERY:
		return unsafe.String(&c.payload[1], len(c.payload)-1)
	}
	return ""
}

// ruleKind is a class as rules name it: read, write or ddl.
func ruleKind(cl router.Class) rules.Kind {
	switch {
	case cl.DDL:
		return rules.KindDDL
	case cl.Kind == router.KindRead:
		return rules.KindRead
	case cl.Kind == router.KindWrite:
		return rules.KindWrite
	}
	return rules.KindOther
}

// errBlocked is the client's error for a statement a rule refuses:
// ER_NOT_ALLOWED_COMMAND, as MaxScale's firewall answers.
func errBlocked(a rules.Action) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_NOT_ALLOWED_COMMAND, State: "42000",
		Message: "Switchyard: statement blocked by rule " + a.Rules + ": " + a.Block}
}
