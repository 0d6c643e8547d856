package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/rules"
)

// A command is one client command that runs on a backend: how to choose
// the server, the bytes to send, and what kind of reply to relay.
type command struct {
	class   router.Class
	act     rules.Action  // what the query rules want done with it
	fill    *cacheFill    // a read that fills the result cache (nil: none)
	payload []byte        // the client's command packet (without header)
	stmt    *preparedStmt // statement commands: the backend's id goes in per connection
	stmtID  uint32        // COM_STMT_PREPARE: the id the client will know the statement by
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

// runs reports whether the command runs a statement (COM_QUERY or
// COM_STMT_EXECUTE): one that can start, continue or end a transaction.
func (c *command) runs() bool {
	return len(c.payload) > 0 && (c.payload[0] == mysql.COM_QUERY || c.payload[0] == mysql.COM_STMT_EXECUTE)
}

// changesNothing: running the statement twice is the same as once.
func changesNothing(cl router.Class) bool {
	return cl.Kind == router.KindBegin || cl.Kind == router.KindBeginReadOnly || (cl.Kind == router.KindRead && cl.DML)
}

// exec runs one command and relays its reply:
//
//	cluster  which cluster it belongs to (its databases, else the session's)
//	checkTx  a transaction whose connection is gone is replayed first
//	place    decide where it runs, pass the write gate, get a connection in the session's state
//	runOn    send, relay the reply to the client, observe what it did
//
// A failure comes back as a *failure and the retry policy (nextStep)
// decides what it becomes; all waits share one deadline, hold_timeout
// from now.
func (s *session) exec(c *command) error {
	if s.cmd.set.Rules.Len() > 0 && c.runs() {
		ruleStatement(&s.cmd.rule, c, &s.login, s.state.db)
		c.act = s.cmd.set.Rules.Match(&s.cmd.rule)
		if !c.act.None() {
			c.act.Hit(s.cmd.now)
		}
		if c.act.Block != "" {
			err := errBlocked(c.act)
			s.logQuery(c, "", "", &reply{serverErr: err}, 0)
			return err
		}
	}
	v, err := s.clusterOf(c)
	if err != nil {
		return err
	}
	if c.act.CacheTTL > 0 && s.rc.c != nil {
		if served, err := s.fromCache(c, v); served {
			return err
		}
		defer s.rc.abandon(c)
	}
	deadline := s.cmd.now.Add(v.settings(s.cmd.set).HoldTimeout)
	for tries := 0; ; tries++ {
		if tries > 0 && s.info.killed.Load() {
			return errConnectionKilled() // KILL CONNECTION or a shutdown: no second try
		}
		if handled, err := s.checkTx(c, v, deadline); handled {
			return err
		}
		p, err := s.place(c, v, deadline)
		if err == nil {
			err = s.runOn(c, p)
			p.leave()
		}
		f := asFailure(err)
		if f == nil {
			return err // done: nil, the client's error, or the client is gone
		}
		if err := s.recover(v, f, tries, deadline); err != nil {
			return err
		}
	}
}

// asFailure finds a *failure in err's chain (errors.As without the
// allocation its target costs on every statement).
func asFailure(err error) *failure {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if f, ok := e.(*failure); ok {
			return f
		}
	}
	return nil
}

// clusterOf returns the cluster a command runs on: a transaction's own,
// else the one its databases belong to (ClusterMap.Pick). A statement
// that would span two clusters is refused.
func (s *session) clusterOf(c *command) (*clusterView, error) {
	name, err := s.cmd.set.Routes.Pick(&c.class, s.home.b.Name)
	if r := c.act.Route; err == nil && name == s.home.b.Name && r != "" && r != router.RouteMaster && r != router.RouteReplica {
		name = r // a rule's cluster, for statements whose databases name none
	}
	if c.route == routeMaster || c.route == routeStmtLast {
		name, err = s.home.b.Name, nil
	}
	if c.stmt != nil && c.stmt.cluster != "" {
		name, err = c.stmt.cluster, nil // a prepared statement stays where it was prepared
	}
	if err != nil {
		return nil, errCrossCluster(err)
	}
	if t := s.tx.view; s.tx.open() && t.b.Name != name {
		return nil, errCrossCluster(&router.CrossClusterError{Clusters: []string{t.b.Name, name}, InTransaction: true})
	}
	v := s.home // most statements run on the session's home cluster
	if name != v.b.Name {
		v = s.views.get(s.srv, name)
	}
	if v == nil {
		return nil, errRouting(errors.New("unknown cluster " + name))
	}
	return v, nil
}

// recover carries out the retry policy's step for a failure; nil means
// try the command again.
func (s *session) recover(v *clusterView, f *failure, tries int, deadline time.Time) error {
	set := v.settings(s.cmd.set)
	switch nextStep(f, tries, time.Now().After(deadline)) {
	case stepRetry:
		return nil
	case stepAvoid:
		s.log.Info("backend cannot serve this statement now; routing elsewhere", zap.String("backend", f.server), zap.Error(f))
		v.route.Avoid(f.server, set.AvoidFor)
		return nil
	case stepWait:
		waitForChange(v, f.epoch, deadline)
		return nil
	case stepReplay:
		s.tx.lose(f.Error())
		return nil
	case stepAbortTx:
		return s.abortTx(f.Error() + " while its result was being sent")
	case stepUnknown:
		s.abortTx("the connection was lost during a statement that may have committed it: its outcome is unknown")
		s.log.Warn("transaction outcome unknown: connection lost during a committing statement", zap.Error(f))
		return errCommitUnknown(f.Error())
	}
	s.srv.stats.BackendErrors.Add(1)
	if f.kept && s.tx.open() {
		// A kept transaction that could not be replayed in time is over:
		// the client hears it as one (class 40), never as a lone error.
		return s.abortTx(f.Error() + ", and the transaction could not be replayed in time")
	}
	return failedError(v, f)
}

// failedError is the client's error for a command the policy gave up on.
func failedError(v *clusterView, f *failure) error {
	switch {
	case f.kind == lostInFlight || (f.tx != txNone && !f.kept):
		return errBackendLost(f.server, f.err)
	case f.kind == replicaRefused:
		return asClientError(f.err)
	case f.toMaster || f.kind == masterMoved:
		return errNoMaster(v.b.topology(), f.err)
	}
	return errNoBackend(f.err)
}

// masterRetryEvery is how often an unreachable master is tried again.
const masterRetryEvery = 250 * time.Millisecond

// waitForChange waits, after the master could not be reached, for the
// next topology or for a moment (the same master may come back: a
// restart, a pause), never past deadline.
func waitForChange(v *clusterView, epoch uint64, deadline time.Time) {
	left := time.Until(deadline)
	if left <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(left, masterRetryEvery))
	defer cancel()
	_, _ = v.b.Topo.WaitChange(ctx, epoch)
}

// placement is where one command runs.
type placement struct {
	view   *clusterView
	target string
	held   *heldConn // the session's connection to target
	gated  bool      // passed the write gate: Leave is owed
	epoch  uint64
}

func (p placement) leave() {
	if p.gated {
		p.view.b.Gate.Leave()
	}
}

// place chooses the server and returns a connection to it in the
// session's state. Statements for the master pass the write gate: during
// a failover or switchover they wait there for the new master.
func (s *session) place(c *command, v *clusterView, deadline time.Time) (placement, error) {
	s.followEpoch(v)
	topo := v.b.topology()
	if s.tx.open() && s.tx.lost != "" {
		// The transaction's connection is gone: nothing runs before it is
		// replayed (or aborted), or the command would run outside it.
		return placement{}, &failure{kind: notSent, server: s.tx.on, err: errors.New(s.tx.lost), epoch: topo.Epoch,
			tx: s.tx.phase, kept: s.tx.kept}
	}
	d, err := s.decide(c, v, topo)
	if err != nil {
		return placement{}, errRouting(err)
	}
	if d.WaitGTID != "" && !s.waitReplica(v, d.Target, d.WaitGTID) {
		if !router.MasterAvailable(topo) {
			return placement{}, errReadYourWrites(d.WaitGTID, topo)
		}
		d = router.Decision{Target: d.Fallback, Reason: "replica behind the session's last write"}
	}
	p := placement{view: v, target: d.Target, epoch: topo.Epoch}
	toMaster := d.Target == topo.Master
	if toMaster {
		master, _, err := v.b.Gate.Enter(deadline, s.tx.open())
		if err != nil {
			return placement{}, errHeld(err)
		}
		p.gated = true
		if master != d.Target {
			p.leave()
			return placement{}, &failure{kind: masterMoved, server: d.Target, toMaster: true, epoch: topo.Epoch}
		}
	}
	if p.held, err = s.heldTo(v, d.Target); err != nil {
		p.leave()
		if isRefused(err) {
			v.b.suspect(d.Target)
		}
		f := &failure{kind: notSent, server: d.Target, err: err, toMaster: toMaster, epoch: topo.Epoch, tx: s.tx.phase, kept: s.tx.kept}
		return placement{}, connectFailure(f)
	}
	return p, nil
}

// connectFailure classifies a failure to get a connection in the
// session's state (nothing was sent for the command yet): f, or an
// error for the client.
func connectFailure(f *failure) error {
	var lost stateLost
	var refuses replicaRefuses
	me, serverErr := backend.AsMyError(f.err)
	switch {
	case errors.As(f.err, &lost):
		return lost.MyError
	case errors.As(f.err, &refuses):
		f.kind = replicaRefused
	case serverErr && f.toMaster:
		return me // the server's own answer (unknown database, access denied …)
	}
	return f
}

// decide applies the command's routing rule.
func (s *session) decide(c *command, v *clusterView, topo *backend.Topology) (router.Decision, error) {
	switch c.route {
	case routeMaster:
		if topo.Master != "" {
			return router.Decision{Target: topo.Master}, nil
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
	ctx := router.Context{TxOn: s.tx.server(), LastTarget: s.cmd.target,
		AutocommitOff: s.state.autocommitOff(), ReadsOnMaster: s.state.readsOnMaster()}
	policy := v.settings(s.cmd.set).Policy
	if r := c.act.Route; r == router.RouteMaster || r == router.RouteReplica {
		ctx.Route, ctx.Rule = r, c.act.Rules
	}
	if c.act.MaxLag > 0 {
		policy.MaxLag = c.act.MaxLag
	}
	return router.Decide(&c.class, ctx, v.route, topo, policy)
}

// runOn sends the command on p and relays the reply. An I/O failure
// drops the connection and comes back as a *failure.
func (s *session) runOn(c *command, p placement) error {
	s.cmd.target = p.target
	storeIfChanged(&s.info.lastBackend, p.target)
	set := p.view.settings(s.cmd.set)
	send, err := s.relay.commandBytes(c, p.held.bc, p.target, set.IOTimeout)
	if err != nil {
		if me, ok := err.(*mysql.MyError); ok {
			return me
		}
		return s.lost(c, p, &reply{}, false, err)
	}
	if send == nil {
		return nil // nothing to send (a command without reply)
	}
	count := p.view.b.Count.Begin(p.target)
	defer count.End()
	toMaster := p.target == p.view.b.topology().Master
	r := s.relay.newReply()
	if s.tx.recording(c, toMaster, set.TxReplay.Enabled, s.state.autocommitOff()) {
		s.relay.checksum(r)
	}
	s.tx.sending(c)
	caches := s.cmd.set.Rules.Caches()
	s.rc.invalidate(c, p.view.b.Name, "", false, s.tx.open(), caches)
	if c.fill != nil {
		s.client.startCapture(maxCachedReply)
	}
	sent, err := s.sendAndRelay(c, p, send, r, set)
	if c.fill != nil {
		data, captured := s.client.stopCapture()
		if err == nil {
			s.rc.finish(c, p, r, data, captured, set.Policy.MaxLag)
		}
	}
	if err != nil {
		return s.lost(c, p, r, sent, err)
	}
	took := time.Since(s.cmd.now) // as the client waited: from its command's arrival
	err = s.observe(c, p, r, took, toMaster)
	if r.ok {
		s.rc.invalidate(c, p.view.b.Name, r.gtid, true, s.tx.open(), caches)
	}
	s.rc.txEnded(r.gtid, s.tx.open())
	s.logQuery(c, p.view.b.Name, p.target, r, took)
	return err
}

// lost turns an I/O failure under a command into a *failure, after
// dropping the connection (and with it the transaction it carried). A
// failed write to the client ends the session instead.
func (s *session) lost(c *command, p placement, r *reply, sent bool, err error) error {
	if errors.Is(err, errClientWrite) {
		return err
	}
	f := &failure{kind: notSent, server: p.target, err: err, epoch: p.epoch, toMaster: p.gated,
		relayed: r.sent, harmless: changesNothing(c.class), tx: s.tx.phase, kept: s.tx.kept}
	if sent {
		f.kind = lostInFlight
	}
	s.srv.stats.BackendErrors.Add(1)
	s.log.Warn("backend connection lost", zap.String("backend", p.target), zap.Error(err))
	p.held.bc.MarkBroken()
	s.dropConn(p.target)
	return f
}

// dropConn gives a failed connection back (discarded) and loses the
// transaction it carried: a kept one waits for its replay, any other is
// over.
func (s *session) dropConn(server string) {
	s.conns.release(server)
	if s.tx.server() != server {
		return
	}
	if s.tx.kept {
		s.tx.lose("the connection to " + server + " was lost")
		return
	}
	s.tx.end()
	s.status &^= mysql.SERVER_STATUS_IN_TRANS
	s.info.inTx.Store(false)
}

// sendAndRelay sends the command and relays its reply, published as the
// session's running statement (KILL, the query timeout); sent is false
// when the command's write failed.
func (s *session) sendAndRelay(c *command, p placement, send []byte, r *reply, set *ClusterSettings) (sent bool, err error) {
	timeout, bound := s.login.queryTimeout(set), "query_timeout"
	if c.act.Timeout > 0 {
		timeout, bound = c.act.Timeout, "the timeout of rule "+c.act.Rules // a rule's own bound
	}
	run := s.ctl.start(p.view.b, p.target, p.held.bc, s.login.account(), timeout, bound)
	defer func() {
		if why := s.ctl.stop(run); why != "" && r.serverErr != nil {
			r.serverErr = errQueryKilled(why)
		}
	}()
	if err := s.relay.request(p.held.bc, send, timeout, set.IOTimeout); err != nil {
		return false, err
	}
	err = s.relay.reply(c, p.held.bc, r, s.cmd.set)
	return err == nil || !p.held.bc.CommandUnsent(), err
}

// preparing is the class of a COM_STMT_PREPARE's reply: preparing is not
// running (never changed: observe hands it out by pointer).
var preparing = router.Class{Kind: router.KindRead}

// observe takes in what a relayed reply said: session state, the
// transaction, the router's view, connection-bound state, statistics.
// It returns the server's error for the client, if the reply was one.
func (s *session) observe(c *command, p placement, r *reply, took time.Duration, toMaster bool) error {
	set := p.view.settings(s.cmd.set)
	s.applyReply(p.target, p.held.bc, r)
	cl := &c.class
	if c.reply == replyPrepare {
		cl = &preparing
		if r.prepared != nil {
			r.prepared.cluster = p.view.b.Name
			s.stmts.add(r.prepared)
		}
	}
	p.view.route.Observe(cl, router.Outcome{Target: p.target, OK: r.ok, LastGTID: r.gtid})
	s.tx.follow(c, r, s.status&mysql.SERVER_STATUS_IN_TRANS != 0, p.target, p.view, toMaster, set.TxReplay.MaxSize)
	s.info.inTx.Store(s.tx.open())
	p.view.bound.note(c, toMaster, r.ok, p.held, p.view.route.HasTempTables())
	storeIfChanged(&s.info.db, s.state.db)
	slot := &s.cmd.digests[cl.DigestHash%digestSlots]
	if c.route == routeStmt {
		slot = &c.stmt.digest
	}
	s.srv.digests.recordAt(slot, cl.Digest, took, r.rows, toMaster)
	if s.srv.observe != nil {
		s.srv.observe(p.view.b.Name, cl.Kind.String(), toMaster, r.ok, took)
	}
	// The client's own session tracking, or a server's globals, changed
	// what the proxy keeps.
	if c.class.SetsTracking && r.ok {
		t, err := s.state.learnTracking(p.held.bc, set.IOTimeout)
		if err != nil {
			return s.lost(c, p, r, true, err)
		}
		s.login.track = t
	}
	if c.class.SetsGlobal && r.ok {
		// New sessions start from the new globals, as they would on the
		// server: idle connections (reset before the change) are dropped,
		// and the defaults the proxy keeps are read again.
		p.view.b.Conns.CloseIdle(p.target)
		s.srv.defaults.Delete(p.view.b.Name)
	}
	if r.serverErr != nil {
		return r.serverErr
	}
	return nil
}

// followEpoch drops the connections held to a cluster whose topology
// epoch changed: the master may be another server now. A transaction the
// proxy keeps is replayed there (checkTx); any other died with its
// connection.
func (s *session) followEpoch(v *clusterView) {
	epoch := v.b.topology().Epoch
	if v.epoch == epoch {
		return
	}
	if v.epoch != 0 {
		if s.tx.view == v {
			s.tx.lose("the master changed")
		}
		for _, server := range s.conns.serversOf(v) {
			s.dropConn(server)
		}
	}
	v.epoch = epoch
}

// waitReplica makes a read-your-writes read wait on the replica until it
// has applied the session's last write (MASTER_GTID_WAIT on MariaDB,
// WAIT_FOR_EXECUTED_GTID_SET on MySQL, bounded by gtid_wait_timeout). It
// runs before the session state is replayed, so a database created by
// that write exists there. False sends the read elsewhere.
func (s *session) waitReplica(v *clusterView, replica, gtid string) bool {
	set := v.settings(s.cmd.set)
	h, err := s.conns.acquire(v, replica, s.login.acquireArgs(set, s.cmd.set, &s.state, s.client.flushHook()))
	if err != nil {
		return false
	}
	bc := h.bc
	ctx, cancel := context.WithTimeout(context.Background(), set.GTIDWait+set.IOTimeout)
	defer cancel()
	r, err := bc.Exec(ctx, bc.Flavor().WaitGTIDSQL(gtid, set.GTIDWait))
	if err != nil {
		s.log.Warn("read-your-writes wait failed", zap.String("backend", replica), zap.Error(err))
		if _, isServerErr := backend.AsMyError(err); !isServerErr {
			s.conns.release(replica)
		}
		return false
	}
	if r.Resultset == nil || len(r.Values) == 0 || r.Values[0][0].Value() == nil || r.Values[0][0].AsInt64() != 0 {
		return false
	}
	v.route.CaughtUp(replica)
	return true
}
