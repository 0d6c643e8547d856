package proxy

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
)

// rows relays rows up to the closing EOF (r.ok set, status taken) or an
// ERR that cuts them short (r.serverErr). Used for result sets and
// COM_STMT_FETCH. Rows already buffered from the backend go out in bulk
// (copyRows); one packet at a time is read otherwise.
func (rl *relayer) rows(bc *backend.Conn, r *reply) error {
	r.ok = false
	for rows := uint64(0); ; rows++ {
		n, err := rl.copyRows(bc, r)
		if err != nil {
			return abandon(bc, err)
		}
		rows += n
		p, err := rl.readBackend(bc)
		if err != nil {
			return err
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
		if err := rl.emit(r, p); err != nil {
			return abandon(bc, err)
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
// packet not fully received), which rows then reads on its own. The
// client sees the backend's packet numbers, so both sides must be at the
// same sequence (they are: the relay forwards packets one for one).
func (rl *relayer) copyRows(bc *backend.Conn, r *reply) (uint64, error) {
	bp := bc.Packets()
	rd := bc.Reader()
	if (!r.discard && bp.Sequence != rl.client.pc.Sequence) || rd.Buffered() < 5 {
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
		if _, err := rl.client.out.Write(buf[:off]); err != nil {
			return 0, fmt.Errorf("%w: %v", errClientWrite, err)
		}
		rl.client.pc.Sequence = seq
	}
	_, _ = rd.Discard(off)
	bp.Sequence = seq
	return n, nil
}

// prepare relays the reply to COM_STMT_PREPARE with a statement id of
// the proxy's in place of the server's; the statement comes back in
// r.prepared for the session to register.
func (rl *relayer) prepare(bc *backend.Conn, c *command, r *reply) error {
	p, err := rl.readBackend(bc)
	if err != nil {
		return err
	}
	if p[4] == mysql.ERR_HEADER {
		r.serverErr = parseErrPacket(p[4:])
		return nil
	}
	if p[4] != mysql.OK_HEADER || len(p) < 4+12 {
		return fmt.Errorf("bad COM_STMT_PREPARE reply")
	}
	st := &preparedStmt{
		id:         c.stmtID,
		query:      append([]byte(nil), c.payload[1:]...),
		class:      c.class,
		numColumns: binary.LittleEndian.Uint16(p[9:]),
		numParams:  binary.LittleEndian.Uint16(p[11:]),
		onConn:     map[*backend.Conn]*stmtOnConn{bc: {id: binary.LittleEndian.Uint32(p[5:])}},
	}
	r.prepared = st
	binary.LittleEndian.PutUint32(p[5:], st.id)
	if err := rl.emit(r, p); err != nil {
		return abandon(bc, err)
	}
	r.ok = true
	return rl.definitions(bc, r, st.numParams, st.numColumns)
}

// definitions relays parameter and column definitions, each block
// followed by an EOF.
func (rl *relayer) definitions(bc *backend.Conn, r *reply, params, columns uint16) error {
	for _, n := range []uint16{params, columns} {
		if n == 0 {
			continue
		}
		for i := 0; i <= int(n); i++ { // n definitions + EOF
			if err := rl.packet(bc, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// prepareOn makes sure st is prepared on bc and returns it there. The
// reply is consumed here: the client already has the metadata.
func (rl *relayer) prepareOn(bc *backend.Conn, st *preparedStmt, ioTimeout time.Duration) (*stmtOnConn, error) {
	if on, ok := st.onConn[bc]; ok {
		return on, nil
	}
	cmd := append([]byte{mysql.COM_STMT_PREPARE}, st.query...)
	if err := rl.request(bc, cmd, 0, ioTimeout); err != nil {
		return nil, err
	}
	p, err := rl.readBackend(bc)
	if err != nil {
		return nil, err
	}
	switch {
	case p[4] == mysql.ERR_HEADER:
		return nil, parseErrPacket(p[4:])
	case p[4] != mysql.OK_HEADER || len(p) < 4+12:
		return nil, fmt.Errorf("bad COM_STMT_PREPARE reply")
	}
	id := binary.LittleEndian.Uint32(p[5:])
	cols, params := binary.LittleEndian.Uint16(p[9:]), binary.LittleEndian.Uint16(p[11:])
	for _, n := range []uint16{params, cols} {
		if n == 0 {
			continue
		}
		for i := 0; i <= int(n); i++ {
			if _, err := rl.readBackend(bc); err != nil {
				return nil, err
			}
		}
	}
	on := &stmtOnConn{id: id}
	st.onConn[bc] = on
	return on, nil
}

// replay runs one logged statement of a transaction on bc, relaying to
// nobody, and returns the checksum of its reply.
func (rl *relayer) replay(bc *backend.Conn, e txEntry, ioTimeout time.Duration) (uint64, error) {
	cmd := e.cmd
	if e.stmt != nil {
		on, err := rl.prepareOn(bc, e.stmt, ioTimeout)
		if err != nil {
			return 0, err
		}
		// The logged execute runs with the types it had then, which need
		// not be the statement's now: they go with it whatever the server
		// statement had (types unknown before), and what it has after is
		// unknown too.
		saved, savedGen := e.stmt.paramTypes, e.stmt.typesGen
		e.stmt.paramTypes = e.types
		on.types = 0
		cmd, err = e.stmt.bindPacket(rl.bindBuf, e.cmd, on)
		e.stmt.paramTypes, e.stmt.typesGen = saved, savedGen
		on.types = 0
		if err != nil {
			return 0, err
		}
	}
	if err := rl.request(bc, cmd, 0, ioTimeout); err != nil {
		return 0, err
	}
	r := rl.newReply()
	r.discard = true
	rl.checksum(r)
	if err := rl.result(bc, r); err != nil {
		return 0, err
	}
	return r.sum.Sum64(), nil
}

// localInfile serves LOAD DATA LOCAL INFILE when enabled: the server's
// file request goes to the client, the file's packets come back up to the
// empty packet, then the server's OK/ERR ends the exchange.
func (rl *relayer) localInfile(bc *backend.Conn, req []byte, r *reply) (more bool, err error) {
	bp := bc.Packets()
	// The file comes from the client: running the statement again (a
	// replayed transaction) cannot send it again.
	r.unreplayable = "LOAD DATA LOCAL INFILE"
	if !r.local || r.discard {
		// Refuse by sending the server an empty file, then tell the client.
		if err := bp.WritePacket([]byte{0, 0, 0, 0}); err != nil {
			return false, err
		}
		if _, err := rl.readBackend(bc); err != nil {
			return false, err
		}
		r.serverErr = &mysql.MyError{Code: 1148, State: "42000",
			Message: "LOAD DATA LOCAL INFILE is disabled in Switchyard (set load_data_local: true)"}
		return false, nil
	}
	if err := rl.emit(r, req); err != nil {
		return false, abandon(bc, err)
	}
	for {
		lw := limitWriter{max: r.maxPacket}
		if err := rl.client.pc.ReadPacketTo(&lw); err != nil {
			bc.MarkBroken()
			return false, fmt.Errorf("%w: reading LOCAL INFILE data: %v", errClientWrite, err)
		}
		chunk := append(make([]byte, 4, 4+lw.buf.Len()), lw.buf.Bytes()...)
		if err := bp.WritePacket(chunk); err != nil {
			return false, err
		}
		if lw.buf.Len() == 0 {
			break
		}
	}
	p, err := rl.readBackend(bc)
	if err != nil {
		return false, err
	}
	if p[4] == mysql.OK_HEADER {
		return rl.okPacket(p, r)
	}
	r.serverErr = parseErrPacket(p[4:])
	return false, nil
}

// commandBytes returns what to send on bc (of server) for c: the
// client's packet, or for a prepared statement the packet with the
// backend's id (preparing it there first if needed).
func (rl *relayer) commandBytes(c *command, bc *backend.Conn, server string, ioTimeout time.Duration) ([]byte, error) {
	if c.stmt == nil {
		return c.payload, nil
	}
	on, err := rl.prepareOn(bc, c.stmt, ioTimeout)
	if err != nil {
		return nil, err
	}
	c.stmt.lastOn = server
	if c.payload[0] != mysql.COM_STMT_EXECUTE {
		return withID(c.payload, on.id), nil
	}
	pkt, err := c.stmt.bindPacket(rl.bindBuf, c.payload, on)
	if err != nil {
		return nil, errMalformed(err.Error())
	}
	if cap(pkt) <= maxKeptBuffer {
		rl.bindBuf = pkt[:0]
	}
	return pkt, nil
}
