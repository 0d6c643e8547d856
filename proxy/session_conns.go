package proxy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
)

// heldConn is a backend connection a session holds (one per server it
// uses) and the version of session state applied on it.
type heldConn struct {
	bc     *backend.Conn
	synced uint64
}

// notSynced marks a connection that has never had the session's state.
const notSynced = ^uint64(0)

// connTo returns the session's connection to a server, taking one from
// the pool if needed, brought up to date with the session's state
// (database, character set, variables), and for the master with the
// state bound to the master connection (carryBound).
func (s *session) connTo(server string) (*backend.Conn, error) {
	bc, err := s.acquire(server)
	if err != nil {
		return nil, err
	}
	if err := s.sync(server); err != nil {
		return bc, err
	}
	if server == s.backends.Topology().Master {
		return bc, s.carryBound(bc)
	}
	return bc, nil
}

// acquire returns the held connection to server or takes one from the
// pool, without bringing it up to date (see sync).
func (s *session) acquire(server string) (*backend.Conn, error) {
	if h := s.conns[server]; h != nil {
		// A connection the server closed while the session was idle
		// (wait_timeout, a restart) is replaced before anything is sent.
		if h.bc.Alive(backend.AliveCheckAfter) {
			return h.bc, nil
		}
		s.release(server)
	}
	tag := ""
	if s.settings.Multiplexing {
		tag = s.stateTag()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.AcquireTimeout)
	bc, err := s.backends.Acquire(ctx, server, s.account(), s.variant(), tag)
	cancel()
	if err != nil {
		return nil, err
	}
	bc.SetBeforeRead(s.flushClient)
	// A connection parked by a session in the same state (multiplexing)
	// needs no replay; any other gets the full state on first use.
	synced := notSynced
	if tag != "" && bc.StateTag() == tag && s.state.replayedVars() == 0 {
		synced = s.state.version
	}
	s.conns[server] = &heldConn{bc: bc, synced: synced}
	s.publishThreads()
	return bc, nil
}

// publishThreads lists the backend threads the session holds, for SHOW
// SESSIONS (a DBA matches them to PROCESSLIST rows).
func (s *session) publishThreads() {
	names := make([]string, 0, len(s.conns))
	for name := range s.conns {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", name, s.conns[name].bc.ThreadID())
	}
	storeIfChanged(&s.info.threads, b.String())
}

// flushClient is the backend connections' before-read hook: what is
// buffered for the client leaves before the proxy blocks on a server.
func (s *session) flushClient() { _ = s.client.flush() }

// sync replays the session state on the held connection to server if it
// is behind. An idle pooled connection may have died with its server
// (restart): then the idle ones are dropped and one fresh try is made.
func (s *session) sync(server string) error {
	for attempt := 0; ; attempt++ {
		h := s.conns[server]
		if h == nil {
			return fmt.Errorf("no connection to %s", server)
		}
		if h.synced == s.state.version {
			return nil
		}
		fresh := h.synced == notSynced
		err := s.applyState(h.bc)
		if err == nil {
			h.synced = s.state.version
			return nil
		}
		if _, isServerErr := backend.AsMyError(err); isServerErr {
			if fresh {
				s.release(server)
			}
			return err
		}
		h.bc.MarkBroken()
		s.release(server)
		if !fresh || attempt > 0 {
			return err
		}
		s.backends.CloseIdle(server)
		if _, err := s.acquire(server); err != nil {
			return err
		}
	}
}

// release gives one server's connection back to its pool (which resets
// it, or discards it when broken).
func (s *session) release(server string) {
	h := s.conns[server]
	if h == nil {
		return
	}
	delete(s.conns, server)
	h.bc.NoteSchema(s.state.db)
	h.bc.SetBeforeRead(nil)
	s.stmts.forgetConn(h.bc)
	s.backends.Return(h.bc)
	s.publishThreads()
}

// releaseAll gives back every connection (session end, reset, change
// user, a new topology).
func (s *session) releaseAll() {
	for name := range s.conns {
		s.release(name)
	}
}

// nameOf returns the server a held connection belongs to.
func (s *session) nameOf(bc *backend.Conn) string {
	for name, h := range s.conns {
		if h.bc == bc {
			return name
		}
	}
	return bc.BackendName()
}

func (s *session) account() backend.Account {
	return backend.Account{User: s.user.BackendUser, Password: s.user.BackendPassword.Value()}
}

func (s *session) variant() backend.Variant {
	return backend.Variant{
		FoundRows:      s.caps&mysql.CLIENT_FOUND_ROWS != 0,
		LocalInfile:    s.settings.LoadDataLocal && s.caps&mysql.CLIENT_LOCAL_FILES != 0,
		NoMultiResults: s.caps&mysql.CLIENT_MULTI_RESULTS == 0,
		NoSchema:       s.state.db == "",
	}
}
