package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/router"
)

// session is one client connection. Everything in it is touched only by
// the session's own goroutine, except info (atomics read by the admin
// port and by Shutdown).
//
// Its parts, by file:
//
//	session.go          the type, handshake and command loop
//	session_query.go    COM_QUERY and the commands routed like it
//	session_exec.go     running a command on a backend: place, send, relay, observe
//	session_relay.go    copying a backend's reply to the client
//	session_stmt.go     prepared statements
//	session_state.go    session state: tracked, replayed on backend connections
//	session_conns.go    the backend connections a session holds
//	session_control.go  COM_SET_OPTION, COM_RESET_CONNECTION, COM_CHANGE_USER
//	session_multiplex.go giving connections back between statements
type session struct {
	srv      *Server
	settings *Settings
	backends Backends
	log      *zap.Logger
	id       uint32
	client   clientConn

	// The login and what the client negotiated: capabilities both sides
	// agreed on, and the session-state changes it asked for.
	user  conf.User
	caps  uint32
	track clientTracking
	// flavor is the servers' family (from the master at login): errors
	// the proxy makes use its codes.
	flavor backend.Flavor
	// idleDefault: the client's connection is closed after this long idle
	// unless it set its own wait_timeout (idleTimeout).
	idleDefault time.Duration

	// What the session is: state replayed on every backend connection,
	// the router's view (transaction, temporary tables, last write), its
	// prepared statements and the server status flags last seen.
	state  sessionState
	route  *router.Session
	stmts  stmtRegistry
	status uint16

	// Backend connections held, by server name, and the topology epoch
	// they belong to.
	conns map[string]*heldConn
	epoch uint64
	mux   muxState
	// tx is the transaction open on the master, kept for replay;
	// aborted, once set, answers every statement until ROLLBACK.
	tx      txState
	aborted *mysql.MyError
	// bound is state on the master connection that no other connection
	// has: user variables, locks, temporary tables.
	bound boundState

	cmd  scratch     // per-command buffers and the reply being relayed
	info sessionInfo // read by other goroutines
	hs   handshakeHandler
}

// scratch is per-command working memory, reused across commands.
type scratch struct {
	reply    reply
	target   string  // where the last command ran
	pktBuf   *[]byte // backend packet buffer, held during a command (packetBufs)
	okBuf    []byte
	running  *running      // where the last statement ran (see startRunning)
	stateBuf []byte        // session-state block filtered for the client
	cmdBuf   []byte        // framing buffer for commands sent to backends
	sum      xxhash.Digest // checksum of a reply inside a transaction
}

// sessionInfo is what other goroutines may read of a session.
type sessionInfo struct {
	started     time.Time
	idle        atomic.Bool // waiting for the next command
	closing     atomic.Bool
	inTx        atomic.Bool
	lastStmt    atomic.Pointer[string] // digest of the last statement
	lastBackend atomic.Pointer[string]
	db          atomic.Pointer[string]
	heldConns   atomic.Int32
	heldBecause atomic.Pointer[string]
	// running is the statement running now (nil when none); killedWhy says
	// why the proxy killed it; killed: the session was killed (KILL
	// CONNECTION) and ends.
	running   atomic.Pointer[running]
	killedWhy atomic.Pointer[string]
	killed    atomic.Bool
	// threads lists the backend threads the session holds, for SHOW
	// SESSIONS ("master:31 replica1:57").
	threads atomic.Pointer[string]
}

func newSession(srv *Server, set *Settings, c net.Conn) *session {
	s := &session{srv: srv, settings: set, backends: srv.backends, log: srv.log, stmts: newStmtRegistry(),
		conns: map[string]*heldConn{}, route: router.NewSession()}
	s.client.raw = c
	s.info.started = time.Now()
	return s
}

// run performs the handshake and serves commands until the client leaves.
func (s *session) run() {
	defer s.cleanup()
	_ = s.client.raw.SetDeadline(time.Now().Add(s.settings.HandshakeTimeout))
	conn, err := s.srv.mysql.NewCustomizedConn(s.client.raw, &authenticator{sess: s}, &s.hs)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.log.Debug("handshake failed", zap.String("client", s.client.raw.RemoteAddr().String()), zap.Error(err))
		}
		return
	}
	_ = s.client.raw.SetDeadline(time.Time{})
	s.client.adopt(conn.Conn)
	s.srv.register(s)
	s.srv.stats.Connections.Add(1)
	s.log.Debug("session started", zap.Uint32("id", s.id), zap.String("user", s.user.Name))
	s.loop()
}

// onAuthenticated runs inside the handshake after the password matched
// and before the OK is sent: an error here reaches the client instead of
// a successful login.
func (s *session) onAuthenticated(id uint32, user string, caps uint32, collation uint8, clientConn net.Conn, remote net.Addr) error {
	u := s.settings.Users[user]
	s.user = u
	s.id = id
	s.log = s.srv.log.With(zap.Uint32("session", id), zap.String("user", u.Name), zap.String("client", remote.String()))
	if u.RequireTLS {
		if _, isTLS := clientConn.(*tls.Conn); !isTLS {
			return errAccessDenied(u.Name, hostOf(remote), true)
		}
	}
	if s.srv.isDraining() {
		return errShuttingDown()
	}
	s.caps = caps & s.srv.mysql.Capability() // go-mysql keeps the client's flags unmasked
	s.state.collationID = collation
	s.state.db = s.hs.db
	s.status = mysql.SERVER_STATUS_AUTOCOMMIT
	// Connect now so a bad database (1049) or an unreachable master is
	// reported at login, as the server itself would.
	bc, err := s.masterConn()
	if err != nil {
		return asClientError(err)
	}
	s.flavor = bc.Flavor()
	d := s.srv.defaults(bc, s.settings.IOTimeout)
	s.track, s.idleDefault = d.tracking, d.waitTimeout
	if caps&mysql.CLIENT_INTERACTIVE != 0 {
		s.idleDefault = d.interactiveTimeout
	}
	return nil
}

func hostOf(a net.Addr) string {
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

// closeIfIdle is called by Shutdown: a session waiting for a command with
// no open transaction can go now; a busy one finishes first.
func (s *session) closeIfIdle() {
	if s.info.idle.Load() && !s.info.inTx.Load() {
		s.info.closing.Store(true)
		s.client.wakeReader()
	}
}

func (s *session) cleanup() {
	_ = s.client.flush() // a final error packet may still be buffered
	s.endTx()
	s.releaseAll()
	s.returnBuffers()
	s.client.close()
	s.log.Debug("session ended")
}

// errQuit ends the session without an answer (COM_QUIT).
var errQuit = errors.New("client quit")

// closeWith ends the session after sending its error (a failed
// COM_CHANGE_USER, a protocol violation the session cannot recover from).
type closeWith struct{ *mysql.MyError }

// loop reads one command at a time and answers it. A command handler
// returns nil (it answered), a *mysql.MyError (for the client: written by
// answer, the session goes on), closeWith (written, then the session
// ends), or any other error (the session ends: the client is gone or the
// protocol is broken).
func (s *session) loop() {
	for {
		s.giveBackConns()
		s.returnBuffers()
		s.info.idle.Store(true)
		if s.srv.isDraining() && s.status&mysql.SERVER_STATUS_IN_TRANS == 0 {
			return
		}
		armed := s.client.idleFor(s.idleTimeout())
		data, err := s.client.readCommand(s.settings.MaxAllowedPacket)
		s.info.idle.Store(false)
		if armed && err == nil {
			_ = s.client.raw.SetReadDeadline(time.Time{})
		}
		if s.info.killed.Load() {
			return // KILL CONNECTION: the client finds its connection closed
		}
		if err != nil {
			s.readFailed(err)
			return
		}
		if s.answer(data) || s.info.killed.Load() {
			return
		}
	}
}

// answer runs one command and writes the error it returned, if any; true
// ends the session.
func (s *session) answer(data []byte) (end bool) {
	s.mux.commandStarts()
	err := s.dispatchSafely(data)
	if err == nil {
		return false
	}
	var me *mysql.MyError
	var fatal closeWith
	var lost *connLost
	switch {
	case errors.As(err, &lost):
		return s.client.write(s.errPacket(errBackendLost(lost.target, lost.err))) != nil
	case errors.As(err, &fatal):
		_ = s.client.write(s.errPacket(fatal.MyError))
		return true
	case errors.As(err, &me):
		return s.client.write(s.errPacket(me)) != nil
	default:
		if !errors.Is(err, errQuit) && !isClientGone(err) {
			s.log.Debug("session closed on error", zap.Error(err))
		}
		return true
	}
}

// dispatchSafely runs one command; a panic becomes an error for the
// client (and the backend connections, whose state is unknown, are
// dropped) rather than a dropped connection.
func (s *session) dispatchSafely(data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session panic", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			for _, h := range s.conns {
				h.bc.MarkBroken()
			}
			if s.tx.open {
				_ = s.abortTx("an internal error in the proxy")
			}
			s.releaseAll()
			s.connectionLost()
			err = errInternal(fmt.Sprint(r))
		}
	}()
	return s.dispatch(data)
}

// readFailed answers what can be answered about a bad read before closing.
func (s *session) readFailed(err error) {
	switch {
	case errors.Is(err, errPacketTooLarge):
		s.log.Info("client packet over max_allowed_packet", zap.Int("max", s.settings.MaxAllowedPacket))
		_ = s.client.write(s.errPacket(errPacketTooBig(s.settings.MaxAllowedPacket)))
		_ = s.client.flush()
		// Read (and drop) what the client is still sending, briefly, so the
		// close is not a reset that destroys the error packet in flight.
		_ = s.client.raw.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(s.client.raw, int64(2*s.settings.MaxAllowedPacket)))
	case isSequenceError(err):
		_ = s.client.write(s.errPacket(&mysql.MyError{Code: mysql.ER_NET_PACKETS_OUT_OF_ORDER, State: "08S01", Message: "Got packets out of order"}))
	default:
		s.log.Debug("client read failed", zap.Error(err))
	}
}

// isSequenceError recognises go-mysql's packet-order error, which has no
// sentinel value to match: its text is all there is.
func isSequenceError(err error) bool {
	return strings.Contains(err.Error(), "invalid sequence")
}

func isClientGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errClientWrite)
}

// dispatch handles one command by its first byte.
func (s *session) dispatch(data []byte) error {
	if len(data) == 0 {
		return errMalformed("empty command")
	}
	switch cmd := data[0]; cmd {
	case mysql.COM_QUIT:
		return errQuit
	case mysql.COM_PING:
		return s.writeOKStatus()
	case mysql.COM_QUERY:
		s.srv.stats.Queries.Add(1)
		return s.query(data)
	case mysql.COM_INIT_DB:
		return s.initDB(data)
	case mysql.COM_FIELD_LIST:
		return s.exec(&command{payload: data, route: routeMaster, reply: replyFieldList})
	case mysql.COM_STATISTICS:
		return s.exec(&command{payload: data, route: routeMaster, reply: replyOnePacket})
	case mysql.COM_SET_OPTION:
		return s.setOption(data)
	case mysql.COM_RESET_CONNECTION:
		return s.resetConnection()
	case mysql.COM_CHANGE_USER:
		return s.changeUser(data)
	case mysql.COM_STMT_PREPARE:
		return s.prepare(data)
	case mysql.COM_STMT_EXECUTE:
		s.srv.stats.Queries.Add(1)
		return s.executeStmt(data)
	case mysql.COM_STMT_SEND_LONG_DATA:
		return s.sendLongData(data)
	case mysql.COM_STMT_CLOSE:
		return s.closeStmt(data)
	case mysql.COM_STMT_RESET:
		return s.resetStmt(data)
	case mysql.COM_STMT_FETCH:
		return s.fetch(data)
	case mysql.COM_PROCESS_KILL:
		return s.processKill(data)
	case mysql.COM_BINLOG_DUMP, mysql.COM_BINLOG_DUMP_GTID, mysql.COM_REGISTER_SLAVE, mysql.COM_TABLE_DUMP:
		return errUnsupportedCommand("replication commands")
	default:
		return errUnknownCommand(cmd)
	}
}

// writeOKStatus answers locally with an OK carrying the current status.
func (s *session) writeOKStatus() error {
	s.cmd.okBuf = encodeOKForClient(s.cmd.okBuf, okPacket{status: s.status &^ mysql.SERVER_SESSION_STATE_CHANGED}, s.caps)
	return s.client.write(s.cmd.okBuf)
}

// masterConn returns the session's connection to the current master.
func (s *session) masterConn() (*backend.Conn, error) {
	master := s.backends.Topology().Master
	if master == "" {
		return nil, backend.ErrNoMaster
	}
	return s.connTo(master)
}

// noteStatement records the digest of the session's last statement for
// SHOW SESSIONS: literals are folded, so no data values reach the admin.
func (s *session) noteStatement(digest string) {
	if digest == "" {
		digest = otherDigest
	}
	if len(digest) > 200 {
		digest = digest[:200]
	}
	storeIfChanged(&s.info.lastStmt, digest)
}

// storeIfChanged publishes v unless it is already there (no allocation
// in the common case).
func storeIfChanged(p *atomic.Pointer[string], v string) {
	if cur := p.Load(); cur == nil || *cur != v {
		p.Store(&v)
	}
}
