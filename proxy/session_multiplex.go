package proxy

import (
	"strconv"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/router"
)

// Multiplexing (pool.multiplexing): between statements, a session gives
// its backend connections back to the pool unless something ties it to
// them, so thousands of mostly idle clients share a few server
// connections. Correctness comes first, as in ProxySQL: any state that
// lives on a server connection keeps the connection.
//
// Given back connections are parked, not reset: they carry only the
// state every session replays anyway (database, character set, the
// multi-statement option), described by stateTag. The next session with
// the same tag uses one as is; another replays its own state first.

// keepAfterInsertID is how many statements after one that generated an
// AUTO_INCREMENT id still run on the same connection, so LAST_INSERT_ID()
// reads it (ProxySQL's mysql-auto_increment_delay_multiplex, default 5).
// After warnings the next statement (SHOW WARNINGS) stays on it too.
const keepAfterInsertID = 5

// muxState is what multiplexing tracks for one session.
type muxState struct {
	// pinned says why the session keeps its connections until reset.
	pinned string
	// keepFor counts statements that must still run on the same
	// connections (LAST_INSERT_ID, warnings).
	keepFor int
	tag     cachedTag
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

// keepReason says why the session must keep its backend connections now
// ("" when it may give them back).
func (s *session) keepReason() string {
	switch {
	case s.mux.pinned != "":
		return s.mux.pinned
	case s.status&mysql.SERVER_STATUS_IN_TRANS != 0 || s.route.InTx:
		return "transaction"
	case s.route.AutocommitOff:
		return "autocommit off"
	case len(s.route.TempTables) > 0:
		return "temporary tables"
	case s.state.replayedVars() > 0:
		return "session variables"
	case len(s.stmts.stmts) > 0:
		return "prepared statements"
	case s.status&mysql.SERVER_STATUS_CURSOR_EXISTS != 0:
		return "open cursor"
	case s.mux.keepFor > 0:
		return "result of a recent statement"
	}
	return ""
}

// giveBackConns parks the session's backend connections in their pools
// when multiplexing is on and nothing ties the session to them, and
// publishes what it keeps (for SHOW SESSIONS).
func (s *session) giveBackConns() {
	why := s.holdReason()
	if why == "" && len(s.conns) > 0 {
		tag := s.stateTag()
		for name, h := range s.conns {
			delete(s.conns, name)
			h.bc.SetBeforeRead(nil)
			h.bc.NoteSchema(s.state.db)
			if h.synced != s.state.version {
				s.backends.Return(h.bc) // state not known to match the tag: reset it
				continue
			}
			s.backends.Park(h.bc, tag)
		}
	}
	s.info.heldConns.Store(int32(len(s.conns)))
	if why == "" && len(s.conns) == 0 {
		storeIfChanged(&s.info.threads, "")
	}
	storeIfChanged(&s.info.heldBecause, why)
}

// holdReason says why the session keeps the connections it holds between
// statements ("" when it holds none or may give them back).
func (s *session) holdReason() string {
	switch {
	case len(s.conns) == 0:
		return ""
	case !s.settings.Multiplexing:
		return "multiplexing off"
	}
	return s.keepReason()
}

// stateTag describes the session state replayed on every connection it
// uses. A parked connection with the same tag needs no replay.
func (s *session) stateTag() string {
	multi := "0"
	if s.wantsMultiStatements() {
		multi = "1"
	}
	t := &s.mux.tag
	if t.value == "" || t.version != s.state.version || t.multi != multi {
		t.value = strconv.Itoa(int(s.state.collationID)) + "/" + multi + "/" + s.state.db
		t.version, t.multi = s.state.version, multi
	}
	return t.value
}

// cachedTag is the last stateTag and what it was computed from.
type cachedTag struct {
	value   string
	version uint64
	multi   string
}
