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
// errors), the reply relayed with the proxy's id in place of the server's.
// Other backends prepare it lazily when a later execute runs there.
func (s *session) prepare(data []byte) error {
	sql := string(data[1:])
	cl := s.srv.classifier.Classify(sql, s.state.ansiQuotes())
	s.noteStatement(cl.Digest)
	decide := func() (router.Decision, error) {
		return router.Decide(cl, s.route, s.srv.cluster.Topology(), s.srv.policy())
	}
	relay := func(bc *backend.Conn) error {
		p, err := s.readBackend(bc)
		if err != nil {
			return s.backendFailed(bc, err, false)
		}
		if p[4] == mysql.ERR_HEADER {
			return s.writeClient(p)
		}
		if p[4] != mysql.OK_HEADER || len(p) < 4+12 {
			return s.backendFailed(bc, fmt.Errorf("bad COM_STMT_PREPARE reply"), false)
		}
		st := &preparedStmt{
			query:      append([]byte(nil), data[1:]...),
			class:      cl,
			numColumns: binary.LittleEndian.Uint16(p[9:]),
			numParams:  binary.LittleEndian.Uint16(p[11:]),
			onConn:     map[*backend.Conn]uint32{bc: binary.LittleEndian.Uint32(p[5:])},
		}
		s.stmts.add(st)
		binary.LittleEndian.PutUint32(p[5:], st.id)
		if err := s.writeClient(p); err != nil {
			return s.abandon(bc, err)
		}
		return s.relayDefinitions(bc, st.numParams, st.numColumns)
	}
	// Preparing is not running: the router's view of the session must not
	// change, so the class passed to Observe is a neutral one.
	return s.execute(router.Class{Kind: router.KindRead}, data, relay, decide)
}

// relayDefinitions relays parameter and column definitions, each block
// followed by an EOF.
func (s *session) relayDefinitions(bc *backend.Conn, params, columns uint16) error {
	for _, n := range []uint16{params, columns} {
		if n == 0 {
			continue
		}
		for i := uint16(0); i <= n; i++ { // n definitions + EOF
			if err := s.relayPacket(bc); err != nil {
				return err
			}
		}
	}
	return nil
}

// prepareOn makes sure st is prepared on bc and returns its id there. The
// reply is consumed here: the client already has the metadata.
func (s *session) prepareOn(bc *backend.Conn, st *preparedStmt) (uint32, error) {
	if id, ok := st.onConn[bc]; ok {
		return id, nil
	}
	cmd := append([]byte{mysql.COM_STMT_PREPARE}, st.query...)
	if err := s.sendCommand(bc, cmd); err != nil {
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
		for i := uint16(0); i <= n; i++ {
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

// decideFor routes a statement command: where long data went, else as
// its class says given the session's state.
func (s *session) decideFor(st *preparedStmt) func() (router.Decision, error) {
	return func() (router.Decision, error) {
		if st.longDataOn != "" {
			return router.Decision{Target: st.longDataOn}, nil
		}
		return router.Decide(st.class, s.route, s.srv.cluster.Topology(), s.srv.policy())
	}
}

// onStmtConn returns a build function that prepares st on the chosen
// connection if needed and rewrites the command for the backend's id.
func (s *session) onStmtConn(st *preparedStmt, data []byte, rewrite func([]byte, uint32) ([]byte, error)) func(*backend.Conn) ([]byte, error) {
	return func(bc *backend.Conn) ([]byte, error) {
		id, err := s.prepareOn(bc, st)
		if err != nil {
			return nil, err
		}
		st.lastOn = s.nameOf(bc)
		return rewrite(data, id)
	}
}

func withID(data []byte, id uint32) ([]byte, error) {
	pkt := append([]byte(nil), data...)
	binary.LittleEndian.PutUint32(pkt[1:], id)
	return pkt, nil
}

// execute handles COM_STMT_EXECUTE: the packet is forwarded as the client
// sent it (no decoding of values, so NULLs and types survive), with the
// backend's statement id, and with the parameter types added when the
// client relies on types bound in an earlier execute on another
// connection.
func (s *session) executeStmt(data []byte) error {
	st := s.lookup(data)
	if st == nil {
		return s.writeErrFatal(errUnknownStmt(stmtID(data), "mysqld_stmt_execute"))
	}
	s.noteStatement(st.class.Digest)
	s.notePin(st.class)
	build := s.onStmtConn(st, data, func(d []byte, id uint32) ([]byte, error) {
		pkt, err := st.bindPacket(d, id)
		if err != nil {
			return nil, errMalformed(err.Error())
		}
		return pkt, nil
	})
	defer func() { st.longDataOn = "" }()
	return s.executeBuilt(st.class, build, s.relayResult, s.decideFor(st))
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
	d, err := s.decideFor(st)()
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
	pkt, _ := withID(data, id)
	if err := s.sendCommand(bc, pkt); err != nil {
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
		if err := s.sendCommand(bc, pkt); err != nil {
			bc.MarkBroken()
		}
	}
	return nil
}

// sameBackend routes RESET and FETCH where the statement last ran.
func (s *session) sameBackend(st *preparedStmt) func() (router.Decision, error) {
	return func() (router.Decision, error) {
		if st.longDataOn != "" {
			return router.Decision{Target: st.longDataOn}, nil
		}
		if st.lastOn != "" {
			return router.Decision{Target: st.lastOn}, nil
		}
		return s.decideFor(st)()
	}
}

// resetStmt handles COM_STMT_RESET (reply OK/ERR).
func (s *session) resetStmt(data []byte) error {
	st := s.lookup(data)
	if st == nil {
		return s.writeErrFatal(errUnknownStmt(stmtID(data), "mysqld_stmt_reset"))
	}
	defer func() { st.longDataOn = "" }()
	return s.executeBuilt(router.Class{Kind: router.KindRead}, s.onStmtConn(st, data, withID), s.relayResult, s.sameBackend(st))
}

// fetch handles COM_STMT_FETCH on a cursor (rows then EOF, or ERR).
func (s *session) fetch(data []byte) error {
	st := s.lookup(data)
	if st == nil {
		return s.writeErrFatal(errUnknownStmt(stmtID(data), "mysqld_stmt_fetch"))
	}
	return s.executeBuilt(router.Class{Kind: router.KindRead}, s.onStmtConn(st, data, withID), s.relayRows, s.sameBackend(st))
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
