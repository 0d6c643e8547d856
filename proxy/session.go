package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/rules"
)

// session is one client connection. It orchestrates its parts, each the
// one owner of its piece of state, all touched only by the session's own
// goroutine except info and ctl (atomics read by the admin port, KILL from
// other sessions, the query timer and Shutdown):
//
//	login   who the client is and what it negotiated
//	state   session variables, database, character set: replayed anywhere
//	tx      the transaction (none → open → committing | aborted → none)
//	conns   the backend connections held, per server
//	mux     why connections are kept between statements (multiplexing)
//	stmts   prepared statements (proxy ids, prepared lazily per connection)
//	ctl     the running statement: KILL, the query timeout, shutdown
//	relay   the wire to backends: send a command, relay its reply
//	views   per cluster: topology epoch, routing memory, and the state
//	        only its master connection has (user variables, locks)
type session struct {
	srv    *Server
	log    *zap.Logger
	id     uint32
	client clientConn
	login  login
	state  sessionState
	tx     transaction
	conns  connSet
	mux    muxState
	stmts  stmtRegistry
	ctl    statementControl
	relay  relayer
	// rc is the session's use of the result cache.
	rc cacheUse
	// status is the server status flags last seen (in transaction,
	// autocommit, cursor …), as the client sees them.
	status uint16
	// home is the cluster the session sits on (its database's, else its
	// user's); views holds each cluster it used.
	home  *clusterView
	views views
	cmd   scratch
	info  sessionInfo
	hs    handshakeHandler
}

// login is who the client is and what it negotiated; only the handshake
// and COM_CHANGE_USER change it.
type login struct {
	user conf.User
	// client is the client's address, for rules matching on it.
	client netip.Addr
	// caps are the capabilities both sides agreed on; track the
	// session-state changes the client asked for.
	caps  uint32
	track clientTracking
	// flavor is the servers' family: errors the proxy makes use its codes.
	flavor backend.Flavor
	// idleDefault: the client's connection is closed after this long idle
	// unless it set its own wait_timeout.
	idleDefault time.Duration
	// counted: the session holds a slot under its user's max_connections.
	counted bool
}

// clusterView is the session's view of one cluster: the topology epoch
// its connections there belong to, its routing memory there, and what is
// bound to its master connection.
type clusterView struct {
	b     *Backends
	epoch uint64
	route *router.Session
	bound boundState
	// set is the cluster's settings in the snapshot setFor: found by name
	// once per snapshot, not on every statement (see settings).
	setFor *Settings
	set    *ClusterSettings
}

// settings returns the cluster's settings in the snapshot set.
func (v *clusterView) settings(set *Settings) *ClusterSettings {
	if v.setFor != set {
		v.setFor, v.set = set, set.cluster(v.b.Name)
	}
	return v.set
}

// scratch is per-command state.
type scratch struct {
	set *Settings // read once per command
	// now is when the command arrived: the one clock reading a command
	// takes (deadlines, durations, connection use), as each costs.
	now    time.Time
	target string // where the last command ran
	cmdBuf []byte // framing buffer for commands sent to backends
	// rule is what the query rules look at, reused (no allocation).
	rule rules.Statement
	// digests remember the digest-table entries of the session's recent
	// text statements, by their digest's hash (direct-mapped): a session
	// repeats a few shapes, and a slot is one cache line where the shared
	// table's lookup touches several on a busy machine.
	digests [digestSlots]digestSlot
}

// digestSlots is how many digests a session remembers.
const digestSlots = 16

func newSession(srv *Server, c net.Conn) *session {
	s := &session{srv: srv, log: srv.log, views: views{}, stmts: newStmtRegistry()}
	s.client.raw = c
	s.conns = newConnSet(&s.state, &s.stmts, &s.info, &s.cmd.now)
	s.ctl.init(srv, &s.info)
	s.relay.client = &s.client
	s.relay.now = &s.cmd.now
	s.info.started = time.Now()
	s.cmd.set = srv.settings.Load()
	s.rc.c = srv.cache
	return s
}

// views are the session's views of the clusters it used, by name.
type views map[string]*clusterView

// get returns the view of a cluster, made on first use (nil for a
// cluster srv does not have).
func (vs views) get(srv *Server, cluster string) *clusterView {
	if v := vs[cluster]; v != nil {
		return v
	}
	b := srv.clusters[cluster]
	if b == nil {
		return nil
	}
	v := &clusterView{b: b, route: router.NewSession()}
	vs[cluster] = v
	return v
}

// hasTempTables: the session created temporary tables on some cluster.
func (vs views) hasTempTables() bool {
	for _, v := range vs {
		if v.route.HasTempTables() {
			return true
		}
	}
	return false
}

// run performs the handshake and serves commands until the client leaves.
func (s *session) run() {
	defer s.cleanup()
	_ = s.client.raw.SetDeadline(time.Now().Add(s.cmd.set.HandshakeTimeout))
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
	s.log.Debug("session started", zap.Uint32("id", s.id), zap.String("user", s.login.user.Name))
	s.loop()
}

func (s *session) cleanup() {
	_ = s.client.flush() // a final error packet may still be buffered
	s.tx.end()
	s.conns.releaseAll()
	s.relay.returnBuffers()
	s.client.close()
	if s.login.counted {
		s.srv.leaveUser(s.login.user.Name)
	}
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
		s.relay.returnBuffers()
		s.info.idle.Store(true)
		if s.srv.isDraining() && !s.tx.open() {
			return
		}
		armed := s.client.idleFor(s.state.idleTimeout(s.login.idleDefault))
		data, err := s.client.readCommand(s.cmd.set.MaxAllowedPacket)
		s.info.idle.Store(false)
		if armed && err == nil {
			_ = s.client.raw.SetReadDeadline(time.Time{})
		}
		if s.info.killed.Load() {
			return // KILL CONNECTION: the client finds its connection closed
		}
		if err != nil {
			s.client.readFailed(err, s.cmd.set.MaxAllowedPacket, &s.login, s.log)
			return
		}
		s.cmd.set = s.srv.settings.Load()
		if s.answer(data) || s.info.killed.Load() {
			return
		}
	}
}

// answer runs one command and writes the error it returned, if any; true
// ends the session.
func (s *session) answer(data []byte) (end bool) {
	s.cmd.now = time.Now()
	s.mux.commandStarts()
	err := s.dispatchSafely(data)
	if err == nil {
		return false
	}
	var me *mysql.MyError
	var fatal closeWith
	switch {
	case errors.As(err, &fatal):
		_ = s.client.write(s.login.errPacket(fatal.MyError))
		return true
	case errors.As(err, &me):
		return s.client.write(s.login.errPacket(me)) != nil
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
			s.conns.breakAll()
			if s.tx.kept {
				s.abortTx("an internal error in the proxy")
			}
			s.tx.end()
			s.conns.releaseAll()
			err = errInternal(fmt.Sprint(r))
		}
	}()
	return s.dispatch(data)
}

// readFailed answers what can be answered about a bad read of a command
// (at most max bytes) before the session closes.
func (c *clientConn) readFailed(err error, max int, l *login, log *zap.Logger) {
	switch {
	case errors.Is(err, errPacketTooLarge):
		log.Info("client packet over max_allowed_packet", zap.Int("max", max))
		_ = c.write(l.errPacket(errPacketTooBig(max)))
		_ = c.flush()
		// Read (and drop) what the client is still sending, briefly, so the
		// close is not a reset that destroys the error packet in flight.
		_ = c.raw.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.raw, int64(2*max)))
	case isSequenceError(err):
		_ = c.write(l.errPacket(&mysql.MyError{Code: mysql.ER_NET_PACKETS_OUT_OF_ORDER, State: "08S01", Message: "Got packets out of order"}))
	default:
		log.Debug("client read failed", zap.Error(err))
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
	case mysql.COM_RESET_CONNECTION: // a fresh server session, same login, same database
		s.startOver(s.state.db, s.state.collationID, s.state.multiOff)
		if err := s.openSession(); err != nil {
			return asClientError(err)
		}
		return s.writeOKStatus()
	case mysql.COM_CHANGE_USER:
		return s.changeUser(data)
	case mysql.COM_STMT_PREPARE:
		return s.prepare(data)
	case mysql.COM_STMT_EXECUTE:
		s.srv.stats.Queries.Add(1)
		return s.executeStmt(data)
	case mysql.COM_STMT_SEND_LONG_DATA:
		return s.sendLongData(data)
	case mysql.COM_STMT_CLOSE: // no reply
		s.stmts.close(data, &s.relay)
		return nil
	case mysql.COM_STMT_RESET, mysql.COM_STMT_FETCH:
		return s.onLastServer(data)
	case mysql.COM_PROCESS_KILL:
		if len(data) < 5 {
			return errMalformed("COM_PROCESS_KILL")
		}
		return s.kill(uint64(stmtID(data)), false)
	case mysql.COM_BINLOG_DUMP, mysql.COM_BINLOG_DUMP_GTID, mysql.COM_REGISTER_SLAVE, mysql.COM_TABLE_DUMP:
		return errUnsupportedCommand("replication commands")
	default:
		return errUnknownCommand(cmd)
	}
}

// writeOKStatus answers locally with an OK carrying the current status.
func (s *session) writeOKStatus() error {
	return s.client.write(s.relay.okFor(okPacket{status: s.status &^ mysql.SERVER_SESSION_STATE_CHANGED}, s.login.caps))
}

// errPacket is the session's error packet for e: in its client's framing
// and with the codes of its servers' family.
func (l *login) errPacket(e *mysql.MyError) []byte {
	return errPacketFor(forFlavor(e, l.flavor), l.caps)
}
