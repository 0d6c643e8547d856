package proxy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/backend"
)

// connSet is the one owner of the backend connections a session holds:
// at most one per server (server names are unique across clusters), each
// with the version of session state applied on it.
type connSet struct {
	held map[string]*heldConn
	// lastName and last repeat the latest lookup of held: a session's
	// statements mostly run on one server (the map's lookup hashes the
	// name; comparing it with the same name is one pointer compare).
	lastName string
	last     *heldConn
	state    *sessionState
	stmts    *stmtRegistry
	info     *sessionInfo
	now      *time.Time // the session's clock reading for the current command
}

// heldConn is a held backend connection, its cluster, and the version of
// session state applied on it.
type heldConn struct {
	bc     *backend.Conn
	view   *clusterView
	synced uint64
}

// notSynced marks a connection that has never had the session's state.
const notSynced = ^uint64(0)

func newConnSet(st *sessionState, stmts *stmtRegistry, info *sessionInfo, now *time.Time) connSet {
	return connSet{held: map[string]*heldConn{}, state: st, stmts: stmts, info: info, now: now}
}

// get returns the held connection to server, or nil.
func (cs *connSet) get(server string) *heldConn {
	if cs.last != nil && cs.lastName == server {
		return cs.last
	}
	h := cs.held[server]
	if h != nil {
		cs.lastName, cs.last = server, h
	}
	return h
}

// forget drops server's connection from the set.
func (cs *connSet) forget(server string) {
	delete(cs.held, server)
	if cs.lastName == server {
		cs.lastName, cs.last = "", nil
	}
}

// acquireArgs is how a session takes a connection from a pool.
type acquireArgs struct {
	account backend.Account
	variant backend.Variant
	tag     string // multiplexing: the state a parked connection should have
	timeout time.Duration
	flush   func() // the connection's before-read hook
	// keep: the held connection carries the session's transaction; a
	// dead one is not replaced (errHeldConnGone).
	keep bool
}

// errHeldConnGone: the connection carrying the transaction is dead; a
// new one would run the statement outside it.
var errHeldConnGone = errors.New("the connection carrying the transaction is gone")

// acquire returns the held connection to server or takes one from v's
// pool, without bringing it up to date (the session syncs it).
func (cs *connSet) acquire(v *clusterView, server string, a acquireArgs) (*heldConn, error) {
	h := cs.get(server)
	if h == nil && a.keep {
		return nil, errHeldConnGone
	}
	if h != nil {
		// A connection the server closed while the session was idle
		// (wait_timeout, a restart) is replaced before anything is sent.
		if h.bc.Alive(*cs.now, backend.AliveCheckAfter) {
			return h, nil
		}
		cs.release(server)
		if a.keep {
			return nil, errHeldConnGone
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	bc, err := v.b.Conns.Acquire(ctx, server, a.account, a.variant, a.tag)
	cancel()
	if err != nil {
		return nil, err
	}
	bc.SetBeforeRead(a.flush)
	// A connection parked by a session in the same state (multiplexing)
	// needs no replay; any other gets the full state on first use.
	synced := notSynced
	if a.tag != "" && bc.StateTag() == a.tag && cs.state.replayedVars() == 0 {
		synced = cs.state.version
	}
	h = &heldConn{bc: bc, view: v, synced: synced}
	cs.held[server] = h
	cs.lastName, cs.last = server, h
	cs.publish()
	return h, nil
}

// release gives one server's connection back to its pool (which resets
// it, or discards it when broken).
func (cs *connSet) release(server string) {
	h := cs.get(server)
	if h == nil {
		return
	}
	cs.forget(server)
	h.bc.NoteSchema(cs.state.db)
	h.bc.SetBeforeRead(nil)
	cs.stmts.forgetConn(h.bc)
	h.view.b.Conns.Return(h.bc)
	cs.publish()
}

// releaseAll gives back every connection (session end, reset, change
// user).
func (cs *connSet) releaseAll() {
	for name := range cs.held {
		cs.release(name)
	}
}

// park gives every connection back without a reset (multiplexing): those
// whose state is the session's are tagged with it, others are reset.
func (cs *connSet) park(tag string) {
	for name, h := range cs.held {
		cs.forget(name)
		h.bc.SetBeforeRead(nil)
		h.bc.NoteSchema(cs.state.db)
		if h.synced != cs.state.version {
			h.view.b.Conns.Return(h.bc) // state not known to match the tag: reset it
			continue
		}
		h.view.b.Conns.Park(h.bc, tag)
	}
	storeIfChanged(&cs.info.threads, "")
}

// breakAll marks every held connection broken (their state is unknown
// after a panic): the pools discard them.
func (cs *connSet) breakAll() {
	for _, h := range cs.held {
		h.bc.MarkBroken()
	}
}

// serversOf lists the servers of cluster v the session holds
// connections to.
func (cs *connSet) serversOf(v *clusterView) []string {
	var out []string
	for name, h := range cs.held {
		if h.view == v {
			out = append(out, name)
		}
	}
	return out
}

// nameOf returns the server a held connection belongs to.
func (cs *connSet) nameOf(bc *backend.Conn) string {
	for name, h := range cs.held {
		if h.bc == bc {
			return name
		}
	}
	return bc.BackendName()
}

// synced records that the connection to server has the session's state
// as of version.
func (cs *connSet) synced(server string, version uint64) {
	if h := cs.held[server]; h != nil {
		h.synced = version
	}
}

// publish lists the backend threads the session holds, for SHOW
// SESSIONS (a DBA matches them to PROCESSLIST rows).
func (cs *connSet) publish() {
	names := make([]string, 0, len(cs.held))
	for name := range cs.held {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", name, cs.held[name].bc.ThreadID())
	}
	storeIfChanged(&cs.info.threads, b.String())
	cs.info.heldConns.Store(int32(len(cs.held)))
}
