package proxy

import (
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
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

// running is where a session's statement runs: the server and the
// backend connection's thread id. It is immutable once published, and
// kept while the session stays on the same connection (no allocation per
// statement).
type running struct {
	server  string
	thread  uint32
	account backend.Account // the side connection that kills logs in as the thread's owner
	conn    *backend.Conn   // closed by a shutdown that cannot wait any longer
}

// startRunning publishes the statement about to run on bc (KILL and the
// query timeout read it from other goroutines).
func (s *session) startRunning(server string, bc *backend.Conn) {
	if r := s.cmd.running; r == nil || r.conn != bc || r.server != server || r.account.User != s.user.BackendUser {
		s.cmd.running = &running{server: server, thread: bc.ThreadID(), account: s.account(), conn: bc}
	}
	s.info.killedWhy.Store(nil)
	s.info.running.Store(s.cmd.running)
}

// stopRunning unpublishes the statement; it returns why it was killed
// by the proxy ("" when it was not).
func (s *session) stopRunning() string {
	s.info.running.Store(nil)
	if why := s.info.killedWhy.Load(); why != nil {
		return *why
	}
	return ""
}

// killQuery interrupts the statement the session runs now, if any, by
// killing its backend thread's query through a side connection of the
// same account. why is what the session's client is told when it is not
// the server's own words ("" keeps them).
func (s *session) killQuery(why string, connection bool) error {
	r := s.info.running.Load()
	if r == nil {
		return nil
	}
	if why != "" {
		s.info.killedWhy.Store(&why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.IOTimeout)
	defer cancel()
	side, err := s.backends.Acquire(ctx, r.server, r.account, backend.Variant{}, "")
	if err != nil {
		return fmt.Errorf("kill on %s: %w", r.server, err)
	}
	defer s.backends.Return(side)
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
	s.log.Info("backend statement killed", zap.String("backend", r.server), zap.Uint32("thread", r.thread), zap.String("why", why))
	return nil
}

// abort ends the session from another goroutine without waiting for
// anybody: its client socket is closed and the backend connection of its
// running statement too (a shutdown whose drain time is over, with a
// client or a backend that does not answer).
func (s *session) abort() {
	s.info.killed.Store(true)
	s.client.close()
	if r := s.info.running.Load(); r != nil {
		r.conn.Kill()
	}
}

// killSession ends a session: its running statement is killed on the
// server, and its client connection is closed once the reply is relayed
// (or at once when it is idle).
func (s *session) killSession() {
	s.info.killed.Store(true)
	if err := s.killQuery("", true); err != nil {
		s.log.Warn("killing the session's backend statement failed", zap.Error(err))
	}
	if s.info.idle.Load() {
		s.client.wakeReader()
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
	case target.user.Name != s.user.Name:
		return &mysql.MyError{Code: mysql.ER_KILL_DENIED_ERROR, State: "HY000", Message: fmt.Sprintf("You are not owner of thread %d", id)}
	}
	if err := s.srv.Kill(uint32(id), query); err != nil {
		return errNoBackend(err)
	}
	return s.writeOKStatus()
}

// processKill handles COM_PROCESS_KILL (a 4-byte id): KILL CONNECTION.
func (s *session) processKill(data []byte) error {
	if len(data) < 5 {
		return errMalformed("COM_PROCESS_KILL")
	}
	return s.kill(uint64(binary.LittleEndian.Uint32(data[1:])), false)
}

// Kill interrupts session id's running statement (query) or ends the
// session; for the admin port and for clients' KILL.
func (srv *Server) Kill(id uint32, query bool) error {
	target := srv.session(id)
	if target == nil {
		return fmt.Errorf("no session %d", id)
	}
	if query {
		return target.killQuery("", false)
	}
	target.killSession()
	return nil
}

func (srv *Server) session(id uint32) *session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.sessions[id]
}

// statementTimer kills the session's statement when it runs longer than
// d (pool.query_timeout, or the user's own): the server stops the work,
// the client gets a clear error, and the session stays usable.
func (s *session) statementTimer(d time.Duration) *time.Timer {
	if d <= 0 {
		return nil
	}
	return time.AfterFunc(d, func() {
		why := fmt.Sprintf("Query execution was interrupted (query_timeout of %s exceeded)", d)
		if err := s.killQuery(why, false); err != nil {
			s.log.Warn("query timeout: the kill failed; the connection is cut instead", zap.Error(err))
		}
	})
}

// errQueryKilled replaces the server's error for a statement the proxy
// killed (query timeout) with one that says why.
func errQueryKilled(why string) *mysql.MyError {
	return &mysql.MyError{Code: erStatementTimeout, State: "70100", Message: why}
}

// erStatementTimeout is MariaDB's ER_STATEMENT_TIMEOUT (max_statement_time).
const erStatementTimeout = 1969
