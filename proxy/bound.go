package proxy

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/router"
)

// State bound to the master connection, which session tracking does not
// report: user variables, named locks, LOCK TABLES (and temporary tables,
// which the router's memory lists). When that connection is replaced (a
// master change, a connection cut), user variables are set again on the
// new one by replaying the statements that set them (MaxScale's session
// command history) — when a replay is sure to give the same values. What
// cannot be carried over does not vanish silently: the next statement
// gets errStateLost and the lost state is dropped from the session.

// maxVarHistory bounds the statements kept to set user variables again.
const maxVarHistory = 64

// boundState is the one owner of the state bound to a session's master
// connection in one cluster (each cluster's master has its own).
type boundState struct {
	on *backend.Conn // the master connection the state lives on (nil: none yet)
	// varHistory are the statements that set user variables, in order;
	// varsLost says why they cannot be replayed ("" when they can).
	varHistory []string
	varsLost   string
	// locks are named locks the session may hold; unknownLocks: one whose
	// name is not known.
	locks        map[string]bool
	unknownLocks bool
	tableLocks   bool
}

// empty reports whether nothing is bound to the connection.
func (b *boundState) empty() bool {
	return len(b.varHistory) == 0 && b.varsLost == "" && len(b.locks) == 0 && !b.unknownLocks && !b.tableLocks
}

// note records what a statement that succeeded on the master left on its
// connection held; tempTables: the session has temporary tables there.
func (b *boundState) note(c *command, toMaster, ok bool, held *heldConn, tempTables bool) {
	st := c.class.State
	if !ok || !toMaster {
		return
	}
	switch {
	case st.SetsUserVars && c.stmt != nil:
		b.varsLost = "a prepared statement set user variables"
	case st.UserVarsFromData:
		b.varsLost = "user variables were set from data or a volatile function (" + c.class.Digest + ")"
	case st.SetsUserVars && c.payload[0] == mysql.COM_QUERY:
		b.rememberVars(string(c.payload[1:]))
	}
	b.noteLocks(c.class)
	if (!b.empty() || tempTables) && held != nil && b.on == nil {
		b.on = held.bc
	}
}

// noteLocks follows named locks and table locks.
func (b *boundState) noteLocks(cl router.Class) {
	st := cl.State
	for _, l := range st.GetLocks {
		if b.locks == nil {
			b.locks = map[string]bool{}
		}
		b.locks[l] = true
	}
	for _, l := range st.ReleaseLocks {
		delete(b.locks, l)
	}
	b.unknownLocks = b.unknownLocks || st.UnknownLock
	if st.ReleaseAllLocks {
		b.locks, b.unknownLocks = nil, false
	}
	switch {
	case st.LockTables:
		b.tableLocks = true
	case st.UnlockTables, cl.Kind == router.KindBegin: // START TRANSACTION releases table locks
		b.tableLocks = false
	}
}

// rememberVars keeps a statement that sets user variables, once (the
// latest copy of the same text replaces the older).
func (b *boundState) rememberVars(sql string) {
	for i, q := range b.varHistory {
		if q == sql {
			b.varHistory = append(b.varHistory[:i], b.varHistory[i+1:]...)
			break
		}
	}
	if len(b.varHistory) >= maxVarHistory {
		b.varsLost = "more than 64 statements set user variables"
		return
	}
	b.varHistory = append(b.varHistory, sql)
}

// carry runs when a master connection has just been brought to the
// session's state: if the bound state lived on another connection, now
// gone, user variables are set again here. It returns what could not be
// carried over ("" when nothing was lost); the caller drops it. route's
// temporary tables are listed only then: they never move, and the check
// runs on every master statement.
func (b *boundState) carry(conn *backend.Conn, route *router.Session, timeout time.Duration) (lost string, replayed int) {
	if b.on == nil || b.on == conn {
		if !b.empty() || route.HasTempTables() {
			b.on = conn
		}
		return "", 0
	}
	b.on = conn
	if b.varsLost == "" && len(b.varHistory) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		for _, q := range b.varHistory {
			if _, err := conn.Exec(ctx, q); err != nil {
				b.varsLost = "they could not be set again (" + shortErr(err) + ")"
				break
			}
		}
		if b.varsLost == "" {
			replayed = len(b.varHistory)
		}
	}
	return b.unmovable(route.TempTables()), replayed
}

// unmovable describes the bound state a new connection cannot be given
// ("" when there is none).
func (b *boundState) unmovable(tempTables []string) string {
	var what []string
	if len(tempTables) > 0 {
		what = append(what, "temporary tables ("+strings.Join(tempTables, ", ")+")")
	}
	if len(b.locks) > 0 || b.unknownLocks {
		var names []string
		for l := range b.locks {
			names = append(names, l)
		}
		sort.Strings(names)
		what = append(what, "named locks ("+strings.Join(names, ", ")+")")
	}
	if b.tableLocks {
		what = append(what, "LOCK TABLES")
	}
	if b.varsLost != "" {
		what = append(what, "user variables: "+b.varsLost)
	}
	return strings.Join(what, ", ")
}

// dropUnmovable forgets the state that did not survive a connection: the
// user variables that were set again stay.
func (b *boundState) dropUnmovable() {
	if b.varsLost != "" {
		b.varHistory, b.varsLost = nil, ""
	}
	b.locks, b.unknownLocks, b.tableLocks = nil, false, false
}

// stateLost is session state that did not survive a new backend
// connection: the statement at hand gets the error (whichever server it
// was going to), and the session goes on without that state.
type stateLost struct{ *mysql.MyError }

func (e stateLost) Unwrap() error { return e.MyError }

// errStateLost builds the error for lost session state.
func errStateLost(what string) error {
	return stateLost{&mysql.MyError{Code: erConnectionKilled, State: "70100",
		Message: "Switchyard: the session's backend connection was replaced (master change or lost connection); " +
			shortText(what) + " did not survive and were dropped from the session; the statement was not run"}}
}
