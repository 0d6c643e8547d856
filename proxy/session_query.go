package proxy

import (
	"context"
	"encoding/binary"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/router"
)

// query handles COM_QUERY: classify (cached by text and by shape), then
// run where the router decides.
func (s *session) query(data []byte) error {
	if len(data) > 5 && (data[1]|0x20) == 'k' {
		if id, query, ok := parseKill(string(data[1:])); ok {
			return s.kill(id, query)
		}
	}
	cl, data := classifyCommand(s.srv.classifier, data, s.state.ansiQuotes(), s.id)
	s.info.noteStatement(cl.Digest)
	s.mux.notePin(cl)
	return s.exec(&command{class: cl, payload: data, route: routeByClass, reply: replyResult})
}

// classifyCommand classifies the SQL of a COM_QUERY or COM_STMT_PREPARE
// packet of session id. A statement calling CONNECTION_ID() is first
// rewritten to carry the session's id (withConnectionID), and classified
// as rewritten.
func classifyCommand(cls *router.Classifier, data []byte, ansiQuotes bool, id uint32) (router.Class, []byte) {
	cl := cls.ClassifyBytes(data[1:], ansiQuotes)
	if cl.ConnectionID {
		sql := withConnectionID(string(data[1:]), id)
		data = append([]byte{data[0]}, sql...)
		cl = cls.Classify(sql, ansiQuotes)
		cl.ConnectionID = false
	}
	return cl, data
}

// initDB handles COM_INIT_DB (USE from most connectors) like USE: on the
// database's cluster (the session moves there, outside a transaction);
// the new default database is then replayed on every connection. Servers
// report the change through session tracking; the name is also taken from
// the command in case the server does not.
func (s *session) initDB(data []byte) error {
	db := string(data[1:])
	cl := router.Class{Kind: router.KindSession, Reason: "session state", Schemas: []string{lowerASCII(db)}}
	err := s.exec(&command{class: cl, payload: data, route: routeByClass, reply: replyResult})
	if err == nil && s.state.db != db {
		s.state.db = db
		s.state.version++
		s.conns.synced(s.cmd.target, s.state.version)
	}
	return err
}

// prepare handles COM_STMT_PREPARE: classified once, prepared now on the
// backend that would run it (so the client gets real metadata and real
// errors), the reply relayed with the proxy's id in place of the server's.
// Other backends prepare it lazily when a later execute runs there.
func (s *session) prepare(data []byte) error {
	cl, data := classifyCommand(s.srv.classifier, data, s.state.ansiQuotes(), s.id)
	s.info.noteStatement(cl.Digest)
	return s.exec(&command{class: cl, payload: data, route: routeByClass, reply: replyPrepare, stmtID: s.stmts.nextID()})
}

// executeStmt handles COM_STMT_EXECUTE: the packet is forwarded as the
// client sent it (no decoding of values, so NULLs and types survive), with
// the backend's statement id, and with the parameter types added when the
// client relies on types bound in an earlier execute on another
// connection (bindPacket).
func (s *session) executeStmt(data []byte) error {
	st := s.stmts.lookup(data)
	if st == nil {
		return errUnknownStmt(stmtID(data), "mysqld_stmt_execute")
	}
	s.info.noteStatement(st.class.Digest)
	s.mux.notePin(st.class)
	if _, err := st.rememberTypes(data); err != nil {
		return errMalformed("COM_STMT_EXECUTE")
	}
	defer func() { st.longDataOn = "" }()
	return s.exec(&command{class: st.class, payload: data, stmt: st, route: routeStmt, reply: replyResult})
}

// onLastServer handles COM_STMT_RESET (reply OK/ERR) and COM_STMT_FETCH
// (rows of a cursor, then EOF, or ERR) where the statement last ran.
func (s *session) onLastServer(data []byte) error {
	st := s.stmts.lookup(data)
	c := &command{class: router.Class{Kind: router.KindRead}, payload: data, stmt: st, route: routeStmtLast, reply: replyResult}
	where := "mysqld_stmt_reset"
	if data[0] == mysql.COM_STMT_FETCH {
		c.reply, where = replyRows, "mysqld_stmt_fetch"
	}
	if st == nil {
		return errUnknownStmt(stmtID(data), where)
	}
	defer func() { st.longDataOn = "" }()
	return s.exec(c)
}

// sendLongData forwards COM_STMT_SEND_LONG_DATA (no reply) to the backend
// the next execute will use, and pins that execute there. Failures are
// not answered (the protocol has no reply): the execute reports them.
func (s *session) sendLongData(data []byte) error {
	st := s.stmts.lookup(data)
	if st == nil {
		return nil
	}
	c := &command{class: st.class, payload: data, stmt: st, route: routeStmt}
	v, err := s.clusterOf(c)
	if err != nil {
		return nil
	}
	d, err := s.decide(c, v, v.b.topology())
	if err != nil {
		return nil
	}
	bc, err := s.connTo(v, d.Target)
	if err != nil {
		return nil
	}
	set := v.settings(s.cmd.set)
	st.longDataOn = d.Target
	on, err := s.relay.prepareOn(bc, st, set.IOTimeout)
	if err == nil {
		err = s.relay.send(bc, withID(data, on.id), set.IOTimeout)
	}
	if err != nil {
		bc.MarkBroken()
		s.dropConn(d.Target)
	}
	return nil
}

// setOption handles COM_SET_OPTION (multi-statements on/off): mirrored on
// every held connection, replayed on later ones.
func (s *session) setOption(data []byte) error {
	if len(data) < 3 {
		return errMalformed("COM_SET_OPTION")
	}
	on := binary.LittleEndian.Uint16(data[1:]) == 0
	s.state.multiOff = !on
	if on {
		s.login.caps |= mysql.CLIENT_MULTI_STATEMENTS
	}
	for name, h := range s.conns.held {
		ctx, cancel := context.WithTimeout(context.Background(), h.view.settings(s.cmd.set).IOTimeout)
		err := h.bc.SetMultiStatements(ctx, on)
		cancel()
		if me, ok := backend.AsMyError(err); ok {
			return me
		}
		if err != nil {
			h.bc.MarkBroken()
			s.dropConn(name)
		}
	}
	// The server answers COM_SET_OPTION with an EOF packet.
	return s.client.write([]byte{0, 0, 0, 0, mysql.EOF_HEADER, 0, 0, byte(s.status), byte(s.status >> 8)})
}

// lowerASCII lower-cases a database name for the cluster map.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
