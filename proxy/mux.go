package proxy

import "github.com/switchyard/switchyard/router"

// Multiplexing (pool.multiplexing): between statements, a session gives
// its backend connections back to the pool unless something ties it to
// them, so thousands of mostly idle clients share a few server
// connections. Correctness comes first, as in ProxySQL: any state that
// lives on a server connection keeps the connection.
//
// Given back connections are parked, not reset: they carry only the
// state every session replays anyway (database, character set, the
// multi-statement option), described by sessionState.tagFor. The next
// session with the same tag uses one as is; another replays its own
// state first.

// keepAfterInsertID is how many statements after one that generated an
// AUTO_INCREMENT id still run on the same connection, so LAST_INSERT_ID()
// reads it (ProxySQL's mysql-auto_increment_delay_multiplex, default 5).
// After warnings the next statement (SHOW WARNINGS) stays on it too.
const keepAfterInsertID = 5

// muxState is the one owner of why a session keeps its connections
// beyond what its other parts say.
type muxState struct {
	// pinned says why the session keeps its connections until reset.
	pinned string
	// keepFor counts statements that must still run on the same
	// connections (LAST_INSERT_ID, warnings).
	keepFor int
}

// commandStarts counts down the statements kept on the same connections.
func (m *muxState) commandStarts() {
	if m.keepFor > 0 {
		m.keepFor--
	}
}

// noteReply keeps the connections for the statements that may read what
// this reply left: LAST_INSERT_ID() after an insert id, SHOW WARNINGS.
func (m *muxState) noteReply(r *reply) {
	switch {
	case r.insertID:
		m.keepFor = keepAfterInsertID
	case r.warnings:
		m.keepFor = max(m.keepFor, 1)
	}
}

// notePin pins the session (until reset) before running a statement
// that may leave state on its connection.
func (m *muxState) notePin(cl router.Class) {
	if cl.Pin && m.pinned == "" {
		m.pinned = "connection state (" + cl.Reason + ")"
	}
}

// reset forgets pins (COM_RESET_CONNECTION, COM_CHANGE_USER).
func (m *muxState) reset() { m.pinned, m.keepFor = "", 0 }

// keepers is what the session's other parts say about keeping its
// connections.
type keepers struct {
	inTx, autocommitOff, tempTables, variables, statements, cursor bool
}

// keepReason says why the session must keep its backend connections now
// ("" when it may give them back).
func (m *muxState) keepReason(k keepers) string {
	switch {
	case m.pinned != "":
		return m.pinned
	case k.inTx:
		return "transaction"
	case k.autocommitOff:
		return "autocommit off"
	case k.tempTables:
		return "temporary tables"
	case k.variables:
		return "session variables"
	case k.statements:
		return "prepared statements"
	case k.cursor:
		return "open cursor"
	case m.keepFor > 0:
		return "result of a recent statement"
	}
	return ""
}
