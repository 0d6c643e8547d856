package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/packet"
	"github.com/go-mysql-org/go-mysql/server"
	"github.com/pingcap/tidb/pkg/parser/charset"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
)

// session is one client connection. Everything in it is touched only by
// the session's own goroutine, except the atomics read by Shutdown.
type session struct {
	srv      *Server
	settings *Settings
	raw      net.Conn
	client   *server.Conn // handshake, then our own command loop on its packets
	pc       *packet.Conn
	out      *flushConn
	log      *zap.Logger
	id       uint32

	user    conf.User
	caps    uint32 // client capabilities we honour
	state   sessionState
	hs      handshakeHandler
	master  *backend.Conn // pinned backend connection, nil until needed
	mEpoch  uint64
	stmts   stmtRegistry
	status  uint16 // last server status flags seen
	pktBuf  []byte // reused backend packet buffer
	okBuf   []byte
	lastOK  bool        // the last relayed response ended in an OK packet
	idle    atomic.Bool // waiting for the next command
	closing atomic.Bool
}

// sessionState is what must be replayed on any backend connection the
// session uses: default database, character set and tracked variables.
type sessionState struct {
	db          string
	collationID uint8
	// vars holds session variables the server reported as changed
	// (session tracking), in the order first seen.
	vars     []string
	varValue map[string]string
	multiOff bool // client turned multi-statements off (COM_SET_OPTION)
}

func (st *sessionState) setVar(name, value string) {
	if st.varValue == nil {
		st.varValue = map[string]string{}
	}
	if _, ok := st.varValue[name]; !ok {
		st.vars = append(st.vars, name)
	}
	st.varValue[name] = value
}

// trackedVars are reported by the server in OK packets so the proxy knows
// the session's state without parsing every SET.
const trackedVars = "autocommit,character_set_client,character_set_connection,character_set_results," +
	"collation_connection,time_zone,sql_mode,last_gtid"

func newSession(srv *Server, set *Settings, c net.Conn) *session {
	return &session{srv: srv, settings: set, raw: c, log: srv.log, stmts: newStmtRegistry()}
}

// run performs the handshake and serves commands until the client leaves.
func (s *session) run() {
	defer s.cleanup()
	_ = s.raw.SetDeadline(time.Now().Add(s.settings.HandshakeTimeout))
	auth := &authenticator{sess: s}
	conn, err := s.srv.mysql.NewCustomizedConn(s.raw, auth, &s.hs)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.log.Debug("handshake failed", zap.String("client", s.raw.RemoteAddr().String()), zap.Error(err))
		}
		return
	}
	s.client = conn
	s.pc = conn.Conn
	_ = s.pc.Conn.SetDeadline(time.Time{})
	s.out = newFlushConn(s.pc.Conn)
	s.pc.Conn = s.out
	s.srv.register(s)
	s.srv.stats.Connections.Add(1)
	s.log.Debug("session started", zap.Uint32("id", s.id), zap.String("user", s.user.Name))
	s.loop()
}

// onAuthenticated runs inside the handshake after the password matched
// and before the OK is sent: a failure here reaches the client as an
// error instead of a successful login.
func (s *session) onAuthenticated(c *server.Conn) error {
	u := s.settings.Users[c.GetUser()]
	s.user = u
	s.id = c.ConnectionID()
	s.log = s.srv.log.With(zap.Uint32("session", s.id), zap.String("user", u.Name),
		zap.String("client", c.RemoteAddr().String()))
	if u.RequireTLS {
		if _, isTLS := c.Conn.Conn.(*tls.Conn); !isTLS {
			return errAccessDenied(u.Name, hostOf(c.RemoteAddr()), true)
		}
	}
	if s.srv.isDraining() {
		return errShuttingDown()
	}
	s.caps = c.Capability()
	s.state.collationID = c.Charset()
	s.state.db = s.hs.db
	s.status = mysql.SERVER_STATUS_AUTOCOMMIT
	// Connect now so a bad database (1049) or an unreachable master is
	// reported at login, as the server itself would.
	if _, err := s.masterConn(); err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) {
			return me
		}
		return errNoBackend(err)
	}
	c.SetStatus(s.status)
	return nil
}

func hostOf(a net.Addr) string {
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// closeIfIdle is called by Shutdown: a session waiting for a command with
// no open transaction can go now; a busy one finishes first.
func (s *session) closeIfIdle() {
	if s.idle.Load() && s.status&mysql.SERVER_STATUS_IN_TRANS == 0 {
		s.closing.Store(true)
		_ = s.raw.SetReadDeadline(time.Now())
	}
}

func (s *session) cleanup() {
	if s.out != nil {
		_ = s.out.Flush() // a final error packet may still be buffered
	}
	if s.master != nil {
		s.releaseMaster()
	}
	s.raw.Close()
	s.log.Debug("session ended")
}

// loop reads one command at a time and answers it.
func (s *session) loop() {
	for {
		s.pc.ResetSequence()
		s.idle.Store(true)
		if s.srv.isDraining() && s.status&mysql.SERVER_STATUS_IN_TRANS == 0 {
			_ = s.out.Flush()
			return
		}
		lw := limitWriter{max: s.settings.MaxAllowedPacket}
		err := s.pc.ReadPacketTo(&lw)
		s.idle.Store(false)
		if err != nil {
			if lw.exceeded {
				err = errPacketTooLarge // go-mysql wraps the writer's error as text
			}
			s.readFailed(err)
			return
		}
		data := lw.buf.Bytes()
		if len(data) == 0 {
			if !s.writeErr(errMalformed("empty command")) {
				return
			}
			continue
		}
		if quit, err := s.dispatch(data); err != nil || quit {
			if err != nil && !isClientGone(err) {
				s.log.Debug("session closed on error", zap.Error(err))
			}
			return
		}
	}
}

// readFailed answers what can be answered about a bad read before closing.
func (s *session) readFailed(err error) {
	switch {
	case errors.Is(err, errPacketTooLarge):
		s.log.Info("client packet over max_allowed_packet", zap.Int("max", s.settings.MaxAllowedPacket))
		s.writeErr(errPacketTooBig(s.settings.MaxAllowedPacket))
		_ = s.out.Flush()
		// Read (and drop) what the client is still sending, briefly, so the
		// close is not a reset that destroys the error packet in flight.
		_ = s.raw.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(s.raw, int64(2*s.settings.MaxAllowedPacket)))
	case strings.Contains(err.Error(), "invalid sequence"):
		s.writeErr(&mysql.MyError{Code: mysql.ER_NET_PACKETS_OUT_OF_ORDER, State: "08S01", Message: "Got packets out of order"})
	default:
		s.log.Debug("client read failed", zap.Error(err))
	}
	_ = s.out.Flush()
}

func isClientGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errClientWrite)
}

// errClientWrite marks a failed write to the client: nobody to answer.
var errClientWrite = errors.New("write to client failed")

// dispatch handles one command. quit ends the session; err is fatal.
func (s *session) dispatch(data []byte) (quit bool, err error) {
	switch cmd := data[0]; cmd {
	case mysql.COM_QUIT:
		return true, nil
	case mysql.COM_PING:
		return false, s.writeOKStatus()
	case mysql.COM_QUERY:
		s.srv.stats.Queries.Add(1)
		return false, s.forward(data, s.relayResult)
	case mysql.COM_INIT_DB:
		return false, s.forward(data, func(bc *backend.Conn) error {
			err := s.relayResult(bc)
			if err == nil && s.lastOK {
				s.state.db = string(data[1:])
			}
			return err
		})
	case mysql.COM_FIELD_LIST:
		return false, s.forward(data, s.relayFieldList)
	case mysql.COM_STATISTICS:
		return false, s.forward(data, s.relayOnePacket)
	case mysql.COM_SET_OPTION:
		return false, s.setOption(data)
	case mysql.COM_RESET_CONNECTION:
		return false, s.resetConnection()
	case mysql.COM_CHANGE_USER:
		return s.changeUser(data)
	case mysql.COM_STMT_PREPARE:
		return false, s.prepare(data)
	case mysql.COM_STMT_EXECUTE:
		s.srv.stats.Queries.Add(1)
		return false, s.execute(data)
	case mysql.COM_STMT_SEND_LONG_DATA:
		return false, s.sendLongData(data)
	case mysql.COM_STMT_CLOSE:
		return false, s.closeStmt(data)
	case mysql.COM_STMT_RESET:
		return false, s.resetStmt(data)
	case mysql.COM_STMT_FETCH:
		return false, s.fetch(data)
	case mysql.COM_PROCESS_KILL:
		return false, s.writeErrFatal(errUnsupportedCommand("COM_PROCESS_KILL (use the admin port)"))
	case mysql.COM_BINLOG_DUMP, mysql.COM_BINLOG_DUMP_GTID, mysql.COM_REGISTER_SLAVE, mysql.COM_TABLE_DUMP:
		return false, s.writeErrFatal(errUnsupportedCommand("replication commands"))
	default:
		return false, s.writeErrFatal(errUnknownCommand(cmd))
	}
}

// forward sends a client command to the master connection and lets relay
// answer it. A lost backend is reported to the client as an error and the
// session goes on with a new connection next time.
func (s *session) forward(cmd []byte, relay func(*backend.Conn) error) error {
	bc, err := s.masterConn()
	if err != nil {
		s.srv.stats.BackendErrors.Add(1)
		return s.writeErrFatal(errNoBackend(err))
	}
	if err := s.sendCommand(bc, cmd); err != nil {
		return s.backendFailed(bc, err, false)
	}
	return relay(bc)
}

// sendCommand writes one command packet to the backend and arms the
// query deadline for the reply.
func (s *session) sendCommand(bc *backend.Conn, cmd []byte) error {
	if s.settings.QueryTimeout > 0 {
		bc.SetDeadline(time.Now().Add(s.settings.QueryTimeout))
	} else {
		bc.SetDeadline(time.Time{})
	}
	bp := bc.Packets()
	bp.ResetSequence()
	buf := make([]byte, 4, 4+len(cmd))
	buf = append(buf, cmd...)
	return bp.WritePacket(buf)
}

// backendFailed handles an I/O failure on the backend: the connection is
// dropped, the client gets an error packet (mid-result too: ERR may end a
// result set), and the session continues.
func (s *session) backendFailed(bc *backend.Conn, err error, midResult bool) error {
	if errors.Is(err, errClientWrite) {
		return err
	}
	s.srv.stats.BackendErrors.Add(1)
	s.log.Warn("backend connection lost", zap.String("backend", bc.BackendName()), zap.Error(err))
	bc.MarkBroken()
	if bc == s.master {
		s.releaseMaster()
	}
	s.stmts.forgetConn(bc)
	// The transaction, if any, died with the connection.
	s.status &^= mysql.SERVER_STATUS_IN_TRANS
	_ = midResult
	return s.writeErrFatal(errBackendLost(bc.BackendName(), err))
}

// masterConn returns the session's connection to the current master,
// opening one and replaying session state if needed.
func (s *session) masterConn() (*backend.Conn, error) {
	pool, epoch, err := s.srv.cluster.MasterPool(backend.Account{User: s.user.BackendUser, Password: s.user.BackendPassword.Value()})
	if err != nil {
		return nil, err
	}
	if s.master != nil && s.mEpoch == epoch && !s.master.Broken() {
		return s.master, nil
	}
	if s.master != nil {
		s.releaseMaster()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.AcquireTimeout)
	defer cancel()
	bc, err := pool.Acquire(ctx, s.variant())
	if err != nil {
		return nil, err
	}
	if err := s.applyState(bc); err != nil {
		if _, isServerErr := backend.AsMyError(err); !isServerErr {
			bc.MarkBroken()
		}
		pool.Release(bc)
		return nil, err
	}
	bc.SetBeforeRead(s.flushClient)
	s.master, s.mEpoch = bc, epoch
	return bc, nil
}

func (s *session) releaseMaster() {
	bc := s.master
	s.master = nil
	bc.SetBeforeRead(nil)
	s.stmts.forgetConn(bc)
	if p := poolOf(s.srv.cluster, bc, s.user); p != nil {
		p.Release(bc)
	} else {
		bc.Close()
	}
}

func poolOf(c *backend.Cluster, bc *backend.Conn, u conf.User) *backend.Pool {
	p, err := c.Pool(bc.BackendName(), backend.Account{User: u.BackendUser, Password: u.BackendPassword.Value()})
	if err != nil {
		return nil
	}
	return p
}

func (s *session) variant() backend.Variant {
	return backend.Variant{
		FoundRows:   s.caps&mysql.CLIENT_FOUND_ROWS != 0,
		LocalInfile: s.settings.LoadDataLocal && s.caps&mysql.CLIENT_LOCAL_FILES != 0,
	}
}

// applyState brings a fresh (reset) backend connection to the session's
// state: character set, tracked variables, database, multi-statements.
func (s *session) applyState(bc *backend.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.IOTimeout)
	defer cancel()
	set := []string{"session_track_system_variables='" + trackedVars + "'"}
	cs, coll := "utf8mb4", ""
	if c, err := charset.GetCollationByID(int(s.state.collationID)); err == nil {
		cs, coll = c.CharsetName, c.Name
	}
	names := "SET NAMES " + cs
	if coll != "" && !strings.Contains(coll, "_0900_") { // MySQL 8 collations MariaDB lacks
		names += " COLLATE " + coll
	}
	set = append([]string{names}, set...)
	for _, name := range s.state.vars {
		if name == "last_gtid" {
			continue // read-only, informational
		}
		set = append(set, fmt.Sprintf("@@session.%s='%s'", name, escapeSQL(s.state.varValue[name])))
	}
	if _, err := bc.Exec(ctx, strings.Join(set, ", ")); err != nil {
		return fmt.Errorf("restore session state on %s: %w", bc.BackendName(), err)
	}
	if s.state.db != "" {
		if err := bc.UseDB(ctx, s.state.db); err != nil {
			return err
		}
	}
	// A pooled connection keeps the option its last user set.
	wantMulti := !s.state.multiOff && s.caps&mysql.CLIENT_MULTI_STATEMENTS != 0
	return bc.SetMultiStatements(ctx, wantMulti)
}

func escapeSQL(v string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)
}

// noteOK records what an OK packet says about the session.
func (s *session) noteOK(ok okPacket) {
	s.status = ok.status
	if ok.status&mysql.SERVER_SESSION_STATE_CHANGED == 0 {
		return
	}
	for _, ch := range parseSessionState(ok.sessionState) {
		switch ch.kind {
		case mysql.SESSION_TRACK_SCHEMA:
			s.state.db = ch.value
		case mysql.SESSION_TRACK_SYSTEM_VARIABLES:
			s.state.setVar(ch.name, ch.value)
		}
	}
}

// flushClient sends what is buffered for the client (before the proxy
// blocks on a backend read).
func (s *session) flushClient() {
	if s.out != nil {
		_ = s.out.Flush()
	}
}

// writeOKStatus answers locally with an OK carrying the current status.
func (s *session) writeOKStatus() error {
	s.okBuf = encodeOKForClient(s.okBuf, okPacket{status: s.status &^ mysql.SERVER_SESSION_STATE_CHANGED}, false)
	return s.writeClient(s.okBuf)
}

// writeClient writes one packet (with header gap) to the client.
func (s *session) writeClient(p []byte) error {
	if err := s.pc.WritePacket(p); err != nil {
		return fmt.Errorf("%w: %v", errClientWrite, err)
	}
	return nil
}

// writeErr sends an error packet; false if the client is gone.
func (s *session) writeErr(e *mysql.MyError) bool {
	return s.writeClient(errPacket(e)) == nil
}

// writeErrFatal sends an error packet and returns only client write
// failures (the session goes on after a mere error).
func (s *session) writeErrFatal(e *mysql.MyError) error {
	return s.writeClient(errPacket(e))
}

// setOption handles COM_SET_OPTION (multi-statements on/off).
func (s *session) setOption(data []byte) error {
	if len(data) < 3 {
		return s.writeErrFatal(errMalformed("COM_SET_OPTION"))
	}
	on := binary.LittleEndian.Uint16(data[1:]) == 0
	s.state.multiOff = !on
	if on {
		s.caps |= mysql.CLIENT_MULTI_STATEMENTS
	}
	if s.master != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.settings.IOTimeout)
		err := s.master.SetMultiStatements(ctx, on)
		cancel()
		if err != nil {
			if me, ok := backend.AsMyError(err); ok {
				return s.writeErrFatal(me)
			}
			return s.backendFailed(s.master, err, false)
		}
	}
	// The server answers COM_SET_OPTION with an EOF packet.
	eof := []byte{0, 0, 0, 0, mysql.EOF_HEADER, 0, 0, byte(s.status), byte(s.status >> 8)}
	return s.writeClient(eof)
}

// resetConnection handles COM_RESET_CONNECTION: a fresh server session,
// same login, same database.
func (s *session) resetConnection() error {
	s.stmts.clear()
	db := s.state.db
	s.state = sessionState{db: db, collationID: s.state.collationID, multiOff: s.state.multiOff}
	if s.master != nil {
		s.releaseMaster() // released connections are reset by the pool
	}
	if _, err := s.masterConn(); err != nil {
		return s.writeErrFatal(errNoBackend(err))
	}
	s.status = mysql.SERVER_STATUS_AUTOCOMMIT
	return s.writeOKStatus()
}
