package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/router"
)

// A command is one client command that runs on a backend: how to choose
// the server, the bytes to send, and what kind of reply to relay.
type command struct {
	class   router.Class
	payload []byte        // the client's command packet (without header)
	stmt    *preparedStmt // statement commands: the backend's id goes in per connection
	route   routeKind
	reply   replyKind
}

// routeKind says how a command's server is chosen.
type routeKind uint8

const (
	routeByClass  routeKind = iota // router.Decide on the class
	routeMaster                    // metadata commands (COM_FIELD_LIST, COM_STATISTICS)
	routeStmt                      // where long data went, else by the statement's class
	routeStmtLast                  // where the statement last ran (its cursor lives there)
)

// replyKind says what a command's reply looks like.
type replyKind uint8

const (
	replyResult    replyKind = iota // OK, ERR or result sets (COM_QUERY, COM_STMT_EXECUTE)
	replyRows                       // rows up to EOF (COM_STMT_FETCH)
	replyFieldList                  // column definitions up to EOF (COM_FIELD_LIST)
	replyOnePacket                  // a single packet (COM_STATISTICS)
	replyPrepare                    // COM_STMT_PREPARE: statement OK and definitions
)

// maxResends bounds how often a command is placed again after its
// connection was lost (errRunAgain, errTxLost).
const maxResends = 2

// errRunAgain: the command's connection was lost but running it again is
// safe: it never reached a server (its write failed), or it changes
// nothing and none of its reply reached the client.
var errRunAgain = errors.New("connection lost; the command may run again")

// exec runs one command and relays its reply:
//
//	place    decide where it runs, pass the write gate, get a connection in the session's state
//	send     the command's bytes (rewritten for prepared statements)
//	relay    the reply, to the client
//	observe  what it did: session state, the router's view, statistics
//
// Until the bytes have left, a failure is invisible to the client: a
// replica that cannot serve is avoided and the decision taken again, an
// unreachable master is waited for (hold_timeout), a connection cut under
// the session is replaced. After that, a lost connection is an error for
// the client.
func (s *session) exec(c *command) error {
	for tries := 0; ; tries++ {
		if tries > 0 && s.info.killed.Load() {
			return errConnectionKilled() // KILL CONNECTION or a shutdown: no second try
		}
		if handled, err := s.checkTx(c); handled {
			return err
		}
		p, err := s.place(c)
		if err == nil {
			err = s.runOn(c, p)
			p.leave(s)
		}
		again := errors.Is(err, errRunAgain) || errors.Is(err, errTxLost)
		switch {
		case again && tries < maxResends:
			continue
		case errors.Is(err, errRunAgain):
			return errBackendLost(p.target, err)
		case errors.Is(err, errTxLost):
			return s.abortTx(s.tx.lost + ", again after replaying")
		}
		return err
	}
}

// placement is where one command runs.
type placement struct {
	target string
	bc     *backend.Conn
	gated  bool // passed the write gate: LeaveMaster is owed
}

func (p placement) leave(s *session) {
	if p.gated {
		s.backends.LeaveMaster()
	}
}

// maxRefusals bounds how many replicas refusing the session's state one
// statement tries before the refusal reaches the client.
const maxRefusals = 8

// place chooses the server and returns a connection to it in the
// session's state. Statements for the master pass the write gate: during
// a failover or switchover they wait for the new master.
func (s *session) place(c *command) (placement, error) {
	var deadline time.Time // set when the master first cannot be reached
	for try := 0; ; try++ {
		s.followEpoch()
		if s.tx.open && s.txConnGone() {
			return placement{}, errTxLost // checkTx replays it first
		}
		d, err := s.decide(c)
		if err != nil {
			return placement{}, errRouting(err)
		}
		if d.WaitGTID != "" && !s.waitReplica(d.Target, d.WaitGTID) {
			d = router.Decision{Target: d.Fallback, Reason: "replica behind the session's last write"}
		}
		topo := s.backends.Topology()
		toMaster := d.Target == topo.Master
		p := placement{target: d.Target}
		if toMaster {
			master, _, err := s.backends.EnterMaster(s.srv.holdTimeout(), s.route.InTx)
			if err != nil {
				return placement{}, errHeld(err)
			}
			p.gated = true
			if master != d.Target {
				p.leave(s)
				continue // the master changed while we waited: decide again
			}
		}
		if p.bc, err = s.connTo(d.Target); err == nil {
			return p, nil
		}
		p.leave(s)
		if err := s.connectFailed(err, d.Target, toMaster, try, topo.Epoch, &deadline); err != nil {
			return placement{}, err
		}
	}
}

// connectFailed decides what place does when no connection in the
// session's state could be had on target (nothing was sent yet): nil to
// decide again, or the error for the client. deadline bounds the wait for
// an unreachable master (set on its first failure).
func (s *session) connectFailed(err error, target string, toMaster bool, try int, epoch uint64, deadline *time.Time) error {
	var lost stateLost
	if errors.As(err, &lost) {
		return lost.MyError
	}
	if refuses := (replicaRefuses{}); errors.As(err, &refuses) && try < maxRefusals {
		// Each refusing replica is avoided in turn, then the policy for
		// "no replica" applies (by default: the master). Bounded: a
		// statement prepared on that replica has nowhere else to go.
		s.log.Info("replica cannot take the session's state; routing elsewhere", zap.Error(err))
		s.route.Avoid(target, s.srv.avoidFor())
		return nil
	}
	me, serverErr := backend.AsMyError(err)
	switch {
	case serverErr && (toMaster || try >= 2):
		return me
	case toMaster:
		// The master is unreachable: wait (hold_timeout) for it to come
		// back or for the failover engine to name another.
		if deadline.IsZero() {
			*deadline = time.Now().Add(s.srv.holdTimeout())
		}
		if s.retryMaster(epoch, *deadline) {
			return nil
		}
		s.srv.stats.BackendErrors.Add(1)
		return errNoBackend(err)
	case try >= 2:
		s.srv.stats.BackendErrors.Add(1)
		return errNoBackend(err)
	default:
		// A replica that cannot serve this session (down, or lacking its
		// database so far) is avoided.
		s.log.Warn("replica cannot serve the session; routing elsewhere", zap.String("backend", target), zap.Error(err))
		s.route.Avoid(target, s.srv.avoidFor())
		return nil
	}
}

// decide applies the command's routing rule.
func (s *session) decide(c *command) (router.Decision, error) {
	switch c.route {
	case routeMaster:
		if m := s.backends.Topology().Master; m != "" {
			return router.Decision{Target: m}, nil
		}
		return router.Decision{}, router.ErrNoMaster
	case routeStmtLast:
		if c.stmt.longDataOn == "" && c.stmt.lastOn != "" {
			return router.Decision{Target: c.stmt.lastOn}, nil
		}
		fallthrough
	case routeStmt:
		if c.stmt.longDataOn != "" {
			return router.Decision{Target: c.stmt.longDataOn}, nil
		}
	}
	return router.Decide(c.class, s.route, s.backends.Topology(), s.srv.policy())
}

// runOn sends the command on p and relays the reply.
func (s *session) runOn(c *command, p placement) error {
	s.cmd.target = p.target
	storeIfChanged(&s.info.lastBackend, p.target)
	send, err := s.commandBytes(c, p)
	if err != nil {
		if me, ok := err.(*mysql.MyError); ok {
			return me
		}
		return s.lostConnection(p.target, p.bc, err)
	}
	if send == nil {
		return nil // nothing to send (a command without reply)
	}
	count := s.backends.Begin(p.target)
	defer count.End()
	start := time.Now()
	r := s.newReply()
	if s.txRecording(c, p.target) {
		s.checksummed(r)
	}
	inTx := s.route.InTx // a lost connection clears it
	sent, err := s.sendAndRelay(c, p, send, r)
	switch {
	case err != nil && !sent:
		// The write failed (the connection was cut under the session, or
		// its server is gone): the server runs only complete command
		// packets, so this one never ran. It is sent again elsewhere, its
		// transaction replayed first; only a read-only transaction on a
		// replica, which the proxy does not keep, ends here.
		lost := s.lostConnection(p.target, p.bc, err)
		switch {
		case s.tx.open:
			s.tx.lost = lost.Error()
			return errTxLost
		case inTx:
			return lost
		}
		return errRunAgain
	case err != nil:
		return s.afterLoss(c, r, inTx, err)
	}
	s.observe(c, p, r, time.Since(start))
	s.noteTx(c, p.target, r)
	s.noteBound(c, p.target, r.ok)
	if c.class.SetsTracking && r.ok {
		if err := s.learnTracking(p.bc); err != nil {
			return s.lostConnection(p.target, p.bc, err)
		}
	}
	if c.class.SetsGlobal && r.ok {
		// New sessions start from the new globals, as they would on the
		// server: idle connections (reset before the change) are dropped,
		// and the defaults the proxy keeps are read again.
		s.backends.CloseIdle(p.target)
		s.srv.serverDefaults.Store(nil)
	}
	if r.serverErr != nil {
		return r.serverErr
	}
	return nil
}

// sendAndRelay sends the command and relays its reply, published as the
// session's running statement (KILL, the query timeout); sent is false
// when the command's write failed.
func (s *session) sendAndRelay(c *command, p placement, send []byte, r *reply) (sent bool, err error) {
	s.startRunning(p.target, p.bc)
	timer := s.statementTimer(s.queryTimeout())
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if why := s.stopRunning(); why != "" && r.serverErr != nil {
			r.serverErr = errQueryKilled(why)
		}
	}()
	if err := s.send(p.bc, send); err != nil {
		return false, err
	}
	return true, s.relay(c, p.bc, r)
}

// queryTimeout is the bound on one statement: the user's own, else
// pool.query_timeout (0: none).
func (s *session) queryTimeout() time.Duration {
	if s.user.QueryTimeout > 0 {
		return s.user.QueryTimeout.D()
	}
	return s.settings.QueryTimeout
}

// afterLoss decides what a connection lost under a command becomes.
// Inside a transaction the proxy keeps: a replay or an abort (lostInTx).
// Outside any transaction (inTx: before the command), a command that
// changes nothing (a read, BEGIN) is sent again when none of its reply
// reached the client; any other keeps its error (1927): it may have run.
func (s *session) afterLoss(c *command, r *reply, inTx bool, err error) error {
	var lost *connLost
	switch {
	case !errors.As(err, &lost):
		return err
	case s.tx.open:
		return s.lostInTx(c, r, lost.Error())
	case !r.sent && !inTx && changesNothing(c.class):
		return errRunAgain
	}
	return err
}

// changesNothing: running the statement twice is the same as once.
func changesNothing(cl router.Class) bool {
	return cl.Kind == router.KindBegin || cl.Kind == router.KindBeginReadOnly || (cl.Kind == router.KindRead && cl.DML)
}

// txConnGone: the connection carrying the open transaction is gone.
func (s *session) txConnGone() bool {
	h := s.conns[s.tx.on]
	return s.tx.lost != "" || h == nil || !h.bc.Alive(backend.AliveCheckAfter)
}

// commandBytes returns what to send on p's connection: the client's
// packet, or for a prepared statement the packet with the backend's id
// (preparing it there first if needed).
func (s *session) commandBytes(c *command, p placement) ([]byte, error) {
	if c.stmt == nil {
		return c.payload, nil
	}
	id, err := s.prepareOn(p.bc, c.stmt)
	if err != nil {
		return nil, err
	}
	c.stmt.lastOn = p.target
	if c.payload[0] != mysql.COM_STMT_EXECUTE {
		return withID(c.payload, id), nil
	}
	pkt, err := c.stmt.bindPacket(c.payload, id)
	if err != nil {
		return nil, errMalformed(err.Error())
	}
	return pkt, nil
}

// relay copies the reply for c's kind to the client.
func (s *session) relay(c *command, bc *backend.Conn, r *reply) error {
	switch c.reply {
	case replyRows:
		return s.relayRows(bc, r)
	case replyFieldList:
		return s.relayFieldList(bc, r)
	case replyOnePacket:
		return s.relayPacket(bc, r)
	case replyPrepare:
		return s.relayPrepare(bc, c, r)
	}
	// COM_STMT_EXECUTE: flags (byte 5) other than 0 ask for a cursor.
	r.cursor = c.payload[0] == mysql.COM_STMT_EXECUTE && len(c.payload) > 5 && c.payload[5] != 0
	return s.relayResult(bc, r)
}

// observe takes in what a relayed reply said: session state, the
// router's view of the session, statistics.
func (s *session) observe(c *command, p placement, r *reply, took time.Duration) {
	s.applyReply(p.target, r)
	if r.charsetChanged {
		s.learnCollation(p.target, p.bc)
	}
	cl := c.class
	if c.reply == replyPrepare {
		cl = router.Class{Kind: router.KindRead} // preparing is not running
	}
	s.route.Observe(cl, router.Outcome{Target: p.target, OK: r.ok, InTx: s.status&mysql.SERVER_STATUS_IN_TRANS != 0,
		LastGTID: r.gtid, Autocommit: r.autocommit})
	s.info.inTx.Store(s.route.InTx)
	storeIfChanged(&s.info.db, s.state.db)
	toMaster := p.target == s.backends.Topology().Master
	s.srv.digests.record(cl.Digest, took, r.rows, toMaster)
	if s.srv.observe != nil {
		s.srv.observe(cl.Kind.String(), toMaster, r.ok, took)
	}
}

// send writes one command packet to the backend. With a query timeout,
// a socket deadline past it (by io_timeout) is the backstop when killing
// the statement fails (a hung server).
func (s *session) send(bc *backend.Conn, cmd []byte) error {
	if d := s.queryTimeout(); d > 0 {
		bc.SetDeadline(time.Now().Add(d + s.settings.IOTimeout))
	} else {
		bc.SetDeadline(time.Time{})
	}
	bc.Sent()
	bp := bc.Packets()
	bp.ResetSequence()
	buf := append(append(s.cmd.cmdBuf[:0], 0, 0, 0, 0), cmd...)
	if cap(buf) <= maxKeptBuffer {
		s.cmd.cmdBuf = buf // reused for the next command
	}
	return bp.WritePacket(buf)
}

// connLost is a backend connection lost under a command: the client gets
// errBackendLost (mid-result too: an ERR packet may end a result set)
// unless the transaction it carried is replayed.
type connLost struct {
	target string
	err    error
}

func (e *connLost) Error() string {
	return "the connection to " + e.target + " was lost (" + shortErr(e.err) + ")"
}

// lostConnection handles an I/O failure on a backend connection: it is
// dropped and the session goes on with other connections. A transaction
// the proxy keeps (txState) survives for replay; any other is over.
func (s *session) lostConnection(target string, bc *backend.Conn, err error) error {
	if errors.Is(err, errClientWrite) {
		return err
	}
	s.srv.stats.BackendErrors.Add(1)
	s.log.Warn("backend connection lost", zap.String("backend", target), zap.Error(err))
	bc.MarkBroken()
	s.release(target)
	if target != s.backends.Topology().Master {
		s.route.Avoid(target, s.srv.avoidFor())
	}
	if !s.tx.open {
		s.connectionLost()
	}
	return &connLost{target: target, err: err}
}

// connectionLost forgets a transaction that died with its connection.
func (s *session) connectionLost() {
	s.status &^= mysql.SERVER_STATUS_IN_TRANS
	s.route.Observe(router.Class{Kind: router.KindWrite}, router.Outcome{})
	s.info.inTx.Store(false)
}

// followEpoch drops every held connection when the topology epoch
// changed: the master may be another server now. A transaction the proxy
// keeps is replayed there (checkTx); any other died with the old master.
func (s *session) followEpoch() {
	epoch := s.backends.Topology().Epoch
	if s.epoch == epoch {
		return
	}
	if s.epoch != 0 {
		if s.tx.open && s.tx.lost == "" {
			s.tx.lost = "the master changed"
		}
		s.releaseAll()
		if s.route.InTx && !s.tx.open {
			s.connectionLost()
		}
	}
	s.epoch = epoch
}

// masterRetryEvery is how often an unreachable master is tried again.
const masterRetryEvery = 250 * time.Millisecond

// retryMaster waits, after the master could not be reached, for the next
// topology or for a moment (the same master may come back: a restart, a
// pause), never past deadline; false once the deadline has passed.
func (s *session) retryMaster(epoch uint64, deadline time.Time) bool {
	left := time.Until(deadline)
	if left <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(left, masterRetryEvery))
	defer cancel()
	_, _ = s.backends.WaitChange(ctx, epoch)
	return true
}

// waitReplica makes a read-your-writes read wait on the replica until it
// has applied the session's last write (MASTER_GTID_WAIT on MariaDB,
// WAIT_FOR_EXECUTED_GTID_SET on MySQL, bounded by gtid_wait_timeout). It runs before the session state is replayed, so a
// database created by that write exists there. False sends the read to
// the master instead.
func (s *session) waitReplica(replica, gtid string) bool {
	bc, err := s.acquire(replica)
	if err != nil {
		return false
	}
	wait := s.srv.gtidWait()
	ctx, cancel := context.WithTimeout(context.Background(), wait+s.settings.IOTimeout)
	defer cancel()
	r, err := bc.Exec(ctx, bc.Flavor().WaitGTIDSQL(gtid, wait))
	if err != nil {
		s.log.Warn("read-your-writes wait failed; reading from the master", zap.String("backend", replica), zap.Error(err))
		if _, isServerErr := backend.AsMyError(err); !isServerErr {
			s.release(replica)
		}
		return false
	}
	if r.Resultset == nil || len(r.Values) == 0 || r.Values[0][0].Value() == nil || r.Values[0][0].AsInt64() != 0 {
		return false
	}
	s.route.CaughtUp(replica)
	return true
}
