package proxy

import (
	"bytes"
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
	// cluster is where it was prepared; it runs there.
	cluster string
	// longDataOn is the server that received COM_STMT_SEND_LONG_DATA for
	// the next execute (which must run there); lastOn where it last ran
	// (its cursor lives there).
	longDataOn string
	lastOn     string
	numParams  uint16
	numColumns uint16
	paramTypes []byte // 2 bytes per parameter, from the last bind
	// typesGen numbers the parameter types: it changes whenever an execute
	// binds types that differ from paramTypes (0: none bound yet).
	typesGen uint32
	// onConn is the statement on each backend connection it was prepared on.
	onConn map[*backend.Conn]*stmtOnConn
	// digest is where its executes are counted in the digest table.
	digest digestSlot
}

// stmtOnConn is a statement as prepared on one backend connection.
type stmtOnConn struct {
	id uint32 // the server's statement id
	// types is the typesGen that server statement was last given (0:
	// unknown). A server keeps the types of the last execute that sent
	// them, so while it has the current ones an execute that sends none
	// goes as it came: resending them makes the server set up its
	// parameter conversions again on every execute.
	types uint32
}

// stmtRegistry is the one owner of a session's prepared statements.
type stmtRegistry struct {
	next  uint32
	stmts map[uint32]*preparedStmt
}

func newStmtRegistry() stmtRegistry { return stmtRegistry{stmts: map[uint32]*preparedStmt{}} }

// nextID is the id the next statement added gets.
func (r *stmtRegistry) nextID() uint32 { return r.next + 1 }

func (r *stmtRegistry) add(st *preparedStmt) {
	r.next++
	st.id = r.next
	r.stmts[st.id] = st
}

// lookup resolves the statement id in bytes 1..4 of a command.
func (r *stmtRegistry) lookup(data []byte) *preparedStmt {
	if len(data) < 5 {
		return nil
	}
	return r.stmts[stmtID(data)]
}

func (r *stmtRegistry) remove(id uint32) { delete(r.stmts, id) }

func (r *stmtRegistry) clear() { r.stmts = map[uint32]*preparedStmt{} }

func (r *stmtRegistry) count() int { return len(r.stmts) }

// forgetConn drops backend ids on a connection that is going away.
func (r *stmtRegistry) forgetConn(bc *backend.Conn) {
	for _, st := range r.stmts {
		delete(st.onConn, bc)
	}
}

// stmtID reads the 4-byte id after a command byte (0 when too short).
func stmtID(data []byte) uint32 {
	if len(data) < 5 {
		return 0
	}
	return binary.LittleEndian.Uint32(data[1:])
}

// withID returns a copy of a statement command with the backend's id.
func withID(data []byte, id uint32) []byte {
	pkt := append([]byte(nil), data...)
	binary.LittleEndian.PutUint32(pkt[1:], id)
	return pkt
}

// bindPacket rewrites an execute packet for the statement on one backend
// connection, remembering the parameter types it binds or inserting the
// remembered ones when that server statement does not have them, into
// dst's memory (reused: no allocation per execute).
//
// Layout: 0x17, stmt_id(4), flags(1), iterations(4), then when there are
// parameters: NULL bitmap ((n+7)/8), new_params_bound_flag(1),
// [types 2n if the flag is 1], values.
func (st *preparedStmt) bindPacket(dst, data []byte, on *stmtOnConn) ([]byte, error) {
	out := append(dst[:0], data...)
	binary.LittleEndian.PutUint32(out[1:], on.id)
	if st.numParams == 0 {
		return out, nil
	}
	typed, err := st.rememberTypes(data)
	if err != nil {
		return out, err
	}
	if typed {
		on.types = st.typesGen
		return out, nil
	}
	if st.paramTypes == nil || on.types == st.typesGen {
		return out, nil // nothing bound yet (the server answers), or the server statement has these types
	}
	// Insert the remembered types: the server statement never had them.
	on.types = st.typesGen
	n := int(st.numParams)
	flagPos := 10 + (n+7)/8
	tail := len(out) - flagPos - 1
	out = append(out, make([]byte, 2*n)...) // room for the types
	copy(out[flagPos+1+2*n:], out[flagPos+1:flagPos+1+tail])
	out[flagPos] = 1
	copy(out[flagPos+1:], st.paramTypes)
	return out, nil
}

// rememberTypes records the parameter types an execute sends (typed:
// it sends them); called for every execute, even one the result cache
// answers, so a later execute that sends none can be given them.
func (st *preparedStmt) rememberTypes(data []byte) (typed bool, err error) {
	if st.numParams == 0 {
		return false, nil
	}
	n := int(st.numParams)
	flagPos := 10 + (n+7)/8
	if len(data) <= flagPos {
		return false, fmt.Errorf("COM_STMT_EXECUTE too short for %d parameters", n)
	}
	if data[flagPos] != 1 {
		return false, nil
	}
	if len(data) < flagPos+1+2*n {
		return false, fmt.Errorf("COM_STMT_EXECUTE parameter types truncated")
	}
	if types := data[flagPos+1 : flagPos+1+2*n]; st.typesGen == 0 || !bytes.Equal(types, st.paramTypes) {
		st.paramTypes = append(st.paramTypes[:0], types...)
		st.typesGen++
	}
	return true, nil
}

// executeKey is an execute as the result cache knows it: its flags,
// NULL bitmap, the parameter types (sent now or earlier) and the values,
// whether or not this execute resends the types.
func (st *preparedStmt) executeKey(data []byte) []byte {
	if st.numParams == 0 || len(data) < 5 {
		return data[min(5, len(data)):]
	}
	n := int(st.numParams)
	flagPos := 10 + (n+7)/8
	if len(data) <= flagPos {
		return data[5:]
	}
	values := data[flagPos+1:]
	if data[flagPos] == 1 && len(values) >= 2*n {
		values = values[2*n:]
	}
	key := make([]byte, 0, len(data)+2*n)
	key = append(key, data[5:flagPos]...)
	key = append(key, st.paramTypes...)
	return append(key, values...)
}

// close handles COM_STMT_CLOSE (no reply) on every connection where the
// statement was prepared.
func (r *stmtRegistry) close(data []byte, rl *relayer) {
	st := r.lookup(data)
	if st == nil {
		return
	}
	r.remove(st.id)
	for bc, on := range st.onConn {
		if bc.Broken() {
			continue
		}
		pkt := []byte{mysql.COM_STMT_CLOSE, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(pkt[1:], on.id)
		if err := rl.send(bc, pkt, 0); err != nil {
			bc.MarkBroken()
		}
	}
}
