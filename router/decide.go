package router

import (
	"errors"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/switchyard/switchyard/backend"
)

// Policy is the routing configuration.
type Policy struct {
	// Split off: everything goes to the master.
	Split bool
	// ReadYourWrites: after a write, the session's reads must see it.
	ReadYourWrites bool
	// MaxLag excludes replicas lagging more (seconds).
	MaxLag time.Duration
	// ReplicaFallbackToMaster: with no usable replica, reads go to the
	// master (true) or fail (false).
	ReplicaFallbackToMaster bool
	// PerStatement picks a replica for every read; otherwise a session
	// keeps the replica it was given while that one stays usable (fewer
	// backend connections and server threads per session).
	PerStatement bool
}

// Decision says where one statement runs.
type Decision struct {
	// Target is the backend name.
	Target string
	// WaitGTID, when set, must be applied on Target (MASTER_GTID_WAIT)
	// before the statement, for read-your-writes; if the wait times out
	// the statement goes to Fallback instead.
	WaitGTID string
	Fallback string
	// Reason explains a master choice (for logs and SHOW SESSIONS).
	Reason string
}

// ErrNoReplica is returned when reads may not fall back to the master.
var ErrNoReplica = errors.New("no replica is available for this read (routing.no_replica: error)")

// ErrNoMaster is returned when no master is known.
var ErrNoMaster = errors.New("no writable master is available")

// Session is one client's routing memory for one cluster: the replica it
// reads from, replicas it avoids for a while, the temporary tables it
// created on that cluster's master, and its last write there
// (read-your-writes). It is owned by the session's goroutine; Decide reads
// it and Observe and CaughtUp update it. What the session itself owns
// (its transaction, its variables) reaches Decide through Context.
type Session struct {
	// tempTables created in this session on the master (lower-case names).
	tempTables map[string]bool
	// lastWrite is the GTID of the session's last committed write.
	lastWrite backend.GTID
	hasWrite  bool
	// caughtUp remembers which replicas are known to have lastWrite.
	caughtUp map[string]bool
	// avoid holds replicas that failed for this session, until a time.
	avoid map[string]time.Time
	// replica is the one this session reads from (Policy.PerStatement off).
	replica string
	rnd     *rand.Rand
}

// NewSession returns an empty routing memory.
func NewSession() *Session {
	return &Session{rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// Context is what Decide needs from the session beyond its routing
// memory; the session owns each of these and passes them in.
type Context struct {
	// TxOn is the server running the session's open transaction ("" when
	// none is open): everything goes there until it ends.
	TxOn string
	// LastTarget is where the previous statement ran (SHOW WARNINGS).
	LastTarget string
	// AutocommitOff: every statement opens or continues a transaction.
	AutocommitOff bool
	// ReadsOnMaster, when set, says why every read must run where the
	// session's writes ran (sql_auto_is_null: "WHERE id IS NULL" reads
	// the session's last insert id).
	ReadsOnMaster string
	// Route is a query rule's choice, RouteMaster or RouteReplica, and
	// Rule its name. A rule never overrides a transaction, session
	// state or read-your-writes: Decide says so in the reason instead.
	Route, Rule string
}

// The routes a query rule may ask for.
const (
	RouteMaster  = "master"
	RouteReplica = "replica"
)

// MasterAvailable reports whether the topology has a master that takes
// writes now: named, up, and not known to be unreplaceable.
func MasterAvailable(topo *backend.Topology) bool {
	if topo.Master == "" || topo.FailoverBlocked != "" {
		return false
	}
	m := topo.Server(topo.Master)
	return m != nil && m.Up
}

// Decide picks the backend for a statement of class c.
func Decide(c *Class, ctx Context, s *Session, topo *backend.Topology, p Policy) (Decision, error) {
	master := topo.Master
	toMaster := func(reason string) (Decision, error) {
		if master == "" {
			return Decision{}, ErrNoMaster
		}
		return Decision{Target: master, Reason: reason}, nil
	}
	// An open transaction stays where it started.
	if ctx.TxOn != "" {
		return Decision{Target: ctx.TxOn, Reason: "in transaction"}, nil
	}
	if c.Kind == KindLastBackend && ctx.LastTarget != "" {
		return Decision{Target: ctx.LastTarget, Reason: c.Reason}, nil
	}
	if ctx.Route == RouteMaster {
		return toMaster("rule " + ctx.Rule)
	}
	if !p.Split && ctx.Route != RouteReplica {
		return toMaster("read/write split off")
	}
	if reason := masterReason(c, ctx, s); reason != "" {
		if reason != readOnlyService || MasterAvailable(topo) {
			if ctx.Route == RouteReplica {
				reason += " (rule " + ctx.Rule + " cannot send it to a replica)"
			}
			return toMaster(reason)
		}
	}
	replica, err := s.pickReplica(topo, p)
	if err != nil {
		if p.ReplicaFallbackToMaster {
			return toMaster("no usable replica")
		}
		return Decision{}, err
	}
	d := Decision{Target: replica}
	if p.ReadYourWrites && s.hasWrite && !s.caughtUp[replica] {
		if st := topo.Server(replica); st == nil || !st.Applied.Contains(s.lastWrite) {
			d.WaitGTID, d.Fallback = s.lastWrite.String(), master
		}
	}
	return d, nil
}

// readOnlyService is the reason of statements that go to the master when
// there is one and may run on a replica while there is none: session
// settings (replayed on every connection anyway) and reads under
// autocommit off.
const readOnlyService = "session setting"

// masterReason says why a statement must go to the master ("" when a
// replica may serve it).
func masterReason(c *Class, ctx Context, s *Session) string {
	switch {
	case c.Hint == HintMaster:
		return "hint"
	case ctx.ReadsOnMaster != "":
		return ctx.ReadsOnMaster
	case ctx.AutocommitOff && c.Kind == KindRead:
		return readOnlyService
	case ctx.AutocommitOff:
		return "autocommit off"
	case c.Kind == KindBeginReadOnly:
		return "" // a read-only transaction runs on one replica, start to end
	case c.Kind == KindSession && !c.State.UserVars:
		return readOnlyService
	case c.Kind != KindRead:
		return nonEmpty(c.Reason, c.Kind.String())
	case s.readsTempTable(c):
		return "temporary table"
	}
	return ""
}

func (s *Session) readsTempTable(c *Class) bool {
	for _, t := range c.Tables {
		if s.tempTables[t] {
			return true
		}
	}
	return false
}

// Eligible reports whether a server may serve reads now: up, not offline,
// replicating (both threads) from someone, with known lag within MaxLag.
// While the master itself is down, a replica whose IO thread is only
// reconnecting still serves reads when it is among the most advanced:
// it has everything the master sent it, and the freshest data there is
// (a replica that missed what another received does not serve).
func Eligible(st *backend.ServerState, topo *backend.Topology, p Policy) bool {
	if !readable(st, topo) {
		return false
	}
	if m := topo.Server(topo.Master); m == nil || !m.Up {
		return mostAdvanced(st, topo)
	}
	if !st.Replica.IORunning {
		return false
	}
	lag := st.LagSeconds()
	return lag >= 0 && time.Duration(lag)*time.Second <= p.MaxLag
}

// readable: a replica that is up, online, applying, and may take reads.
func readable(st *backend.ServerState, topo *backend.Topology) bool {
	return st.Name != topo.Master && st.Up && !st.Offline && !st.Diverged && st.Replica != nil && st.Weight > 0 && st.Replica.SQLRunning
}

// mostAdvanced: no other readable replica applied something st lacks.
func mostAdvanced(st *backend.ServerState, topo *backend.Topology) bool {
	for i := range topo.Servers {
		o := &topo.Servers[i]
		if o.Name != st.Name && readable(o, topo) && !st.Applied.Covers(o.Applied) {
			return false
		}
	}
	return true
}

// pickReplica chooses among eligible replicas at random, in proportion
// to their weights.
func (s *Session) pickReplica(topo *backend.Topology, p Policy) (string, error) {
	var now time.Time // read only when a replica is avoided: clock readings cost
	if len(s.avoid) > 0 {
		now = time.Now()
	}
	if !p.PerStatement && s.replica != "" {
		if st := topo.Server(s.replica); st != nil && Eligible(st, topo, p) && !s.avoided(s.replica, now) {
			return s.replica, nil
		}
	}
	name, err := s.pickWeighted(topo, p, now)
	s.replica = name
	return name, err
}

// pickWeighted draws a usable replica, weighted.
func (s *Session) pickWeighted(topo *backend.Topology, p Policy, now time.Time) (string, error) {
	total := 0
	for i := range topo.Servers {
		st := &topo.Servers[i]
		if Eligible(st, topo, p) && !s.avoided(st.Name, now) {
			total += st.Weight
		}
	}
	if total == 0 {
		return "", ErrNoReplica
	}
	n := s.rnd.IntN(total)
	for i := range topo.Servers {
		st := &topo.Servers[i]
		if !Eligible(st, topo, p) || s.avoided(st.Name, now) {
			continue
		}
		if n < st.Weight {
			return st.Name, nil
		}
		n -= st.Weight
	}
	return "", ErrNoReplica
}

func (s *Session) avoided(name string, now time.Time) bool {
	until, ok := s.avoid[name]
	return ok && now.Before(until)
}

// Avoid keeps reads away from a replica that just failed this session
// (until the monitor has had time to notice).
func (s *Session) Avoid(name string, d time.Duration) {
	if s.avoid == nil {
		s.avoid = map[string]time.Time{}
	}
	s.avoid[name] = time.Now().Add(d)
}

// Outcome is what the proxy learned from running a statement.
type Outcome struct {
	Target string
	// OK: the statement succeeded (last packet OK/EOF, not ERR).
	OK bool
	// LastGTID is the GTID the server reported for a commit, if any.
	LastGTID string
}

// Observe updates the routing memory after a statement of class c ran.
func (s *Session) Observe(c *Class, o Outcome) {
	if o.OK {
		for _, t := range c.TempCreated {
			if s.tempTables == nil {
				s.tempTables = map[string]bool{}
			}
			s.tempTables[t] = true
		}
		for _, t := range c.TempDropped {
			delete(s.tempTables, t)
		}
	}
	if o.LastGTID != "" {
		if g, err := backend.ParseGTID(o.LastGTID); err == nil && (!s.hasWrite || g != s.lastWrite) {
			s.lastWrite, s.hasWrite = g, true
			s.caughtUp = nil
		}
	}
}

// TempTables lists the temporary tables the session created (sorted).
func (s *Session) TempTables() []string {
	out := make([]string, 0, len(s.tempTables))
	for t := range s.tempTables {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// HasTempTables reports whether the session created temporary tables.
func (s *Session) HasTempTables() bool { return len(s.tempTables) > 0 }

// DropTempTables forgets the temporary tables (their connection is gone,
// or the session was reset).
func (s *Session) DropTempTables() { s.tempTables = nil }

// LastWrite is the GTID of the session's last write ("" when none).
func (s *Session) LastWrite() string {
	if !s.hasWrite {
		return ""
	}
	return s.lastWrite.String()
}

// CaughtUp records that replica has applied the session's last write.
func (s *Session) CaughtUp(replica string) {
	if s.caughtUp == nil {
		s.caughtUp = map[string]bool{}
	}
	s.caughtUp[replica] = true
}

// Reset forgets everything (COM_RESET_CONNECTION, COM_CHANGE_USER).
// The last write is kept: it still must be visible to this client.
func (s *Session) Reset() {
	w, has := s.lastWrite, s.hasWrite
	*s = *NewSession()
	s.lastWrite, s.hasWrite = w, has
}
