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
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/internal/sockio"
	"github.com/switchyard/switchyard/router"
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

	user  conf.User
	caps  uint32 // client capabilities we honour
	state sessionState
	// stateVersion counts changes of state; each held connection records
	// the version it was brought to.
	stateVersion uint64
	hs           handshakeHandler
	conns        map[string]*heldConn // by server name
	route        *router.Session
	stmts        stmtRegistry
	status       uint16  // last server status flags seen
	pktBuf       *[]byte // backend packet buffer, held during a command (packetBufs)
	okBuf        []byte
	cmdBuf       []byte      // framing buffer for commands sent to backends
	in           limitWriter // the command being read, reused
	// Filled while relaying one response, read by Observe afterwards.
	lastOK      bool   // the response ended in OK/EOF, not ERR
	lastGTID    string // last_gtid reported by the server
	charsetSeen bool   // a character_set_* variable changed
	autocommit  *bool  // autocommit change reported by the server
	cur         *heldConn
	epoch       uint64      // topology epoch the held connections belong to
	idle        atomic.Bool // waiting for the next command
	closing     atomic.Bool
	lastStmt    atomic.Pointer[string] // digest of the last statement, for SHOW SESSIONS
	lastBackend atomic.Pointer[string]
	dbName      atomic.Pointer[string] // mirrors state.db for SHOW SESSIONS
	inTx        atomic.Bool
	started     time.Time
	lastRows    uint64 // rows (or affected rows) of the last response
	// Multiplexing (see multiplex.go): pinned says why the session keeps
	// its backend connections until reset; keepFor counts statements that
	// must still run on the same connections (LAST_INSERT_ID, warnings).
	pinned  string
	keepFor int
	tag     cachedTag
	// For SHOW SESSIONS (read by the admin goroutine).
	heldConns   atomic.Int32
	heldBecause atomic.Pointer[string]
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

func (st *sessionState) has(name string) bool {
	_, ok := st.varValue[name]
	return ok
}

// moveVarLast sets a variable and makes it replay after the others.
func (st *sessionState) moveVarLast(name, value string) {
	for i, n := range st.vars {
		if n == name {
			st.vars = append(st.vars[:i], st.vars[i+1:]...)
			break
		}
	}
	delete(st.varValue, name)
	st.setVar(name, value)
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

// ansiQuotes reports whether the session's sql_mode makes "x" an
// identifier (it changes how statements parse).
func (st *sessionState) ansiQuotes() bool {
	m := strings.ToUpper(st.varValue["sql_mode"])
	return strings.Contains(m, "ANSI_QUOTES") || strings.Contains(m, "ANSI,") || m == "ANSI"
}

func newSession(srv *Server, set *Settings, c net.Conn) *session {
	return &session{srv: srv, settings: set, raw: c, log: srv.log, stmts: newStmtRegistry(),
		conns: map[string]*heldConn{}, route: router.NewSession(), started: time.Now()}
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
	s.out = newFlushConn(sockio.Wrap(s.pc.Conn))
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
	s.releaseAll()
	s.raw.Close()
	s.log.Debug("session ended")
}

// loop reads one command at a time and answers it.
func (s *session) loop() {
	for {
		s.giveBackConns()
		s.returnBuffers()
		s.pc.ResetSequence()
		s.idle.Store(true)
		if s.srv.isDraining() && s.status&mysql.SERVER_STATUS_IN_TRANS == 0 {
			_ = s.out.Flush()
			return
		}
		s.in.reset(s.settings.MaxAllowedPacket)
		err := s.pc.ReadPacketTo(&s.in)
		s.idle.Store(false)
		if err != nil {
			if s.in.exceeded {
				err = errPacketTooLarge // go-mysql wraps the writer's error as text
			}
			s.readFailed(err)
			return
		}
		data := s.in.buf.Bytes() // valid until the next command is read
		if s.keepFor > 0 {
			s.keepFor--
		}
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
		return false, s.query(data)
	case mysql.COM_INIT_DB:
		return false, s.onMaster(data, func(bc *backend.Conn) error {
			err := s.relayResult(bc)
			if err == nil && s.lastOK && s.state.db != string(data[1:]) {
				s.state.db = string(data[1:])
				s.stateChanged()
			}
			return err
		})
	case mysql.COM_FIELD_LIST:
		return false, s.onMaster(data, s.relayFieldList)
	case mysql.COM_STATISTICS:
		return false, s.onMaster(data, s.relayOnePacket)
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
		return false, s.executeStmt(data)
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

// onMaster runs a command that is not routed (metadata, statistics) on
// the master.
func (s *session) onMaster(cmd []byte, relay func(*backend.Conn) error) error {
	return s.execute(router.Class{Kind: router.KindWrite, Reason: "command"}, cmd, relay, func() (router.Decision, error) {
		m, _ := s.srv.cluster.Master()
		if m == "" {
			return router.Decision{}, router.ErrNoMaster
		}
		return router.Decision{Target: m}, nil
	})
}

// query handles COM_QUERY: classify, decide, run.
func (s *session) query(data []byte) error {
	sql := string(data[1:])
	cl := s.srv.classifier.Classify(sql, s.state.ansiQuotes())
	s.noteStatement(cl.Digest)
	s.notePin(cl)
	return s.execute(cl, data, s.relayResult, func() (router.Decision, error) {
		return router.Decide(cl, s.route, s.srv.cluster.Topology(), s.srv.policy())
	})
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
	if last := s.lastStmt.Load(); last == nil || *last != digest {
		keep := digest
		s.lastStmt.Store(&keep)
	}
}

// execute runs one client command on the backend chosen by decide, with
// the read-your-writes wait when needed, relays the reply, and tells the
// router what happened. A replica that cannot be reached before anything
// was sent is avoided and the decision taken again, so the client never
// sees that failure.
func (s *session) execute(cl router.Class, cmd []byte, relay func(*backend.Conn) error, decide func() (router.Decision, error)) error {
	return s.executeBuiltAttempt(cl, cmd, nil, relay, decide, 0)
}

// executeBuilt is execute for commands whose bytes depend on the backend
// connection (prepared statement ids): build may prepare on bc first.
func (s *session) executeBuilt(cl router.Class, build func(*backend.Conn) ([]byte, error), relay func(*backend.Conn) error, decide func() (router.Decision, error)) error {
	return s.executeBuiltAttempt(cl, nil, build, relay, decide, 0)
}

// isLocalClose tells a write on a socket we closed ourselves (nothing was
// sent) from a failure on the wire.
func isLocalClose(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed network connection")
}

// cmd is sent as is when build is nil.
func (s *session) executeBuiltAttempt(cl router.Class, cmd []byte, build func(*backend.Conn) ([]byte, error), relay func(*backend.Conn) error, decide func() (router.Decision, error), attempt int) error {
	var bc *backend.Conn
	var d router.Decision
	inGate := false // passed the write gate: LeaveMaster is owed
	leaveGate := func() {
		if inGate {
			s.srv.cluster.LeaveMaster()
			inGate = false
		}
	}
	defer leaveGate()
	for try := 0; ; try++ {
		var err error
		leaveGate()
		s.followEpoch()
		if d, err = decide(); err != nil {
			return s.writeErrFatal(errRouting(err))
		}
		topo := s.srv.cluster.Topology()
		if d.Target == topo.Master {
			// Statements for the master pass the write gate: during a
			// failover or switchover they wait for the new master.
			master, err := s.enterMaster()
			if err != nil {
				return s.writeErrFatal(errHeld(err))
			}
			inGate = true
			if master != d.Target {
				continue // the master changed while we waited: decide again
			}
		}
		bc, err = s.prepareTarget(&d)
		if err == nil {
			break
		}
		if me, isServerErr := backend.AsMyError(err); isServerErr && (d.Target == topo.Master || try >= 2) {
			return s.writeErrFatal(me)
		}
		if d.Target == topo.Master {
			// The master is unreachable: wait (hold_timeout) for the
			// failover engine to name another, then run there.
			leaveGate()
			if s.waitForNewMaster(topo.Epoch) && try < 3 {
				continue
			}
			s.srv.stats.BackendErrors.Add(1)
			return s.writeErrFatal(errNoBackend(err))
		}
		if try >= 2 {
			s.srv.stats.BackendErrors.Add(1)
			return s.writeErrFatal(errNoBackend(err))
		}
		// Nothing was sent yet: a replica that cannot serve this session
		// (down, or lacking its database so far) is avoided for a moment.
		s.log.Warn("replica cannot serve the session; routing elsewhere", zap.String("backend", d.Target), zap.Error(err))
		s.route.Avoid(d.Target, s.srv.avoidFor())
	}
	s.cur = s.conns[d.Target]
	s.lastOK, s.lastGTID, s.autocommit, s.charsetSeen, s.lastRows = false, "", nil, false, 0
	start := time.Now()
	if last := s.lastBackend.Load(); last == nil || *last != d.Target {
		target := d.Target
		s.lastBackend.Store(&target)
	}
	send := cmd
	if build != nil {
		var err error
		if send, err = build(bc); err != nil {
			s.cur = nil
			if me, ok := err.(*mysql.MyError); ok {
				return s.writeErrFatal(me)
			}
			return s.backendFailed(bc, err, false)
		}
	}
	if send == nil {
		s.cur = nil
		return nil // nothing to send (a command without reply)
	}
	defer s.srv.cluster.Begin(d.Target).End()
	if err := s.sendCommand(bc, send); err != nil {
		if bc.Broken() && !s.route.InTx && attempt < 2 && isLocalClose(err) {
			// The connection was cut (monitor, failover) before anything
			// left: the statement never reached a server, route it again.
			s.release(d.Target)
			if m, _ := s.srv.cluster.Master(); d.Target != m {
				s.route.Avoid(d.Target, s.srv.avoidFor())
			}
			return s.executeBuiltAttempt(cl, cmd, build, relay, decide, attempt+1)
		}
		return s.backendFailed(bc, err, false)
	}
	if err := relay(bc); err != nil {
		return err
	}
	if s.charsetSeen {
		s.learnCollation(bc)
	}
	s.route.Observe(cl, router.Outcome{Target: d.Target, OK: s.lastOK, InTx: s.status&mysql.SERVER_STATUS_IN_TRANS != 0,
		LastGTID: s.lastGTID, Autocommit: s.autocommit})
	s.inTx.Store(s.route.InTx)
	if cur := s.dbName.Load(); cur == nil || *cur != s.state.db {
		db := s.state.db
		s.dbName.Store(&db)
	}
	master, _ := s.srv.cluster.Master()
	took := time.Since(start)
	s.srv.digests.record(cl.Digest, took, s.lastRows, d.Target == master)
	if s.srv.observe != nil {
		s.srv.observe(cl.Kind.String(), d.Target == master, s.lastOK, took)
	}
	s.cur = nil
	return nil
}

// enterMaster passes the cluster's write gate (bounded by hold_timeout);
// the caller owes a LeaveMaster. Statements inside an open transaction
// are not held.
func (s *session) enterMaster() (string, error) {
	master, _, err := s.srv.cluster.EnterMaster(s.srv.holdTimeout(), s.route.InTx)
	return master, err
}

// waitForNewMaster waits up to hold_timeout for a topology with another
// epoch; true if one came.
func (s *session) waitForNewMaster(epoch uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.holdTimeout())
	defer cancel()
	t, err := s.srv.cluster.WaitChange(ctx, epoch)
	return err == nil && t.Master != ""
}

// followEpoch drops every held connection when the topology epoch
// changed: the master may be another server now, and the session's
// transaction (if any) died with the old one.
func (s *session) followEpoch() {
	_, epoch := s.srv.cluster.Master()
	if s.epoch == epoch {
		return
	}
	if s.epoch != 0 {
		s.releaseAll()
		if s.route.InTx {
			s.route.Observe(router.Class{Kind: router.KindWrite}, router.Outcome{})
			s.status &^= mysql.SERVER_STATUS_IN_TRANS
		}
	}
	s.epoch = epoch
}

// prepareTarget gets the connection for a decision: for read-your-writes
// it first waits on the replica for the session's last write (before the
// session state is replayed, so a database created by that write exists),
// and switches to the fallback (master) when the wait times out.
func (s *session) prepareTarget(d *router.Decision) (*backend.Conn, error) {
	if d.WaitGTID == "" {
		return s.connTo(d.Target)
	}
	bc, err := s.acquire(d.Target)
	if err != nil {
		return nil, err
	}
	caught, err := s.waitGTID(bc, d.WaitGTID)
	if err != nil {
		s.log.Warn("read-your-writes wait failed; reading from the master", zap.String("backend", d.Target), zap.Error(err))
	}
	if !caught {
		d.Target, d.WaitGTID = d.Fallback, ""
		return s.connTo(d.Target)
	}
	s.route.CaughtUp(d.Target)
	if err := s.sync(d.Target); err != nil {
		return nil, err
	}
	return bc, nil
}

// learnCollation reads collation_connection after a character set change:
// MariaDB reports character_set_* but not the collation a SET NAMES …
// COLLATE chose, and replaying only the character sets would reset it.
func (s *session) learnCollation(bc *backend.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.IOTimeout)
	defer cancel()
	r, err := bc.Exec(ctx, "SELECT @@collation_connection")
	if err != nil || r.Resultset == nil || len(r.Values) == 0 {
		return
	}
	s.state.moveVarLast("collation_connection", string(r.Values[0][0].AsString()))
	s.stateChanged()
}

// waitGTID runs MASTER_GTID_WAIT on a replica: true when it has applied
// gtid within the configured wait.
func (s *session) waitGTID(bc *backend.Conn, gtid string) (bool, error) {
	wait := s.srv.gtidWait()
	ctx, cancel := context.WithTimeout(context.Background(), wait+s.settings.IOTimeout)
	defer cancel()
	r, err := bc.Exec(ctx, fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', %.3f)", escapeSQL(gtid), wait.Seconds()))
	if err != nil {
		if _, isServerErr := backend.AsMyError(err); !isServerErr {
			s.release(s.nameOf(bc))
		}
		return false, err
	}
	if r.Resultset == nil || len(r.Values) == 0 {
		return false, fmt.Errorf("MASTER_GTID_WAIT returned no row")
	}
	return r.Values[0][0].AsInt64() == 0 && r.Values[0][0].Value() != nil, nil
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
	buf := append(append(s.cmdBuf[:0], 0, 0, 0, 0), cmd...)
	if cap(buf) <= maxKeptBuffer {
		s.cmdBuf = buf // reused for the next command
	}
	return bp.WritePacket(buf)
}

// backendFailed handles an I/O failure on the backend: the connection is
// dropped, the client gets an error packet (mid-result too: ERR may end a
// result set), and the session continues on other connections.
func (s *session) backendFailed(bc *backend.Conn, err error, midResult bool) error {
	if errors.Is(err, errClientWrite) {
		return err
	}
	name := s.nameOf(bc)
	s.srv.stats.BackendErrors.Add(1)
	s.log.Warn("backend connection lost", zap.String("backend", name), zap.Bool("mid_result", midResult), zap.Error(err))
	bc.MarkBroken()
	s.release(name)
	if master, _ := s.srv.cluster.Master(); name != master {
		s.route.Avoid(name, s.srv.avoidFor())
	}
	// A transaction on that connection died with it.
	s.status &^= mysql.SERVER_STATUS_IN_TRANS
	s.route.Observe(router.Class{Kind: router.KindWrite}, router.Outcome{Target: name})
	s.cur = nil
	return s.writeErrFatal(errBackendLost(name, err))
}

// masterConn returns the session's connection to the current master.
// Connections to a server that is no longer the master are given back.
func (s *session) masterConn() (*backend.Conn, error) {
	master, _ := s.srv.cluster.Master()
	if master == "" {
		return nil, backend.ErrNoMaster
	}
	return s.connTo(master)
}

// noteOK records what an OK packet says about the session: status
// flags, and (session tracking) a changed database or variable, or the
// GTID of a commit.
func (s *session) noteOK(ok okPacket) {
	s.status = ok.status
	if ok.status&mysql.SERVER_SESSION_STATE_CHANGED == 0 {
		return
	}
	changed := false
	for _, ch := range parseSessionState(ok.sessionState) {
		switch {
		case ch.kind == mysql.SESSION_TRACK_SCHEMA:
			if s.state.db != ch.value {
				s.state.db, changed = ch.value, true
			}
		case ch.name == "last_gtid":
			s.lastGTID = ch.value
		case ch.kind == mysql.SESSION_TRACK_SYSTEM_VARIABLES:
			if strings.HasPrefix(ch.name, "character_set_") {
				s.charsetSeen = true
			}
			if ch.name == "autocommit" {
				on := strings.EqualFold(ch.value, "ON") || ch.value == "1"
				s.autocommit = &on
			}
			if s.state.varValue[ch.name] != ch.value || !s.state.has(ch.name) {
				s.state.setVar(ch.name, ch.value)
				changed = true
			}
		}
	}
	if changed {
		s.stateChanged()
	}
}

// stateChanged bumps the state version; the connection that reported the
// change already has it.
func (s *session) stateChanged() {
	s.stateVersion++
	if s.cur != nil {
		s.cur.synced = s.stateVersion
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
	for _, h := range s.conns {
		ctx, cancel := context.WithTimeout(context.Background(), s.settings.IOTimeout)
		err := h.bc.SetMultiStatements(ctx, on)
		cancel()
		if err != nil {
			if me, ok := backend.AsMyError(err); ok {
				return s.writeErrFatal(me)
			}
			return s.backendFailed(h.bc, err, false)
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
	s.stateVersion++
	s.releaseAll() // released connections are reset by the pool
	s.route.Reset()
	s.pinned, s.keepFor = "", 0
	if _, err := s.masterConn(); err != nil {
		return s.writeErrFatal(errNoBackend(err))
	}
	s.status = mysql.SERVER_STATUS_AUTOCOMMIT
	return s.writeOKStatus()
}
