package proxy

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/charset"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// sessionState is what must be replayed on any backend connection the
// session uses: default database, character set and the session
// variables the server reported as changed (session tracking).
type sessionState struct {
	db          string
	collationID uint8
	// vars holds session variables in the order first seen.
	vars     []string
	varValue map[string]string
	multiOff bool // client turned multi-statements off (COM_SET_OPTION)
	// version counts changes; each held connection records the version
	// it was brought to.
	version uint64
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

// replayedVars counts session variables the session changed that are
// replayed on its connections (connection-bound ones are not).
func (st *sessionState) replayedVars() int {
	n := 0
	for _, name := range st.vars {
		if !notReplayed[name] {
			n++
		}
	}
	return n
}

// notReplayed are variables the server reports but that cannot or must
// not be set on another connection.
var notReplayed = map[string]bool{
	"last_gtid": true, "session_track_system_variables": true, "session_track_schema": true, "session_track_gtids": true, "in_transaction": true,
	"gtid_seq_no": true, "insert_id": true, "last_insert_id": true, "identity": true,
	"pseudo_thread_id": true, "rand_seed1": true, "rand_seed2": true, "statement_id": true, // MySQL reports statement_id, read-only
	"warning_count": true, "error_count": true,
}

// sessionChange is one entry of an OK packet's session-state block.
type sessionChange struct {
	kind  byte // mysql.SESSION_TRACK_*
	name  string
	value string
}

// noteSessionState reads an OK packet's session-state block into r:
// schema and variable changes, autocommit, and the GTID of a commit.
func (r *reply) noteSessionState(block []byte) {
	for _, ch := range parseSessionState(block) {
		switch {
		case ch.kind == mysql.SESSION_TRACK_SCHEMA:
			r.changes = append(r.changes, ch)
		case ch.name == "last_gtid", ch.kind == mysql.SESSION_TRACK_GTIDS:
			r.gtid = ch.value
		case ch.kind == mysql.SESSION_TRACK_SYSTEM_VARIABLES:
			if strings.HasPrefix(ch.name, "character_set_") {
				r.charsetChanged = true
			}
			if ch.name == "autocommit" {
				on := strings.EqualFold(ch.value, "ON") || ch.value == "1"
				r.autocommit = &on
			}
			r.changes = append(r.changes, ch)
		}
	}
}

// applyReply takes in what a reply from target said about the session:
// status flags, and changes of schema or variables (target's connection
// has them already).
func (s *session) applyReply(target string, r *reply) {
	if r.statusSeen {
		s.status = r.status
	}
	s.mux.noteReply(r)
	changed := false
	for _, ch := range r.changes {
		switch ch.kind {
		case mysql.SESSION_TRACK_SCHEMA:
			if s.state.db != ch.value {
				s.state.db, changed = ch.value, true
			}
		default:
			if s.state.varValue[ch.name] != ch.value || !s.state.has(ch.name) {
				s.state.setVar(ch.name, ch.value)
				changed = true
			}
			if ch.name == "sql_auto_is_null" {
				// "WHERE id IS NULL" then reads the session's last insert id.
				s.route.ReadsOnMaster = ""
				if strings.EqualFold(ch.value, "ON") || ch.value == "1" {
					s.route.ReadsOnMaster = "sql_auto_is_null"
				}
			}
		}
	}
	if changed {
		s.stateChanged(target)
	}
}

// stateChanged bumps the state version; target's connection reported
// the change, so it already has it.
func (s *session) stateChanged(target string) {
	s.state.version++
	if h := s.conns[target]; h != nil {
		h.synced = s.state.version
	}
}

// learnCollation reads collation_connection after a character set change:
// MariaDB reports character_set_* but not the collation a SET NAMES …
// COLLATE chose, and replaying only the character sets would reset it.
func (s *session) learnCollation(target string, bc *backend.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.IOTimeout)
	defer cancel()
	r, err := bc.Exec(ctx, "SELECT @@collation_connection")
	if err != nil || r.Resultset == nil || len(r.Values) == 0 {
		return
	}
	s.state.moveVarLast("collation_connection", string(r.Values[0][0].AsString()))
	s.stateChanged(target)
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
	set := []string{names, bc.Flavor().TrackingSQL()}
	for _, name := range s.state.vars {
		if notReplayed[name] {
			continue
		}
		set = append(set, fmt.Sprintf("@@session.%s=%s", name, sqlValue(name, s.state.varValue[name])))
	}
	if _, err := bc.Exec(ctx, strings.Join(set, ", ")); err != nil {
		if _, ok := backend.AsMyError(err); !ok || len(set) <= 2 {
			return fmt.Errorf("restore session state on %s: %w", bc.BackendName(), err)
		}
		if err := s.applyVarsOneByOne(ctx, bc, names); err != nil {
			return err
		}
	}
	if s.state.db != "" {
		if err := bc.UseDB(ctx, s.state.db); err != nil {
			return err
		}
	}
	// A pooled connection keeps the option its last user set.
	return bc.SetMultiStatements(ctx, s.wantsMultiStatements())
}

// learnTracking follows a client that set its own session tracking: its
// wish is read back (it filters what the client sees) and the proxy's own
// tracking is restored on the connection.
func (s *session) learnTracking(bc *backend.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.IOTimeout)
	defer cancel()
	r, err := bc.Exec(ctx, "SELECT @@session.session_track_system_variables, @@session.session_track_schema")
	if err != nil {
		return err
	}
	if r.Resultset != nil && len(r.Values) == 1 {
		s.track = newClientTracking(string(r.Values[0][0].AsString()), r.Values[0][1].String())
	}
	_, err = bc.Exec(ctx, "SET "+bc.Flavor().TrackingSQL())
	return err
}

// serverDefaults are the servers' defaults a session starts from.
type serverDefaults struct {
	tracking                        clientTracking
	waitTimeout, interactiveTimeout time.Duration
}

// defaults reads the servers' defaults once per proxy, from the first
// master connection (the values below until it answers).
func (srv *Server) defaults(bc *backend.Conn, timeout time.Duration) serverDefaults {
	if d := srv.serverDefaults.Load(); d != nil {
		return *d
	}
	d := serverDefaults{tracking: newClientTracking("autocommit,character_set_client,character_set_connection,character_set_results,time_zone", "ON"),
		waitTimeout: 8 * time.Hour, interactiveTimeout: 8 * time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := bc.Exec(ctx, "SELECT @@global.session_track_system_variables, @@global.session_track_schema, @@global.wait_timeout, @@global.interactive_timeout")
	if err == nil && r.Resultset != nil && len(r.Values) == 1 {
		v := r.Values[0]
		d.tracking = newClientTracking(string(v[0].AsString()), v[1].String())
		d.waitTimeout, d.interactiveTimeout = time.Duration(v[2].AsInt64())*time.Second, time.Duration(v[3].AsInt64())*time.Second
		srv.serverDefaults.Store(&d)
	}
	return d
}

// idleTimeout is how long the client may stay idle before the proxy
// closes its connection, as the server would: the session's wait_timeout,
// or for an interactive client interactive_timeout, until it sets its own.
func (s *session) idleTimeout() time.Duration {
	if v, ok := s.state.varValue["wait_timeout"]; ok {
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			return time.Duration(n * float64(time.Second))
		}
	}
	return s.idleDefault
}

// applyVarsOneByOne sets the session's variables one at a time after
// the combined SET failed. A replica that refuses one (a time zone, a
// plugin, a setting the master has and it lacks) cannot serve this
// session: replicaRefuses sends the statement elsewhere, the master
// accepted them all. On the master, a variable it refuses (another
// version, a privilege: after a master change) is dropped alone, and the
// statement at hand is told which (errStateLost), never the others
// dropped silently.
func (s *session) applyVarsOneByOne(ctx context.Context, bc *backend.Conn, names string) error {
	if _, err := bc.Exec(ctx, names+", "+bc.Flavor().TrackingSQL()); err != nil {
		return fmt.Errorf("restore session state on %s: %w", bc.BackendName(), err)
	}
	onReplica := s.nameOf(bc) != s.backends.Topology().Master
	var failed []string
	for _, name := range append([]string(nil), s.state.vars...) {
		if notReplayed[name] {
			continue
		}
		_, err := bc.Exec(ctx, fmt.Sprintf("SET @@session.%s=%s", name, sqlValue(name, s.state.varValue[name])))
		me, serverErr := backend.AsMyError(err)
		switch {
		case err == nil:
		case !serverErr:
			return fmt.Errorf("restore session state on %s: %w", bc.BackendName(), err)
		case onReplica:
			return replicaRefuses{fmt.Errorf("%s refuses the session's %s: %w", bc.BackendName(), name, err)}
		default:
			failed = append(failed, name+" ("+me.Message+")")
			s.state.dropVar(name)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	s.log.Warn("session variables could not be set on a new connection", zap.Strings("dropped", failed))
	return errStateLost("the session variables " + strings.Join(failed, ", ") + " could not be set on " + bc.BackendName())
}

// replicaRefuses: a replica cannot take the session's state; the
// statement goes to another server (nothing was sent for it yet).
type replicaRefuses struct{ error }

func (e replicaRefuses) Unwrap() error { return e.error }

// dropVar forgets a session variable (it will not be replayed).
func (st *sessionState) dropVar(name string) {
	for i, n := range st.vars {
		if n == name {
			st.vars = append(st.vars[:i], st.vars[i+1:]...)
			break
		}
	}
	delete(st.varValue, name)
	st.version++
}

// wantsMultiStatements: the client negotiated multi-statements and has
// not turned them off.
func (s *session) wantsMultiStatements() bool {
	return !s.state.multiOff && s.caps&mysql.CLIENT_MULTI_STATEMENTS != 0
}

// sqlValue renders a tracked value for SET: numbers bare (a quoted one
// is refused by numeric variables such as timestamp), NULL for an empty
// character_set_results, everything else as a quoted string.
func sqlValue(name, v string) string {
	if v == "" && name == "character_set_results" {
		return "NULL"
	}
	if number.MatchString(v) {
		return v
	}
	return "'" + escapeSQL(v) + "'"
}

var number = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

func escapeSQL(v string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)
}
