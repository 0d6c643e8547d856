package proxy

import (
	"encoding/binary"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/router"
)

// Prepared statements: the client sees the proxy's own statement ids.
// Each statement remembers its SQL and the parameter types last bound, so
// it can be prepared again, lazily, on any backend connection the session
// comes to use (a new connection after a backend was lost, or another
// server), and executed there even when the client does not resend types.

type preparedStmt struct {
	id    uint32
	query []byte
	class router.Class
	// longDataOn is the server that received COM_STMT_SEND_LONG_DATA for
	// the next execute (which must run there); lastOn where it last ran
	// (its cursor lives there).
	longDataOn string
	lastOn     string
	numParams  uint16
	numColumns uint16
	paramTypes []byte // 2 bytes per parameter, from the last bind
	// onConn maps a backend connection to the statement's id there.
	onConn map[*backend.Conn]uint32
}

type stmtRegistry struct {
	next  uint32
	stmts map[uint32]*preparedStmt
}

func newStmtRegistry() stmtRegistry { return stmtRegistry{stmts: map[uint32]*preparedStmt{}} }

func (r *stmtRegistry) add(st *preparedStmt) {
	r.next++
	st.id = r.next
	r.stmts[st.id] = st
}

func (r *stmtRegistry) get(id uint32) *preparedStmt { return r.stmts[id] }

func (r *stmtRegistry) remove(id uint32) { delete(r.stmts, id) }

func (r *stmtRegistry) clear() { r.stmts = map[uint32]*preparedStmt{} }

// forgetConn drops backend ids on a connection that is going away.
func (r *stmtRegistry) forgetConn(bc *backend.Conn) {
	for _, st := range r.stmts {
		delete(st.onConn, bc)
	}
}

// prepare handles COM_STMT_PREPARE: classified once, prepared now on the
// backend that would run it (so the client gets real metadata and real
// errors), the reply relayed with the proxy's id in place of the server's
// (relayPrepare). Other backends prepare it lazily when a later execute
// runs there.
func (s *session) prepare(data []byte) error {
	cl, data := s.classify(data)
	s.noteStatement(cl.Digest)
	return s.exec(&command{class: cl, payload: data, route: routeByClass, reply: replyPrepare})
}

// prepareOn makes sure st is prepared on bc and returns its id there. The
// reply is consumed here: the client already has the metadata.
func (s *session) prepareOn(bc *backend.Conn, st *preparedStmt) (uint32, error) {
	if id, ok := st.onConn[bc]; ok {
		return id, nil
	}
	cmd := append([]byte{mysql.COM_STMT_PREPARE}, st.query...)
	if err := s.send(bc, cmd); err != nil {
		return 0, err
	}
	p, err := s.readBackend(bc)
	if err != nil {
		return 0, err
	}
	if p[4] == mysql.ERR_HEADER {
		return 0, parseErrPacket(p[4:])
	}
	id := binary.LittleEndian.Uint32(p[5:])
	cols, params := binary.LittleEndian.Uint16(p[9:]), binary.LittleEndian.Uint16(p[11:])
	for _, n := range []uint16{params, cols} {
		if n == 0 {
			continue
		}
		for i := 0; i <= int(n); i++ {
			if _, err := s.readBackend(bc); err != nil {
				return 0, err
			}
		}
	}
	st.onConn[bc] = id
	return id, nil
}

// lookup resolves the statement id in bytes 1..4 of a command.
func (s *session) lookup(data []byte) *preparedStmt {
	if len(data) < 5 {
		return nil
	}
	return s.stmts.get(binary.LittleEndian.Uint32(data[1:]))
}

// withID returns a copy of a statement command with the backend's id.
func withID(data []byte, id uint32) []byte {
	pkt := append([]byte(nil), data...)
	binary.LittleEndian.PutUint32(pkt[1:], id)
	return pkt
}

// executeStmt handles COM_STMT_EXECUTE: the packet is forwarded as the
// client sent it (no decoding of values, so NULLs and types survive), with
// the backend's statement id, and with the parameter types added when the
// client relies on types bound in an earlier execute on another
// connection (bindPacket).
func (s *session) executeStmt(data []byte) error {
	st := s.lookup(data)
	if st == nil {
		return errUnknownStmt(stmtID(data), "mysqld_stmt_execute")
	}
	s.noteStatement(st.class.Digest)
	s.mux.notePin(st.class)
	defer func() { st.longDataOn = "" }()
	return s.exec(&command{class: st.class, payload: data, stmt: st, route: routeStmt, reply: replyResult})
}

func stmtID(data []byte) uint32 {
	if len(data) < 5 {
		return 0
	}
	return binary.LittleEndian.Uint32(data[1:])
}

// sendLongData forwards COM_STMT_SEND_LONG_DATA (no reply) to the backend
// the next execute will use, and pins that execute there.
func (s *session) sendLongData(data []byte) error {
	st := s.lookup(data)
	if st == nil {
		return nil // no reply in the protocol: the execute will report it
	}
	d, err := s.decide(&command{class: st.class, stmt: st, route: routeStmt})
	if err != nil {
		return nil
	}
	bc, err := s.connTo(d.Target)
	if err != nil {
		return nil
	}
	st.longDataOn = d.Target
	id, err := s.prepareOn(bc, st)
	if err != nil {
		return nil
	}
	if err := s.send(bc, withID(data, id)); err != nil {
		// No reply is expected: drop the connection quietly; the execute
		// that follows will report the failure.
		bc.MarkBroken()
		s.release(d.Target)
	}
	return nil
}

// closeStmt handles COM_STMT_CLOSE (no reply) on every connection where
// the statement was prepared.
func (s *session) closeStmt(data []byte) error {
	st := s.lookup(data)
	if st == nil {
		return nil
	}
	s.stmts.remove(st.id)
	for bc, id := range st.onConn {
		if bc.Broken() {
			continue
		}
		pkt := []byte{mysql.COM_STMT_CLOSE, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(pkt[1:], id)
		if err := s.send(bc, pkt); err != nil {
			bc.MarkBroken()
		}
	}
	return nil
}

// resetStmt handles COM_STMT_RESET (reply OK/ERR) where the statement
// last ran.
func (s *session) resetStmt(data []byte) error {
	st := s.lookup(data)
	if st == nil {
		return errUnknownStmt(stmtID(data), "mysqld_stmt_reset")
	}
	defer func() { st.longDataOn = "" }()
	return s.exec(&command{class: router.Class{Kind: router.KindRead}, payload: data, stmt: st, route: routeStmtLast, reply: replyResult})
}

// fetch handles COM_STMT_FETCH on a cursor (rows then EOF, or ERR) where
// the statement last ran.
func (s *session) fetch(data []byte) error {
	st := s.lookup(data)
	if st == nil {
		return errUnknownStmt(stmtID(data), "mysqld_stmt_fetch")
	}
	return s.exec(&command{class: router.Class{Kind: router.KindRead}, payload: data, stmt: st, route: routeStmtLast, reply: replyRows})
}

// bindPacket rewrites an execute packet for the backend statement id,
// remembering or re-inserting the parameter types.
//
// Layout: 0x17, stmt_id(4), flags(1), iterations(4), then when there are
// parameters: NULL bitmap ((n+7)/8), new_params_bound_flag(1),
// [types 2n if the flag is 1], values.
func (st *preparedStmt) bindPacket(data []byte, backendID uint32) ([]byte, error) {
	out := append([]byte(nil), data...)
	binary.LittleEndian.PutUint32(out[1:], backendID)
	if st.numParams == 0 {
		return out, nil
	}
	n := int(st.numParams)
	flagPos := 10 + (n+7)/8
	if len(data) <= flagPos {
		return nil, fmt.Errorf("COM_STMT_EXECUTE too short for %d parameters", n)
	}
	if data[flagPos] == 1 {
		if len(data) < flagPos+1+2*n {
			return nil, fmt.Errorf("COM_STMT_EXECUTE parameter types truncated")
		}
		st.paramTypes = append(st.paramTypes[:0], data[flagPos+1:flagPos+1+2*n]...)
		return out, nil
	}
	if st.paramTypes == nil {
		return out, nil // nothing bound yet: let the server answer
	}
	// Re-insert the remembered types: the backend statement may never
	// have seen them.
	fixed := make([]byte, 0, len(data)+2*n)
	fixed = append(fixed, out[:flagPos]...)
	fixed = append(fixed, 1)
	fixed = append(fixed, st.paramTypes...)
	fixed = append(fixed, out[flagPos+1:]...)
	return fixed, nil
}
