package proxy

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/charset"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// heldConn is a backend connection a session holds for its lifetime (one
// per server it has used) and the version of session state applied on it.
type heldConn struct {
	bc     *backend.Conn
	pool   *backend.Pool
	synced uint64
}

// connTo returns the session's connection to a server, opening one if
// needed, brought up to date with the session's state (database,
// character set, variables).
func (s *session) connTo(server string) (*backend.Conn, error) {
	bc, err := s.acquire(server)
	if err != nil {
		return nil, err
	}
	return bc, s.sync(server)
}

// acquire returns the held connection to server or takes one from the
// pool, without bringing it up to date (see sync).
func (s *session) acquire(server string) (*backend.Conn, error) {
	h := s.conns[server]
	if h != nil && h.bc.Broken() {
		s.release(server)
		h = nil
	}
	if h != nil {
		return h.bc, nil
	}
	pool, err := s.srv.cluster.Pool(server, s.account())
	if err != nil {
		return nil, err
	}
	tag := ""
	if s.settings.Multiplexing {
		tag = s.stateTag()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.AcquireTimeout)
	bc, err := pool.AcquireTagged(ctx, s.variant(), tag)
	cancel()
	if err != nil {
		return nil, err
	}
	bc.SetBeforeRead(s.flushClient)
	// synced = ^0 forces a full state sync on first use; a connection
	// parked by a session in the same state (multiplexing) needs none.
	synced := ^uint64(0)
	if tag != "" && bc.StateTag() == tag && s.state.replayedVars() == 0 {
		synced = s.stateVersion
	}
	s.conns[server] = &heldConn{bc: bc, pool: pool, synced: synced}
	return bc, nil
}

// sync replays the session state on the held connection to server if it
// is behind. An idle pooled connection may have died with its server
// (restart): then the idle ones are dropped and one fresh try is made.
func (s *session) sync(server string) error {
	for attempt := 0; ; attempt++ {
		h := s.conns[server]
		if h == nil {
			return fmt.Errorf("no connection to %s", server)
		}
		if h.synced == s.stateVersion {
			return nil
		}
		fresh := h.synced == ^uint64(0)
		err := s.applyState(h.bc)
		if err == nil {
			h.synced = s.stateVersion
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
		h.pool.CloseIdle()
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
	h.bc.SetBeforeRead(nil)
	s.stmts.forgetConn(h.bc)
	h.pool.Release(h.bc)
}

// releaseAll gives back every connection (session end, reset, change user).
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
		FoundRows:   s.caps&mysql.CLIENT_FOUND_ROWS != 0,
		LocalInfile: s.settings.LoadDataLocal && s.caps&mysql.CLIENT_LOCAL_FILES != 0,
	}
}

// notReplayed are variables the server reports but that cannot or must
// not be set on another connection.
var notReplayed = map[string]bool{
	"last_gtid": true, "session_track_system_variables": true, "in_transaction": true,
	"gtid_seq_no": true, "insert_id": true, "last_insert_id": true, "identity": true,
	"pseudo_thread_id": true, "rand_seed1": true, "rand_seed2": true,
	"warning_count": true, "error_count": true,
}

// applyState brings a backend connection to the session's state:
// character set, every variable the session changed, the database, and
// the multi-statement option. One SET round trip, plus USE if needed.
func (s *session) applyState(bc *backend.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.IOTimeout)
	defer cancel()
	cs, coll := "utf8mb4", ""
	if c, err := charset.GetCollationByID(int(s.state.collationID)); err == nil {
		cs, coll = c.CharsetName, c.Name
	}
	names := "SET NAMES " + cs
	if coll != "" && !strings.Contains(coll, "_0900_") { // MySQL 8 collations MariaDB lacks
		names += " COLLATE " + coll
	}
	set := []string{names, "session_track_system_variables='*'"}
	for _, name := range s.state.vars {
		if notReplayed[name] {
			continue
		}
		set = append(set, fmt.Sprintf("@@session.%s=%s", name, sqlValue(name, s.state.varValue[name])))
	}
	if _, err := bc.Exec(ctx, strings.Join(set, ", ")); err != nil {
		if me, ok := backend.AsMyError(err); ok && len(set) > 2 {
			// A variable we cannot replay must not break the session:
			// log it, stop replaying it, keep the rest.
			s.log.Warn("cannot replay session variables; continuing without them", zap.String("error", me.Message))
			s.state.vars = nil
			if _, err := bc.Exec(ctx, names+", session_track_system_variables='*'"); err != nil {
				return fmt.Errorf("restore session state on %s: %w", bc.BackendName(), err)
			}
		} else {
			return fmt.Errorf("restore session state on %s: %w", bc.BackendName(), err)
		}
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

// sqlValue renders a tracked value for SET: numbers bare, NULL for an
// empty character_set_results, everything else as a quoted string.
func sqlValue(name, v string) string {
	if v == "" && name == "character_set_results" {
		return "NULL"
	}
	if v != "" && strings.Trim(v, "0123456789") == "" {
		return v
	}
	return "'" + escapeSQL(v) + "'"
}

func escapeSQL(v string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)
}
