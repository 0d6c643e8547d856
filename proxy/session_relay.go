package proxy

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
)

// The relay copies a backend's reply to the client packet by packet,
// without decoding rows: memory stays at one packet whatever the result
// size. It only looks at what it must: OK packets (re-framed for the
// client, and read for session state), EOF/ERR packets (status flags, end
// of a result), and column counts. What it learned comes back in a reply;
// the session applies it afterwards (session_exec.go, observe).
//
// Inside a transaction the relay also checksums what the client receives
// (session_tx.go replays the transaction elsewhere and compares); while
// replaying it relays to nobody.

// reply is what the relay learned from one backend reply.
type reply struct {
	ok         bool   // ended in OK or EOF, not ERR
	status     uint16 // server status flags of the last OK or EOF
	statusSeen bool
	rows       uint64 // rows relayed, plus rows affected
	gtid       string // GTID of a commit (session tracking: last_gtid)
	// autocommit is set when the server reported a change of it.
	autocommit *bool
	// changes are schema and variable changes the server reported.
	changes        []sessionChange
	charsetChanged bool // a character_set_* variable changed
	insertID       bool // an AUTO_INCREMENT id was generated
	warnings       bool
	// serverErr is the server's own ERR that ended the reply; the session
	// loop writes it to the client.
	serverErr *mysql.MyError

	// sent: some of the reply reached the client (a command lost after
	// that cannot be run again unseen).
	sent bool
	// discard: relay to nobody (a transaction being replayed).
	discard bool
	// sum, when set, checksums what the client receives; unreplayable
	// says why the reply cannot be reproduced by running the command again.
	sum          *xxhash.Digest
	unreplayable string
	// cursor: a COM_STMT_EXECUTE that asked for a cursor, whose rows come
	// later through COM_STMT_FETCH. (Only then: a compound statement with
	// a cursor of its own reports SERVER_STATUS_CURSOR_EXISTS too, and
	// sends its rows at once.)
	cursor bool
}

// emit sends one packet of the reply to the client (p has its 4-byte
// header gap), unless the reply is being discarded.
func (s *session) emit(r *reply, p []byte) error {
	r.sent = true
	if r.discard {
		return nil
	}
	return s.client.write(p)
}

// check adds a packet's payload to the reply's checksum.
func (r *reply) check(payload []byte) {
	if r.sum != nil {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(payload)))
		_, _ = r.sum.Write(n[:])
		_, _ = r.sum.Write(payload)
	}
}

// checkValues adds numbers to the checksum: the parts of an OK or EOF
// packet that say what happened (not status flags or session state,
// which differ from server to server).
func (r *reply) checkValues(vs ...uint64) {
	if r.sum != nil {
		var b [8]byte
		for _, v := range vs {
			binary.LittleEndian.PutUint64(b[:], v)
			_, _ = r.sum.Write(b[:])
		}
	}
}

// newReply returns the session's reply scratch, emptied.
func (s *session) newReply() *reply {
	r := &s.cmd.reply
	*r = reply{changes: r.changes[:0]}
	return r
}

// checksummed turns on the reply's checksum (per-command scratch).
func (s *session) checksummed(r *reply) {
	s.cmd.sum.Reset()
	r.sum = &s.cmd.sum
}

// noteStatus records the status flags of an OK or EOF packet.
func (r *reply) noteStatus(status uint16) {
	r.status, r.statusSeen = status, true
}

// maxKeptBuffer caps the packet buffer kept between packets, so one huge
// row does not pin its memory for the rest of the command.
const maxKeptBuffer = 1 << 20

// packetBufs holds backend packet buffers between commands: an idle
// session keeps none, so 10,000 idle clients cost no buffer memory.
var packetBufs = sync.Pool{New: func() any { b := make([]byte, 4, 16*1024); return &b }}

// readBackend reads one packet from the backend into the session buffer;
// the returned slice has a 4-byte header gap for writing it on.
func (s *session) readBackend(bc *backend.Conn) ([]byte, error) {
	if s.cmd.pktBuf == nil {
		s.cmd.pktBuf = packetBufs.Get().(*[]byte)
	}
	if cap(*s.cmd.pktBuf) > maxKeptBuffer {
		*s.cmd.pktBuf = make([]byte, 4, 16*1024)
	}
	p, err := bc.Packets().ReadPacketReuseMem((*s.cmd.pktBuf)[:4])
	if err != nil {
		return nil, err
	}
	if len(p) < 5 {
		return nil, fmt.Errorf("empty packet from backend")
	}
	*s.cmd.pktBuf = p
	return p, nil
}

// returnBuffers gives the packet buffer back between commands.
func (s *session) returnBuffers() {
	if s.cmd.pktBuf != nil && cap(*s.cmd.pktBuf) <= maxKeptBuffer {
		packetBufs.Put(s.cmd.pktBuf) // an oversized one is left to the GC
	}
	s.cmd.pktBuf = nil
}

// lost is lostConnection for the connection being relayed.
func (s *session) lost(bc *backend.Conn, err error) error {
	return s.lostConnection(s.nameOf(bc), bc, err)
}

// abandon handles a client that went away mid-reply: the backend
// connection still has unread packets, so it cannot be reused.
func (s *session) abandon(bc *backend.Conn, err error) error {
	bc.MarkBroken()
	return err
}

// relayResult relays the complete reply to COM_QUERY or COM_STMT_EXECUTE:
// OK, ERR, or result sets, following SERVER_MORE_RESULTS_EXISTS through
// multi-statements and CALL.
func (s *session) relayResult(bc *backend.Conn, r *reply) error {
	for {
		p, err := s.readBackend(bc)
		if err != nil {
			return s.lost(bc, err)
		}
		var more bool
		switch p[4] {
		case mysql.OK_HEADER:
			more, err = s.relayOK(p, r)
		case mysql.ERR_HEADER:
			// An error ends the whole reply, even in a multi-statement.
			r.ok, r.serverErr = false, parseErrPacket(p[4:])
			r.check(p[4:])
			return nil
		case mysql.LocalInFile_HEADER:
			more, err = s.relayLocalInfile(bc, p, r)
		default:
			more, err = s.relayResultSet(bc, p, r)
		}
		if err != nil || !more {
			return err
		}
	}
}

// relayOK re-frames an OK packet for the client and notes what it says;
// more reports whether another result follows.
func (s *session) relayOK(p []byte, r *reply) (more bool, err error) {
	ok, valid := parseOK(p[4:])
	if !valid {
		// Unknown layout: pass it through untouched rather than guess.
		r.check(p[4:])
		return false, s.emit(r, p)
	}
	r.checkValues(ok.affectedRows, ok.lastInsertID, uint64(ok.warnings))
	r.check(ok.info)
	r.ok = true
	r.noteStatus(ok.status)
	r.rows += ok.affectedRows
	r.insertID = r.insertID || ok.lastInsertID != 0
	r.warnings = r.warnings || ok.warnings != 0
	if ok.status&mysql.SERVER_SESSION_STATE_CHANGED != 0 {
		r.noteSessionState(ok.sessionState)
		if s.caps&mysql.CLIENT_SESSION_TRACK != 0 {
			s.cmd.stateBuf = filterSessionState(s.cmd.stateBuf[:0], ok.sessionState, &s.track)
			ok.sessionState = s.cmd.stateBuf
		}
	}
	s.cmd.okBuf = encodeOKForClient(s.cmd.okBuf, ok, s.caps)
	if err := s.emit(r, s.cmd.okBuf); err != nil {
		return false, err
	}
	return ok.status&mysql.SERVER_MORE_RESULTS_EXISTS != 0, nil
}

// relayResultSet relays column count, column definitions, EOF, rows and
// the final EOF (or an ERR that cuts the rows short).
func (s *session) relayResultSet(bc *backend.Conn, first []byte, r *reply) (more bool, err error) {
	columns, _, ok := lenencInt(first[4:])
	if !ok {
		return false, s.lost(bc, fmt.Errorf("bad column count packet"))
	}
	r.check(first[4:])
	if err := s.emit(r, first); err != nil {
		return false, s.abandon(bc, err)
	}
	for i := uint64(0); i < columns; i++ {
		if err := s.relayChecked(bc, r); err != nil {
			return false, err
		}
	}
	// EOF after the column definitions.
	p, err := s.readBackend(bc)
	if err != nil {
		return false, s.lost(bc, err)
	}
	if p[4] == mysql.ERR_HEADER {
		r.ok, r.serverErr = false, parseErrPacket(p[4:])
		r.check(p[4:])
		return false, nil
	}
	r.checkValues(uint64(eofWarnings(p[4:])))
	if err := s.emit(r, p); err != nil {
		return false, s.abandon(bc, err)
	}
	if status := eofStatus(p[4:]); r.cursor && status&mysql.SERVER_STATUS_CURSOR_EXISTS != 0 {
		// A cursor was opened: rows come later through COM_STMT_FETCH.
		r.ok = true
		r.noteStatus(status)
		return false, nil
	}
	if err := s.relayRows(bc, r); err != nil || !r.ok {
		return false, err
	}
	return r.status&mysql.SERVER_MORE_RESULTS_EXISTS != 0, nil
}

// relayPacket copies one packet from backend to client.
func (s *session) relayPacket(bc *backend.Conn, r *reply) error {
	p, err := s.readBackend(bc)
	if err != nil {
		return s.lost(bc, err)
	}
	if err := s.emit(r, p); err != nil {
		return s.abandon(bc, err)
	}
	return nil
}

// relayChecked is relayPacket adding the packet to the checksum.
func (s *session) relayChecked(bc *backend.Conn, r *reply) error {
	p, err := s.readBackend(bc)
	if err != nil {
		return s.lost(bc, err)
	}
	r.check(p[4:])
	if err := s.emit(r, p); err != nil {
		return s.abandon(bc, err)
	}
	return nil
}

// relayFieldList relays COM_FIELD_LIST: column definitions up to EOF/ERR.
func (s *session) relayFieldList(bc *backend.Conn, r *reply) error {
	for {
		p, err := s.readBackend(bc)
		if err != nil {
			return s.lost(bc, err)
		}
		if p[4] == mysql.ERR_HEADER {
			r.serverErr = parseErrPacket(p[4:])
			return nil
		}
		r.check(p[4:])
		if err := s.emit(r, p); err != nil {
			return s.abandon(bc, err)
		}
		if isEOF(p[4:]) {
			r.ok = true
			return nil
		}
	}
}

// relayRows relays rows up to the closing EOF (r.ok set, status taken)
// or an ERR that cuts them short (r.serverErr). Used for result sets and
// COM_STMT_FETCH. Rows already buffered from the backend go out in bulk
// (copyRows); one packet at a time is read otherwise.
func (s *session) relayRows(bc *backend.Conn, r *reply) error {
	r.ok = false
	for rows := uint64(0); ; rows++ {
		n, err := s.copyRows(bc, r)
		if err != nil {
			return s.abandon(bc, err)
		}
		rows += n
		p, err := s.readBackend(bc)
		if err != nil {
			return s.lost(bc, err)
		}
		if p[4] == mysql.ERR_HEADER {
			r.serverErr = parseErrPacket(p[4:])
			r.check(p[4:])
			return nil
		}
		eof := isEOF(p[4:])
		if eof {
			r.checkValues(uint64(eofWarnings(p[4:])))
		} else {
			r.check(p[4:])
		}
		if err := s.emit(r, p); err != nil {
			return s.abandon(bc, err)
		}
		if eof {
			r.ok = true
			r.noteStatus(eofStatus(p[4:]))
			r.warnings = r.warnings || eofWarnings(p[4:]) != 0
			r.rows += rows
			return nil
		}
	}
}

// copyRows copies the complete row packets already in the backend's read
// buffer to the client in one write, without reading or framing them one
// by one, and returns how many it copied. It stops before anything that
// is not a plain, complete row (EOF, ERR, a row of 16 MiB or more, a
// packet not fully received), which relayRows then reads on its own. The
// client sees the backend's packet numbers, so both sides must be at the
// same sequence (they are: the relay forwards packets one for one).
func (s *session) copyRows(bc *backend.Conn, r *reply) (uint64, error) {
	bp := bc.Packets()
	rd := bc.Reader()
	if (!r.discard && bp.Sequence != s.client.pc.Sequence) || rd.Buffered() < 5 {
		return 0, nil
	}
	buf, _ := rd.Peek(rd.Buffered())
	seq, off, n := bp.Sequence, 0, uint64(0)
	for len(buf)-off >= 5 {
		size := int(buf[off]) | int(buf[off+1])<<8 | int(buf[off+2])<<16
		if size == 0 || size == 0xffffff || off+4+size > len(buf) || buf[off+3] != seq {
			break
		}
		if first := buf[off+4]; first == mysql.ERR_HEADER || (first == mysql.EOF_HEADER && size < 9) {
			break
		}
		r.check(buf[off+4 : off+4+size])
		off += 4 + size
		seq++
		n++
	}
	if n == 0 {
		return 0, nil
	}
	r.sent = true
	if !r.discard {
		if _, err := s.client.out.Write(buf[:off]); err != nil {
			return 0, fmt.Errorf("%w: %v", errClientWrite, err)
		}
		s.client.pc.Sequence = seq
	}
	_, _ = rd.Discard(off)
	bp.Sequence = seq
	return n, nil
}

// relayPrepare relays the reply to COM_STMT_PREPARE with the proxy's
// statement id in place of the server's, and registers the statement.
func (s *session) relayPrepare(bc *backend.Conn, c *command, r *reply) error {
	p, err := s.readBackend(bc)
	if err != nil {
		return s.lost(bc, err)
	}
	if p[4] == mysql.ERR_HEADER {
		r.serverErr = parseErrPacket(p[4:])
		return nil
	}
	if p[4] != mysql.OK_HEADER || len(p) < 4+12 {
		return s.lost(bc, fmt.Errorf("bad COM_STMT_PREPARE reply"))
	}
	st := &preparedStmt{
		query:      append([]byte(nil), c.payload[1:]...),
		class:      c.class,
		numColumns: binary.LittleEndian.Uint16(p[9:]),
		numParams:  binary.LittleEndian.Uint16(p[11:]),
		onConn:     map[*backend.Conn]uint32{bc: binary.LittleEndian.Uint32(p[5:])},
	}
	s.stmts.add(st)
	binary.LittleEndian.PutUint32(p[5:], st.id)
	if err := s.emit(r, p); err != nil {
		return s.abandon(bc, err)
	}
	r.ok = true
	return s.relayDefinitions(bc, r, st.numParams, st.numColumns)
}

// relayDefinitions relays parameter and column definitions, each block
// followed by an EOF.
func (s *session) relayDefinitions(bc *backend.Conn, r *reply, params, columns uint16) error {
	for _, n := range []uint16{params, columns} {
		if n == 0 {
			continue
		}
		for i := 0; i <= int(n); i++ { // n definitions + EOF
			if err := s.relayPacket(bc, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// relayLocalInfile serves LOAD DATA LOCAL INFILE when enabled: the
// server's file request goes to the client, the file's packets come back
// up to the empty packet, then the server's OK/ERR ends the exchange.
func (s *session) relayLocalInfile(bc *backend.Conn, req []byte, r *reply) (more bool, err error) {
	bp := bc.Packets()
	// The file comes from the client: running the statement again (a
	// replayed transaction) cannot send it again.
	r.unreplayable = "LOAD DATA LOCAL INFILE"
	if !s.settings.LoadDataLocal || s.caps&mysql.CLIENT_LOCAL_FILES == 0 || r.discard {
		// Refuse by sending the server an empty file, then tell the client.
		if err := bp.WritePacket([]byte{0, 0, 0, 0}); err != nil {
			return false, s.lost(bc, err)
		}
		if _, err := s.readBackend(bc); err != nil {
			return false, s.lost(bc, err)
		}
		r.serverErr = &mysql.MyError{Code: 1148, State: "42000",
			Message: "LOAD DATA LOCAL INFILE is disabled in Switchyard (set load_data_local: true)"}
		return false, nil
	}
	if err := s.emit(r, req); err != nil {
		return false, s.abandon(bc, err)
	}
	for {
		lw := limitWriter{max: s.settings.MaxAllowedPacket}
		if err := s.client.pc.ReadPacketTo(&lw); err != nil {
			bc.MarkBroken()
			return false, fmt.Errorf("%w: reading LOCAL INFILE data: %v", errClientWrite, err)
		}
		chunk := append(make([]byte, 4, 4+lw.buf.Len()), lw.buf.Bytes()...)
		if err := bp.WritePacket(chunk); err != nil {
			return false, s.lost(bc, err)
		}
		if lw.buf.Len() == 0 {
			break
		}
	}
	p, err := s.readBackend(bc)
	if err != nil {
		return false, s.lost(bc, err)
	}
	if p[4] == mysql.OK_HEADER {
		return s.relayOK(p, r)
	}
	r.serverErr = parseErrPacket(p[4:])
	return false, nil
}
