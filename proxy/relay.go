package proxy

import (
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
)

// The relay copies a backend's reply to the client packet by packet,
// without decoding rows: memory stays at one packet whatever the result
// size. It only looks at what it must: OK packets (re-framed for the
// client, and read for session state), EOF/ERR packets (status flags, end
// of a result), and column counts. What it learned comes back in a reply;
// the session applies it afterwards (observe).
//
// Inside a transaction the relay also checksums what the client receives
// (the session replays the transaction elsewhere and compares); while
// replaying it relays to nobody.

// relayer is the session's wire to backends: it sends commands and relays
// replies to the client, with the per-command buffers it owns.
type relayer struct {
	client *clientConn
	now    *time.Time // the session's clock reading for the current command
	login  *login
	pktBuf *[]byte // backend packet buffer, held during a command (packetBufs)
	okBuf  []byte
	// stateBuf is a session-state block filtered for the client.
	stateBuf []byte
	cmdBuf   []byte // framing buffer for commands sent to backends
	bindBuf  []byte // an execute rewritten for a backend statement id
	scratch  reply
	sum      replySum // checksum of a reply inside a transaction
}

// reply is what the relay learned from one backend reply.
type reply struct {
	ok         bool   // ended in OK or EOF, not ERR
	status     uint16 // server status flags of the last OK or EOF
	statusSeen bool
	rows       uint64 // rows relayed, plus rows affected
	gtid       string // GTID of a commit (session tracking: last_gtid)
	// changes are schema and variable changes the server reported.
	changes        []sessionChange
	charsetChanged bool // a character_set_* variable changed
	insertID       bool // an AUTO_INCREMENT id was generated
	warnings       bool
	// serverErr is the server's own ERR that ended the reply; the session
	// loop writes it to the client.
	serverErr *mysql.MyError
	// prepared is the statement a COM_STMT_PREPARE reply registered.
	prepared *preparedStmt

	// sent: some of the reply reached the client (a command lost after
	// that cannot be run again unseen).
	sent bool
	// discard: relay to nobody (a transaction being replayed).
	discard bool
	// sum, when set, checksums what the client receives; unreplayable
	// says why the reply cannot be reproduced by running the command again.
	sum          *replySum
	unreplayable string
	// cursor: a COM_STMT_EXECUTE that asked for a cursor, whose rows come
	// later through COM_STMT_FETCH. (Only then: a compound statement with
	// a cursor of its own reports SERVER_STATUS_CURSOR_EXISTS too, and
	// sends its rows at once.)
	cursor bool
	// local: LOAD DATA LOCAL INFILE may be served (enabled, and the client
	// negotiated it); maxPacket bounds a client packet.
	local     bool
	maxPacket int
}

// newReply returns the reply scratch, emptied.
func (rl *relayer) newReply() *reply {
	r := &rl.scratch
	*r = reply{changes: r.changes[:0]}
	return r
}

// checksum turns on the reply's checksum.
func (rl *relayer) checksum(r *reply) {
	rl.sum = replySum{}
	r.sum = &rl.sum
}

// replySum is an order-sensitive checksum of a reply, to tell whether a
// replayed statement answered what the client saw. Each packet is hashed
// whole (xxhash's one-shot Sum64: on the short packets of most replies
// it costs a fraction of streaming them through a Digest) and folded
// into the running value with its length, by xxhash's own round.
type replySum struct{ v uint64 }

const (
	sumPrime1 = 11400714785074694791
	sumPrime2 = 14029467366897019727
)

func (s *replySum) add(x uint64) {
	s.v = bits.RotateLeft64(s.v+x*sumPrime2, 31) * sumPrime1
}

// Sum64 is the checksum of what was added.
func (s *replySum) Sum64() uint64 { return s.v }

// okFor encodes an OK packet for the client's framing (in okBuf).
func (rl *relayer) okFor(ok okPacket, caps uint32) []byte {
	rl.okBuf = encodeOKForClient(rl.okBuf, ok, caps)
	return rl.okBuf
}

// emit sends one packet of the reply to the client (p has its 4-byte
// header gap), unless the reply is being discarded.
func (rl *relayer) emit(r *reply, p []byte) error {
	r.sent = true
	if r.discard {
		return nil
	}
	return rl.client.write(p)
}

// check adds a packet's payload to the reply's checksum.
func (r *reply) check(payload []byte) {
	if r.sum != nil {
		r.sum.add(uint64(len(payload)))
		r.sum.add(xxhash.Sum64(payload))
	}
}

// checkValues adds numbers to the checksum: the parts of an OK or EOF
// packet that say what happened (not status flags or session state,
// which differ from server to server).
func (r *reply) checkValues(vs ...uint64) {
	if r.sum != nil {
		for _, v := range vs {
			r.sum.add(v)
		}
	}
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

// readBackend reads one packet from the backend into the packet buffer;
// the returned slice has a 4-byte header gap for writing it on.
func (rl *relayer) readBackend(bc *backend.Conn) ([]byte, error) {
	if rl.pktBuf == nil {
		rl.pktBuf = packetBufs.Get().(*[]byte)
	}
	if cap(*rl.pktBuf) > maxKeptBuffer {
		*rl.pktBuf = make([]byte, 4, 16*1024)
	}
	p, err := bc.ReadPacket((*rl.pktBuf)[:4])
	if err != nil {
		return nil, err
	}
	if len(p) < 5 {
		return nil, fmt.Errorf("empty packet from backend")
	}
	*rl.pktBuf = p
	return p, nil
}

// returnBuffers gives the packet buffer back between commands.
func (rl *relayer) returnBuffers() {
	if rl.pktBuf != nil && cap(*rl.pktBuf) <= maxKeptBuffer {
		packetBufs.Put(rl.pktBuf) // an oversized one is left to the GC
	}
	rl.pktBuf = nil
}

// abandon handles a client that went away mid-reply: the backend
// connection still has unread packets, so it cannot be reused.
func abandon(bc *backend.Conn, err error) error {
	bc.MarkBroken()
	return err
}

// send writes one command packet without a reply (COM_STMT_CLOSE,
// COM_STMT_SEND_LONG_DATA) to the backend.
func (rl *relayer) send(bc *backend.Conn, cmd []byte, ioTimeout time.Duration) error {
	return bc.Packets().WritePacket(rl.frame(bc, cmd, 0, ioTimeout))
}

// request sends one command whose reply the caller reads next: the
// write may be left to the reply's first read (backend.Conn.WriteCommand),
// so its failure can surface there; bc.CommandUnsent tells it apart.
// With a query timeout, a socket deadline past it (by ioTimeout) is the
// backstop when killing the statement fails (a hung server).
func (rl *relayer) request(bc *backend.Conn, cmd []byte, queryTimeout, ioTimeout time.Duration) error {
	return bc.WriteCommand(rl.frame(bc, cmd, queryTimeout, ioTimeout))
}

// frame readies bc for a new command and returns cmd behind a packet
// header gap, in the relayer's reused buffer.
func (rl *relayer) frame(bc *backend.Conn, cmd []byte, queryTimeout, ioTimeout time.Duration) []byte {
	if queryTimeout > 0 {
		bc.SetDeadline(time.Now().Add(queryTimeout + ioTimeout))
	} else {
		bc.SetDeadline(time.Time{})
	}
	bc.SentAt(*rl.now)
	bc.Packets().ResetSequence()
	buf := append(append(rl.cmdBuf[:0], 0, 0, 0, 0), cmd...)
	if cap(buf) <= maxKeptBuffer {
		rl.cmdBuf = buf // reused for the next command
	}
	return buf
}

// reply relays the reply to c to the client.
func (rl *relayer) reply(c *command, bc *backend.Conn, r *reply, set *Settings) error {
	r.local = set.LoadDataLocal && rl.login.caps&mysql.CLIENT_LOCAL_FILES != 0
	r.maxPacket = set.MaxAllowedPacket
	switch c.reply {
	case replyRows:
		return rl.rows(bc, r)
	case replyFieldList:
		return rl.fieldList(bc, r)
	case replyOnePacket:
		return rl.packet(bc, r)
	case replyPrepare:
		return rl.prepare(bc, c, r)
	}
	// COM_STMT_EXECUTE: flags (byte 5) other than 0 ask for a cursor.
	r.cursor = c.payload[0] == mysql.COM_STMT_EXECUTE && len(c.payload) > 5 && c.payload[5] != 0
	return rl.result(bc, r)
}

// result relays the complete reply to COM_QUERY or COM_STMT_EXECUTE: OK,
// ERR, or result sets, following SERVER_MORE_RESULTS_EXISTS through
// multi-statements and CALL.
func (rl *relayer) result(bc *backend.Conn, r *reply) error {
	for {
		p, err := rl.readBackend(bc)
		if err != nil {
			return err
		}
		var more bool
		switch p[4] {
		case mysql.OK_HEADER:
			more, err = rl.okPacket(p, r)
		case mysql.ERR_HEADER:
			// An error ends the whole reply, even in a multi-statement.
			r.ok, r.serverErr = false, parseErrPacket(p[4:])
			r.check(p[4:])
			return nil
		case mysql.LocalInFile_HEADER:
			more, err = rl.localInfile(bc, p, r)
		default:
			more, err = rl.resultSet(bc, p, r)
		}
		if err != nil || !more {
			return err
		}
	}
}

// okPacket re-frames an OK packet for the client and notes what it says;
// more reports whether another result follows.
func (rl *relayer) okPacket(p []byte, r *reply) (more bool, err error) {
	ok, valid := parseOK(p[4:])
	if !valid {
		// Unknown layout: pass it through untouched rather than guess.
		r.check(p[4:])
		return false, rl.emit(r, p)
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
		if rl.login.caps&mysql.CLIENT_SESSION_TRACK != 0 {
			rl.stateBuf = filterSessionState(rl.stateBuf[:0], ok.sessionState, &rl.login.track)
			ok.sessionState = rl.stateBuf
		}
	}
	if err := rl.emit(r, rl.okFor(ok, rl.login.caps)); err != nil {
		return false, err
	}
	return ok.status&mysql.SERVER_MORE_RESULTS_EXISTS != 0, nil
}

// resultSet relays column count, column definitions, EOF, rows and the
// final EOF (or an ERR that cuts the rows short).
func (rl *relayer) resultSet(bc *backend.Conn, first []byte, r *reply) (more bool, err error) {
	columns, _, ok := lenencInt(first[4:])
	if !ok {
		return false, fmt.Errorf("bad column count packet")
	}
	r.check(first[4:])
	if err := rl.emit(r, first); err != nil {
		return false, abandon(bc, err)
	}
	for i := uint64(0); i < columns; i++ {
		if err := rl.checked(bc, r); err != nil {
			return false, err
		}
	}
	// EOF after the column definitions.
	p, err := rl.readBackend(bc)
	if err != nil {
		return false, err
	}
	if p[4] == mysql.ERR_HEADER {
		r.ok, r.serverErr = false, parseErrPacket(p[4:])
		r.check(p[4:])
		return false, nil
	}
	r.checkValues(uint64(eofWarnings(p[4:])))
	if err := rl.emit(r, p); err != nil {
		return false, abandon(bc, err)
	}
	if status := eofStatus(p[4:]); r.cursor && status&mysql.SERVER_STATUS_CURSOR_EXISTS != 0 {
		// A cursor was opened: rows come later through COM_STMT_FETCH.
		r.ok = true
		r.noteStatus(status)
		return false, nil
	}
	if err := rl.rows(bc, r); err != nil || !r.ok {
		return false, err
	}
	return r.status&mysql.SERVER_MORE_RESULTS_EXISTS != 0, nil
}

// packet copies one packet from backend to client.
func (rl *relayer) packet(bc *backend.Conn, r *reply) error {
	p, err := rl.readBackend(bc)
	if err != nil {
		return err
	}
	if err := rl.emit(r, p); err != nil {
		return abandon(bc, err)
	}
	return nil
}

// checked is packet adding the packet to the checksum.
func (rl *relayer) checked(bc *backend.Conn, r *reply) error {
	p, err := rl.readBackend(bc)
	if err != nil {
		return err
	}
	r.check(p[4:])
	if err := rl.emit(r, p); err != nil {
		return abandon(bc, err)
	}
	return nil
}

// fieldList relays COM_FIELD_LIST: column definitions up to EOF/ERR.
func (rl *relayer) fieldList(bc *backend.Conn, r *reply) error {
	for {
		p, err := rl.readBackend(bc)
		if err != nil {
			return err
		}
		if p[4] == mysql.ERR_HEADER {
			r.serverErr = parseErrPacket(p[4:])
			return nil
		}
		r.check(p[4:])
		if err := rl.emit(r, p); err != nil {
			return abandon(bc, err)
		}
		if isEOF(p[4:]) {
			r.ok = true
			return nil
		}
	}
}
