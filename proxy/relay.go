package proxy

import (
	"fmt"
	"sync"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
)

// The relay copies a backend's response to the client packet by packet,
// without decoding rows: memory stays at one packet whatever the result
// size. It only looks at what it must: OK packets (translated to the
// client's framing, and read for session state), EOF/ERR packets (status
// flags, end of a result), and the column count.

// maxKeptBuffer caps the packet buffer kept between packets, so one huge
// row does not pin its memory for the rest of the command.
const maxKeptBuffer = 1 << 20

// packetBufs holds backend packet buffers between commands: an idle
// session keeps none, so 10,000 idle clients cost no buffer memory.
var packetBufs = sync.Pool{New: func() any { b := make([]byte, 4, 16*1024); return &b }}

// readBackend reads one packet from the backend into the session buffer;
// the returned slice has a 4-byte header gap for writing it on.
func (s *session) readBackend(bc *backend.Conn) ([]byte, error) {
	if s.pktBuf == nil {
		s.pktBuf = packetBufs.Get().(*[]byte)
	}
	if cap(*s.pktBuf) > maxKeptBuffer {
		*s.pktBuf = make([]byte, 4, 16*1024)
	}
	p, err := bc.Packets().ReadPacketReuseMem((*s.pktBuf)[:4])
	if err != nil {
		return nil, err
	}
	if len(p) < 5 {
		return nil, fmt.Errorf("empty packet from backend")
	}
	*s.pktBuf = p
	return p, nil
}

// returnBuffers gives the packet buffer back between commands.
func (s *session) returnBuffers() {
	if s.pktBuf != nil && cap(*s.pktBuf) <= maxKeptBuffer {
		packetBufs.Put(s.pktBuf) // an oversized one is left to the GC
	}
	s.pktBuf = nil
}

// relayResult relays the complete response to COM_QUERY or
// COM_STMT_EXECUTE: OK, ERR, or result sets, following
// SERVER_MORE_RESULTS_EXISTS through multi-statements and CALL.
func (s *session) relayResult(bc *backend.Conn) error {
	s.lastOK = false
	for {
		p, err := s.readBackend(bc)
		if err != nil {
			return s.backendFailed(bc, err, false)
		}
		switch p[4] {
		case mysql.OK_HEADER:
			more, err := s.relayOK(p)
			if err != nil || !more {
				return err
			}
		case mysql.ERR_HEADER:
			// An error ends the whole response, even in a multi-statement.
			s.lastOK = false
			return s.writeClient(p)
		case mysql.LocalInFile_HEADER:
			more, err := s.relayLocalInfile(bc, p)
			if err != nil || !more {
				return err
			}
		default:
			more, err := s.relayResultSet(bc, p)
			if err != nil || !more {
				return err
			}
		}
	}
}

// relayOK translates and writes an OK packet; more reports whether
// another result follows.
func (s *session) relayOK(p []byte) (more bool, err error) {
	ok, valid := parseOK(p[4:])
	if !valid {
		// Unknown layout: pass it through untouched rather than guess.
		return false, s.writeClient(p)
	}
	s.noteOK(ok)
	s.lastOK = true
	switch {
	case ok.lastInsertID != 0:
		s.keepFor = keepAfterInsertID
	case ok.warnings != 0:
		s.keepFor = max(s.keepFor, 1)
	}
	s.lastRows += ok.affectedRows
	s.okBuf = encodeOKForClient(s.okBuf, ok, s.caps&mysql.CLIENT_SESSION_TRACK != 0)
	if err := s.writeClient(s.okBuf); err != nil {
		return false, err
	}
	return ok.status&mysql.SERVER_MORE_RESULTS_EXISTS != 0, nil
}

// relayResultSet relays column count, column definitions, EOF, rows and
// the final EOF (or an ERR that cuts the rows short).
func (s *session) relayResultSet(bc *backend.Conn, first []byte) (more bool, err error) {
	columns, _, ok := lenencInt(first[4:])
	if !ok {
		return false, s.backendFailed(bc, fmt.Errorf("bad column count packet"), true)
	}
	if err := s.writeClient(first); err != nil {
		return false, s.abandon(bc, err)
	}
	for i := uint64(0); i < columns; i++ {
		if err := s.relayPacket(bc); err != nil {
			return false, err
		}
	}
	// EOF after the column definitions.
	p, err := s.readBackend(bc)
	if err != nil {
		return false, s.backendFailed(bc, err, true)
	}
	if err := s.writeClient(p); err != nil {
		return false, s.abandon(bc, err)
	}
	if p[4] == mysql.ERR_HEADER {
		return false, nil
	}
	status := eofStatus(p[4:])
	if status&mysql.SERVER_STATUS_CURSOR_EXISTS != 0 {
		// A cursor was opened: rows come later through COM_STMT_FETCH.
		s.status = status
		return false, nil
	}
	if err := s.relayRows(bc); err != nil || !s.lastOK {
		return false, err
	}
	return s.status&mysql.SERVER_MORE_RESULTS_EXISTS != 0, nil
}

// relayPacket copies one packet from backend to client.
func (s *session) relayPacket(bc *backend.Conn) error {
	p, err := s.readBackend(bc)
	if err != nil {
		return s.backendFailed(bc, err, true)
	}
	if err := s.writeClient(p); err != nil {
		return s.abandon(bc, err)
	}
	return nil
}

// abandon handles a client that went away mid-response: the backend
// connection still has unread result packets, so it cannot be reused.
func (s *session) abandon(bc *backend.Conn, err error) error {
	bc.MarkBroken()
	return err
}

// relayFieldList relays COM_FIELD_LIST: column definitions up to EOF/ERR.
func (s *session) relayFieldList(bc *backend.Conn) error {
	for {
		p, err := s.readBackend(bc)
		if err != nil {
			return s.backendFailed(bc, err, true)
		}
		if err := s.writeClient(p); err != nil {
			return s.abandon(bc, err)
		}
		if p[4] == mysql.ERR_HEADER || isEOF(p[4:]) {
			return nil
		}
	}
}

// relayOnePacket relays a single-packet answer (COM_STATISTICS).
func (s *session) relayOnePacket(bc *backend.Conn) error {
	return s.relayPacket(bc)
}

// relayRows relays rows up to the closing EOF (lastOK set, status taken)
// or an ERR that cuts them short (lastOK cleared). Used for result sets and
// COM_STMT_FETCH. Rows already buffered from the backend go out in bulk
// (copyRows); one packet at a time is read otherwise.
func (s *session) relayRows(bc *backend.Conn) error {
	for rows := uint64(0); ; rows++ {
		n, err := s.copyRows(bc)
		if err != nil {
			return s.abandon(bc, err)
		}
		rows += n
		p, err := s.readBackend(bc)
		if err != nil {
			return s.backendFailed(bc, err, true)
		}
		if err := s.writeClient(p); err != nil {
			return s.abandon(bc, err)
		}
		if p[4] == mysql.ERR_HEADER {
			s.lastOK = false
			return nil
		}
		if isEOF(p[4:]) {
			s.status = eofStatus(p[4:])
			s.lastOK = true
			if eofWarnings(p[4:]) != 0 {
				s.keepFor = max(s.keepFor, 1) // for SHOW WARNINGS
			}
			s.lastRows += rows
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
func (s *session) copyRows(bc *backend.Conn) (uint64, error) {
	bp := bc.Packets()
	rd := bc.Reader()
	if bp.Sequence != s.pc.Sequence || rd.Buffered() < 5 {
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
		off += 4 + size
		seq++
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := s.out.Write(buf[:off]); err != nil {
		return 0, fmt.Errorf("%w: %v", errClientWrite, err)
	}
	_, _ = rd.Discard(off)
	bp.Sequence, s.pc.Sequence = seq, seq
	return n, nil
}

// relayLocalInfile serves LOAD DATA LOCAL INFILE when enabled: the
// server's file request goes to the client, the file's packets come back
// up to the empty packet, then the server's OK/ERR ends the exchange.
func (s *session) relayLocalInfile(bc *backend.Conn, req []byte) (more bool, err error) {
	if !s.settings.LoadDataLocal || s.caps&mysql.CLIENT_LOCAL_FILES == 0 {
		// Refuse by sending the server an empty file, then tell the client.
		bp := bc.Packets()
		if err := bp.WritePacket([]byte{0, 0, 0, 0}); err != nil {
			return false, s.backendFailed(bc, err, false)
		}
		if _, err := s.readBackend(bc); err != nil {
			return false, s.backendFailed(bc, err, false)
		}
		return false, s.writeErrFatal(&mysql.MyError{Code: 1148, State: "42000",
			Message: "LOAD DATA LOCAL INFILE is disabled in Switchyard (set load_data_local: true)"})
	}
	if err := s.writeClient(req); err != nil {
		return false, s.abandon(bc, err)
	}
	bp := bc.Packets()
	for {
		lw := limitWriter{max: s.settings.MaxAllowedPacket}
		if err := s.pc.ReadPacketTo(&lw); err != nil {
			bc.MarkBroken()
			return false, fmt.Errorf("%w: reading LOCAL INFILE data: %v", errClientWrite, err)
		}
		chunk := append(make([]byte, 4, 4+lw.buf.Len()), lw.buf.Bytes()...)
		if err := bp.WritePacket(chunk); err != nil {
			return false, s.backendFailed(bc, err, false)
		}
		if lw.buf.Len() == 0 {
			break
		}
	}
	p, err := s.readBackend(bc)
	if err != nil {
		return false, s.backendFailed(bc, err, false)
	}
	if p[4] == mysql.OK_HEADER {
		return s.relayOK(p)
	}
	return false, s.writeClient(p)
}
