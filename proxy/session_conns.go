package proxy

import (
	"errors"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// connTo returns the session's connection to a server of cluster v,
// taking one from the pool if needed, brought up to date with the
// session's state (database, character set, variables), and for the
// master with the state bound to the master connection. An idle pooled
// connection may have died with its server (a restart): then the idle
// ones are dropped and one fresh try is made.
func (s *session) connTo(v *clusterView, server string) (*backend.Conn, error) {
	h, err := s.heldTo(v, server)
	if h == nil {
		return nil, err
	}
	return h.bc, err
}

// heldTo is connTo returning the session's held connection (nil when
// there is none: then err says why). Like connTo, it may return the
// connection with an error.
func (s *session) heldTo(v *clusterView, server string) (*heldConn, error) {
	set := v.settings(s.cmd.set)
	args := s.login.acquireArgs(set, s.cmd.set, &s.state, s.client.flushHook())
	// The transaction's connection is never swapped for another under it
	// (only its replay, once it is known lost, takes a new one).
	args.keep = s.tx.open() && s.tx.on == server && s.tx.lost == ""
	for attempt := 0; ; attempt++ {
		h, err := s.conns.acquire(v, server, args)
		if errors.Is(err, errHeldConnGone) {
			s.tx.lose("the connection to " + server + " was lost")
		}
		if err != nil {
			return nil, err
		}
		bc := h.bc
		if h.synced == s.state.version {
			return h, v.carryBound(server, bc, set.IOTimeout, s.log)
		}
		fresh := h.synced == notSynced
		onReplica := server != v.b.topology().Master
		db := s.cmd.set.Routes.DatabaseOn(s.state.db, v.b.Name)
		dropped, err := s.state.apply(bc, db, s.login.multiStatements(&s.state), onReplica, set.IOTimeout)
		if err == nil {
			h.synced = s.state.version
			if len(dropped) > 0 {
				s.log.Warn("session variables could not be set on a new connection", zap.Strings("dropped", dropped))
				return h, errStateLost("the session variables " + strings.Join(dropped, ", ") + " could not be set on " + server)
			}
			return h, v.carryBound(server, bc, set.IOTimeout, s.log)
		}
		if _, isServerErr := backend.AsMyError(err); isServerErr {
			if fresh {
				s.conns.release(server)
			}
			return nil, err
		}
		bc.MarkBroken()
		s.conns.release(server)
		if !fresh || attempt > 0 {
			return nil, err
		}
		v.b.Conns.CloseIdle(server)
	}
}

// carryBound gives a new master connection of the cluster the state
// bound to the old one (user variables set again), or reports what did
// not survive (and drops it).
func (v *clusterView) carryBound(server string, bc *backend.Conn, timeout time.Duration, log *zap.Logger) error {
	if server != v.b.topology().Master {
		return nil
	}
	lost, replayed := v.bound.carry(bc, v.route, timeout)
	if replayed > 0 {
		log.Info("user variables set again on a new master connection", zap.Int("statements", replayed))
	}
	if lost == "" {
		return nil
	}
	v.bound.dropUnmovable()
	v.route.DropTempTables()
	log.Warn("session state lost with its master connection", zap.String("lost", lost))
	return errStateLost(lost)
}

// acquireArgs is how a session of this login in state st takes
// connections on a cluster.
func (l *login) acquireArgs(set *ClusterSettings, top *Settings, st *sessionState, flush func()) acquireArgs {
	a := acquireArgs{account: l.account(), timeout: set.AcquireTimeout, flush: flush,
		variant: backend.Variant{
			FoundRows:      l.caps&mysql.CLIENT_FOUND_ROWS != 0,
			LocalInfile:    top.LoadDataLocal && l.caps&mysql.CLIENT_LOCAL_FILES != 0,
			NoMultiResults: l.caps&mysql.CLIENT_MULTI_RESULTS == 0,
			NoSchema:       st.db == "",
		}}
	if top.Multiplexing {
		a.tag = st.tagFor(l.multiStatements(st))
	}
	return a
}

// account is the backend login for this user's traffic.
func (l *login) account() backend.Account {
	return backend.Account{User: l.user.BackendUser, Password: l.user.BackendPassword.Value()}
}

// multiStatements: the client negotiated multi-statements and has not
// turned them off.
func (l *login) multiStatements(st *sessionState) bool {
	return !st.multiOff && l.caps&mysql.CLIENT_MULTI_STATEMENTS != 0
}

// queryTimeout is the bound on one statement: the user's own, else
// pool.query_timeout (0: none).
func (l *login) queryTimeout(set *ClusterSettings) time.Duration {
	if l.user.QueryTimeout > 0 {
		return l.user.QueryTimeout.D()
	}
	return set.QueryTimeout
}

// applyReply takes in what a reply from target said about the session:
// status flags, changes of schema or variables (target's connection has
// them already), a collation to read back, and a new home cluster when
// the database changed.
func (s *session) applyReply(target string, bc *backend.Conn, r *reply) {
	if r.statusSeen {
		s.status = r.status
	}
	s.mux.noteReply(r)
	db := s.state.db
	if s.state.take(r.changes) {
		s.conns.synced(target, s.state.version)
	}
	if r.charsetChanged {
		v := s.conns.get(target)
		if v != nil && s.state.learnCollation(bc, v.view.settings(s.cmd.set).IOTimeout) {
			s.conns.synced(target, s.state.version)
		}
	}
	if s.state.db == db {
		return
	}
	// A new database may move the session to another cluster (when no
	// transaction holds it where it is).
	storeIfChanged(&s.info.db, s.state.db)
	if v := s.views.get(s.srv, s.cmd.set.Routes.Home(s.state.db, s.login.user.Name)); v != nil && !s.tx.open() {
		s.home = v
		storeIfChanged(&s.info.cluster, v.b.Name)
	}
}

// giveBackConns parks the session's backend connections in their pools
// when multiplexing is on and nothing ties the session to them, and
// publishes what it keeps (for SHOW SESSIONS).
func (s *session) giveBackConns() {
	why := ""
	switch {
	case len(s.conns.held) == 0:
	case !s.cmd.set.Multiplexing:
		why = "multiplexing off"
	default:
		why = s.mux.keepReason(keepers{
			inTx:          s.status&mysql.SERVER_STATUS_IN_TRANS != 0 || s.tx.open(),
			autocommitOff: s.state.autocommitOff(),
			tempTables:    s.views.hasTempTables(),
			variables:     s.state.replayedVars() > 0,
			statements:    s.stmts.count() > 0,
			cursor:        s.status&mysql.SERVER_STATUS_CURSOR_EXISTS != 0,
		})
		if why == "" {
			s.conns.park(s.state.tagFor(s.login.multiStatements(&s.state)))
		}
	}
	s.info.heldConns.Store(int32(len(s.conns.held)))
	storeIfChanged(&s.info.heldBecause, why)
}
