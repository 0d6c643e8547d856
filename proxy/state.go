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

	"github.com/switchyard/switchyard/backend"
)

// sessionState is the one owner of what must be replayed on any backend
// connection the session uses: default database, character set, the
// session variables the server reported as changed (session tracking),
// and the multi-statement option.
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
	tag     cachedTag
	// derived is what statements read from the variables, worked out
	// once per change of them (setVar and dropVar clear it) instead of
	// by name on every statement.
	derived varFacts
}

type varFacts struct {
	valid         bool
	ansiQuotes    bool
	autocommitOff bool
	readsOnMaster string
	waitTimeout   time.Duration
	hasWait       bool // the session set wait_timeout (to waitTimeout)
}

// facts returns what statements read from the variables, working it out
// if they changed since.
func (st *sessionState) facts() *varFacts {
	d := &st.derived
	if d.valid {
		return d
	}
	*d = varFacts{valid: true}
	m := strings.ToUpper(st.varValue["sql_mode"])
	d.ansiQuotes = strings.Contains(m, "ANSI_QUOTES") || strings.Contains(m, "ANSI,") || m == "ANSI"
	if v, ok := st.varValue["autocommit"]; ok {
		d.autocommitOff = !isOn(v)
	}
	if v, ok := st.varValue["sql_auto_is_null"]; ok && isOn(v) {
		d.readsOnMaster = "sql_auto_is_null"
	}
	if v, ok := st.varValue["wait_timeout"]; ok {
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			d.waitTimeout, d.hasWait = time.Duration(n*float64(time.Second)), true
		}
	}
	return d
}

// cachedTag is the last tag and what it was computed from.
type cachedTag struct {
	value   string
	version uint64
	multi   bool
}

func (st *sessionState) has(name string) bool {
	_, ok := st.varValue[name]
	return ok
}

// moveVarLast sets a variable and makes it replay after the others.
func (st *sessionState) moveVarLast(name, value string) {
	st.dropVar(name)
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
	st.derived.valid = false
}

// dropVar forgets a session variable (it will not be replayed).
func (st *sessionState) dropVar(name string) {
	for i, n := range st.vars {
		if n == name {
			st.vars = append(st.vars[:i], st.vars[i+1:]...)
			break
		}
	}
	delete(st.varValue, name)
	st.derived.valid = false
	st.version++
}

// ansiQuotes reports whether the session's sql_mode makes "x" an
// identifier (it changes how statements parse).
func (st *sessionState) ansiQuotes() bool { return st.facts().ansiQuotes }

// autocommitOff: the session turned autocommit off, so every statement
// opens or continues a transaction.
func (st *sessionState) autocommitOff() bool { return st.facts().autocommitOff }

// readsOnMaster says why every read must run where the session's writes
// ran ("" when none): with sql_auto_is_null, "WHERE id IS NULL" reads the
// session's last insert id.
func (st *sessionState) readsOnMaster() string { return st.facts().readsOnMaster }

func isOn(v string) bool { return strings.EqualFold(v, "ON") || v == "1" }

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

// take applies the schema and variable changes a server reported;
// changed says whether anything differs from what the session had.
func (st *sessionState) take(changes []sessionChange) (changed bool) {
	for _, ch := range changes {
		switch {
		case ch.kind == mysql.SESSION_TRACK_SCHEMA:
			if st.db != ch.value {
				st.db, changed = ch.value, true
			}
		case st.varValue[ch.name] != ch.value || !st.has(ch.name):
			st.setVar(ch.name, ch.value)
			changed = true
		}
	}
	if changed {
		st.version++
	}
	return changed
}

// tagFor describes the state replayed on every connection the session
// uses. A parked connection with the same tag needs no replay.
func (st *sessionState) tagFor(multi bool) string {
	t := &st.tag
	if t.value == "" || t.version != st.version || t.multi != multi {
		m := "0"
		if multi {
			m = "1"
		}
		t.value = strconv.Itoa(int(st.collationID)) + "/" + m + "/" + st.db
		t.version, t.multi = st.version, multi
	}
	return t.value
}

// idleTimeout is how long the client may stay idle before the proxy
// closes its connection, as the server would: the session's wait_timeout,
// or def (the server's default) until it sets its own.
func (st *sessionState) idleTimeout(def time.Duration) time.Duration {
	if f := st.facts(); f.hasWait {
		return f.waitTimeout
	}
	return def
}

// namesSQL is the SET NAMES for the session's collation.
func (st *sessionState) namesSQL() string {
	cs, coll := "utf8mb4", ""
	if c, err := charset.GetCollationByID(int(st.collationID)); err == nil {
		cs, coll = c.CharsetName, c.Name
	}
	names := "SET NAMES " + cs
	if coll != "" && !strings.Contains(coll, "_0900_") { // MySQL 8 collations MariaDB lacks
		names += " COLLATE " + coll
	}
	return names
}

// apply brings a backend connection to the session's state: character
// set, every variable the session changed, the database (db: the
// session's as seen on the connection's cluster), and the
// multi-statement option. One SET round trip, plus USE if needed. When
// the combined SET fails, the variables are set one by one: a replica
// that refuses one cannot serve the session (replicaRefuses); on the
// master a refused one is dropped, and dropped lists it.
func (st *sessionState) apply(bc *backend.Conn, db string, multi, onReplica bool, timeout time.Duration) (dropped []string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	names := st.namesSQL()
	set := []string{names, bc.Flavor().TrackingSQL()}
	for _, name := range st.vars {
		if !notReplayed[name] {
			set = append(set, fmt.Sprintf("@@session.%s=%s", name, sqlValue(name, st.varValue[name])))
		}
	}
	if _, err := bc.Exec(ctx, strings.Join(set, ", ")); err != nil {
		if _, ok := backend.AsMyError(err); !ok || len(set) <= 2 {
			return nil, fmt.Errorf("restore session state on %s: %w", bc.BackendName(), err)
		}
		if dropped, err = st.applyOneByOne(ctx, bc, names, onReplica); err != nil {
			return nil, err
		}
	}
	if db != "" {
		if err := bc.UseDB(ctx, db); err != nil {
			return dropped, err
		}
	}
	// A pooled connection keeps the option its last user set.
	return dropped, bc.SetMultiStatements(ctx, multi)
}

// applyOneByOne sets the session's variables one at a time after the
// combined SET failed (see apply).
func (st *sessionState) applyOneByOne(ctx context.Context, bc *backend.Conn, names string, onReplica bool) ([]string, error) {
	if _, err := bc.Exec(ctx, names+", "+bc.Flavor().TrackingSQL()); err != nil {
		return nil, fmt.Errorf("restore session state on %s: %w", bc.BackendName(), err)
	}
	var dropped []string
	for _, name := range append([]string(nil), st.vars...) {
		if notReplayed[name] {
			continue
		}
		_, err := bc.Exec(ctx, fmt.Sprintf("SET @@session.%s=%s", name, sqlValue(name, st.varValue[name])))
		me, serverErr := backend.AsMyError(err)
		switch {
		case err == nil:
		case !serverErr:
			return nil, fmt.Errorf("restore session state on %s: %w", bc.BackendName(), err)
		case onReplica:
			return nil, replicaRefuses{fmt.Errorf("%s refuses the session's %s: %w", bc.BackendName(), name, err)}
		default:
			dropped = append(dropped, name+" ("+me.Message+")")
			st.dropVar(name)
		}
	}
	return dropped, nil
}

// replicaRefuses: a replica cannot take the session's state; the
// statement goes to another server (nothing was sent for it yet).
type replicaRefuses struct{ error }

func (e replicaRefuses) Unwrap() error { return e.error }

// learnCollation reads collation_connection after a character set change:
// MariaDB reports character_set_* but not the collation a SET NAMES …
// COLLATE chose, and replaying only the character sets would reset it.
func (st *sessionState) learnCollation(bc *backend.Conn, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := bc.Exec(ctx, "SELECT @@collation_connection")
	if err != nil || r.Resultset == nil || len(r.Values) == 0 {
		return false
	}
	st.moveVarLast("collation_connection", string(r.Values[0][0].AsString()))
	return true
}

// learnTracking follows a client that set its own session tracking: its
// wish is read back (it filters what the client sees) and the proxy's own
// tracking is restored on the connection.
func (st *sessionState) learnTracking(bc *backend.Conn, timeout time.Duration) (clientTracking, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := bc.Exec(ctx, "SELECT @@session.session_track_system_variables, @@session.session_track_schema")
	if err != nil {
		return clientTracking{}, err
	}
	var t clientTracking
	if r.Resultset != nil && len(r.Values) == 1 {
		t = newClientTracking(string(r.Values[0][0].AsString()), r.Values[0][1].String())
	}
	_, err = bc.Exec(ctx, "SET "+bc.Flavor().TrackingSQL())
	return t, err
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
