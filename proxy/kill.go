package proxy

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// KILL, CONNECTION_ID and query timeouts. A client knows its session by
// the id the proxy gave it in the handshake; the statement it runs lives
// on a backend connection with the server's own thread id. KILL QUERY
// finds the session, and kills the backend thread running its statement
// through a side connection (the server answers the killed statement with
// its own error, and the session goes on); KILL CONNECTION also ends the
// session. A query timeout does the same as KILL QUERY.

// statementControl is the one owner of "what the session runs now", the
// part of a session other goroutines act on: KILL from another session
// or the admin port, the query timer, a shutdown. A kill and the end of
// its statement exclude each other (mu), and a kill only acts on the
// statement it was aimed at (seq): a late timer never kills the next
// statement on the same backend thread.
type statementControl struct {
	srv  *Server
	info *sessionInfo
	log  *zap.Logger // set at login, never changed: read by other goroutines

	mu  sync.Mutex
	seq uint64 // statements started; guarded by mu

	now    atomic.Pointer[running] // the statement running now (nil: none)
	why    atomic.Pointer[string]  // why the proxy killed it
	cached *running                // session goroutine only
}

// running is where a session's statement runs: the server, its cluster
// and the backend connection's thread id. It is immutable once
// published, and kept while the session stays on the same connection (no
// allocation per statement).
type running struct {
	b       *Backends
	server  string
	thread  uint32
	account backend.Account // the side connection that kills logs in as the thread's owner
	conn    *backend.Conn   // closed by a shutdown that cannot wait any longer
}

// statementRun is one started statement (see start and stop).
type statementRun struct {
	seq   uint64
	timer *time.Timer
}

func (c *statementControl) init(srv *Server, info *sessionInfo) {
	c.srv, c.info, c.log = srv, info, srv.log
}

// start publishes the statement about to run on bc of cluster b, and arms
// the query timer (timeout 0: none; bound names it for the client:
// "query_timeout", or a rule's).
func (c *statementControl) start(b *Backends, server string, bc *backend.Conn, a backend.Account, timeout time.Duration, bound string) statementRun {
	if r := c.cached; r == nil || r.conn != bc || r.server != server || r.account != a || r.b != b {
		c.cached = &running{b: b, server: server, thread: bc.ThreadID(), account: a, conn: bc}
	}
	c.mu.Lock()
	c.seq++
	run := statementRun{seq: c.seq}
	c.why.Store(nil)
	c.now.Store(c.cached)
	c.mu.Unlock()
	if timeout > 0 {
		seq := run.seq // the closure's own copy: run stays on the stack
		run.timer = time.AfterFunc(timeout, func() {
			why := fmt.Sprintf("Query execution was interrupted (%s of %s exceeded)", bound, timeout)
			if err := c.kill(seq, why, false); err != nil {
				c.log.Warn("query timeout: the kill failed; the connection is cut instead", zap.Error(err))
			}
		})
	}
	return run
}

// stop unpublishes the statement (after any kill aimed at it finished);
// it returns why the proxy killed it ("" when it did not).
func (c *statementControl) stop(run statementRun) string {
	if run.timer != nil {
		run.timer.Stop()
	}
	c.mu.Lock()
	c.now.Store(nil)
	c.seq++ // a kill aimed at the statement that ended does nothing
	c.mu.Unlock()
	if why := c.why.Load(); why != nil {
		return *why
	}
	return ""
}

// current returns the sequence number of the running statement (0: none).
func (c *statementControl) current() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.Load() == nil {
		return 0
	}
	return c.seq
}

// kill interrupts statement seq if it still runs, by killing its backend
// thread's query (or connection) through a side connection of the same
// account. why is what the client is told when it is not the server's
// own words ("" keeps them).
func (c *statementControl) kill(seq uint64, why string, connection bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.now.Load()
	if r == nil || c.seq != seq {
		return nil // it ended meanwhile
	}
	if why != "" {
		c.why.Store(&why)
	}
	timeout := c.srv.settings.Load().cluster(r.b.Name).IOTimeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	side, err := r.b.Conns.Acquire(ctx, r.server, r.account, backend.Variant{}, "")
	if err != nil {
		return fmt.Errorf("kill on %s: %w", r.server, err)
	}
	defer r.b.Conns.Return(side)
	what := "QUERY"
	if connection {
		what = "CONNECTION"
	}
	if _, err := side.Exec(ctx, fmt.Sprintf("KILL %s %d", what, r.thread)); err != nil {
		if me, ok := backend.AsMyError(err); ok && me.Code == mysql.ER_NO_SUCH_THREAD {
			return nil // it ended meanwhile
		}
		return fmt.Errorf("kill on %s: %w", r.server, err)
	}
	c.log.Info("backend statement killed", zap.String("backend", r.server), zap.Uint32("thread", r.thread), zap.String("why", why))
	return nil
}

// killQuery interrupts whatever statement the session runs now.
func (c *statementControl) killQuery() error {
	if seq := c.current(); seq != 0 {
		return c.kill(seq, "", false)
	}
	return nil
}

// killSession ends a session: its running statement is killed on the
// server, and its client connection is closed once the reply is relayed
// (or at once when it is idle).
func (c *statementControl) killSession(client *clientConn) {
	c.info.killed.Store(true)
	if seq := c.current(); seq != 0 {
		if err := c.kill(seq, "", true); err != nil {
			c.log.Warn("killing the session's backend statement failed", zap.Error(err))
		}
	}
	if c.info.idle.Load() {
		client.wakeReader()
	}
}

// closeIfIdle is called by Shutdown: a session waiting for a command with
// no open transaction can go now; a busy one finishes first.
func (c *statementControl) closeIfIdle(client *clientConn) {
	if c.info.idle.Load() && !c.info.inTx.Load() {
		client.wakeReader()
	}
}

// abort ends the session from another goroutine without waiting for
// anybody: its client socket is closed and the backend connection of its
// running statement too (a shutdown whose drain time is over, with a
// client or a backend that does not answer).
func (c *statementControl) abort(client *clientConn) {
	c.info.killed.Store(true)
	client.close()
	if r := c.now.Load(); r != nil {
		r.conn.Kill()
	}
}

// killStmt matches the KILL statements that take an id: KILL [HARD|SOFT]
// [QUERY|CONNECTION] n. (KILL USER and KILL QUERY ID go to the server.)
var killStmt = regexp.MustCompile(`(?i)^\s*KILL\s+(?:(?:HARD|SOFT)\s+)?(QUERY\s+|CONNECTION\s+)?(\d+)\s*;?\s*$`)

// parseKill reads a KILL statement with an id; ok is false for any other
// statement.
func parseKill(sql string) (id uint64, query, ok bool) {
	m := killStmt.FindStringSubmatch(sql)
	if m == nil {
		return 0, false, false
	}
	id, err := strconv.ParseUint(m[2], 10, 32)
	if err != nil {
		return 0, false, false
	}
	return id, len(m[1]) > 0 && (m[1][0] == 'Q' || m[1][0] == 'q'), true
}

// kill handles KILL n from a client (statement or COM_PROCESS_KILL): n is
// a proxy session id, of a session of the same user (MariaDB's rule for
// accounts without CONNECTION ADMIN).
func (s *session) kill(id uint64, query bool) error {
	if id == uint64(s.id) {
		if query {
			return &mysql.MyError{Code: mysql.ER_QUERY_INTERRUPTED, State: "70100", Message: "Query execution was interrupted"}
		}
		return errConnectionKilled()
	}
	target := s.srv.session(uint32(id))
	switch {
	case target == nil:
		return &mysql.MyError{Code: mysql.ER_NO_SUCH_THREAD, State: "HY000", Message: fmt.Sprintf("Unknown thread id: %d", id)}
	case target.info.userName() != s.login.user.Name:
		return &mysql.MyError{Code: mysql.ER_KILL_DENIED_ERROR, State: "HY000", Message: fmt.Sprintf("You are not owner of thread %d", id)}
	}
	if err := s.srv.Kill(uint32(id), query); err != nil {
		return errNoBackend(err)
	}
	return s.writeOKStatus()
}

// Kill interrupts session id's running statement (query) or ends the
// session; for the admin port and for clients' KILL.
func (srv *Server) Kill(id uint32, query bool) error {
	target := srv.session(id)
	if target == nil {
		return fmt.Errorf("no session %d", id)
	}
	if query {
		return target.ctl.killQuery()
	}
	target.ctl.killSession(&target.client)
	return nil
}

// errQueryKilled replaces the server's error for a statement the proxy
// killed (query timeout) with one that says why.
func errQueryKilled(why string) *mysql.MyError {
	return &mysql.MyError{Code: erStatementTimeout, State: "70100", Message: why}
}

// erStatementTimeout is MariaDB's ER_STATEMENT_TIMEOUT (max_statement_time).
const erStatementTimeout = 1969
