package router

import (
	"errors"
	"math/rand/v2"
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

// Session is the per-client routing state. It is owned by the session's
// goroutine; Decide reads it and Observe updates it after each statement.
type Session struct {
	// InTx mirrors the server's in-transaction status flag.
	InTx bool
	// AutocommitOff: every statement opens or continues a transaction.
	AutocommitOff bool
	// ReadOnlyTxOn is the replica serving a START TRANSACTION READ ONLY.
	ReadOnlyTxOn string
	// TxOn is where the open transaction runs.
	TxOn string
	// ReadsOnMaster, when set, says why every read of the session must
	// run where its writes ran (e.g. sql_auto_is_null: "WHERE id IS NULL"
	// reads the session's last insert id).
	ReadsOnMaster string
	// TempTables created in this session (lower-case names).
	TempTables map[string]bool
	// LastTarget is where the previous statement ran.
	LastTarget string
	// LastWrite is the GTID of the session's last committed write.
	LastWrite backend.GTID
	hasWrite  bool
	// caughtUp remembers which replicas are known to have LastWrite.
	caughtUp map[string]bool
	// avoid holds replicas that failed for this session, until a time.
	avoid map[string]time.Time
	// replica is the one this session reads from (Policy.PerStatement off).
	replica string
	rnd     *rand.Rand
}

// NewSession returns an empty routing state.
func NewSession() *Session {
	return &Session{rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// Decide picks the backend for a statement of class c.
func Decide(c Class, s *Session, topo *backend.Topology, p Policy) (Decision, error) {
	master := topo.Master
	toMaster := func(reason string) (Decision, error) {
		if master == "" {
			return Decision{}, ErrNoMaster
		}
		return Decision{Target: master, Reason: reason}, nil
	}
	// An open transaction stays where it started.
	if s.InTx && s.TxOn != "" {
		return Decision{Target: s.TxOn, Reason: "in transaction"}, nil
	}
	if c.Kind == KindLastBackend && s.LastTarget != "" {
		return Decision{Target: s.LastTarget, Reason: c.Reason}, nil
	}
	if !p.Split {
		return toMaster("read/write split off")
	}
	switch {
	case c.Hint == HintMaster:
		return toMaster("hint")
	case s.ReadsOnMaster != "":
		return toMaster(s.ReadsOnMaster)
	case s.AutocommitOff:
		return toMaster("autocommit off")
	case c.Kind == KindBeginReadOnly:
		// A read-only transaction runs on one replica, start to end.
	case c.Kind != KindRead:
		return toMaster(nonEmpty(c.Reason, c.Kind.String()))
	case s.readsTempTable(c):
		return toMaster("temporary table")
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
		if st := topo.Server(replica); st == nil || !st.Applied.Contains(s.LastWrite) {
			d.WaitGTID, d.Fallback = s.LastWrite.String(), master
		}
	}
	return d, nil
}

func (s *Session) readsTempTable(c Class) bool {
	for _, t := range c.Tables {
		if s.TempTables[t] {
			return true
		}
	}
	return false
}

// Eligible reports whether a server may serve reads now: up, not offline,
// replicating (both threads) from someone, with known lag within MaxLag.
// While the master itself is down, a replica whose IO thread is only
// reconnecting still serves reads: it has everything the master sent, and
// it is the freshest data there is.
func Eligible(st *backend.ServerState, topo *backend.Topology, p Policy) bool {
	if st.Name == topo.Master || !st.Up || st.Offline || st.Diverged || st.Replica == nil || st.Weight <= 0 {
		return false
	}
	if !st.Replica.SQLRunning {
		return false
	}
	if m := topo.Server(topo.Master); m == nil || !m.Up {
		return true
	}
	if !st.Replica.IORunning {
		return false
	}
	lag := st.LagSeconds()
	return lag >= 0 && time.Duration(lag)*time.Second <= p.MaxLag
}

// pickReplica chooses among eligible replicas at random, in proportion
// to their weights.
func (s *Session) pickReplica(topo *backend.Topology, p Policy) (string, error) {
	now := time.Now()
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
	// InTx is the server's in-transaction flag after the statement.
	InTx bool
	// LastGTID is the GTID the server reported for a commit, if any.
	LastGTID string
	// Autocommit as tracked by the server, when it changed (nil: same).
	Autocommit *bool
}

// Observe updates the session after a statement of class c ran.
func (s *Session) Observe(c Class, o Outcome) {
	s.LastTarget = o.Target
	if o.Autocommit != nil {
		s.AutocommitOff = !*o.Autocommit
	}
	if o.OK {
		for _, t := range c.TempCreated {
			if s.TempTables == nil {
				s.TempTables = map[string]bool{}
			}
			s.TempTables[t] = true
		}
		for _, t := range c.TempDropped {
			delete(s.TempTables, t)
		}
	}
	if o.LastGTID != "" {
		if g, err := backend.ParseGTID(o.LastGTID); err == nil && (!s.hasWrite || g != s.LastWrite) {
			s.LastWrite, s.hasWrite = g, true
			s.caughtUp = nil
		}
	}
	s.InTx = o.InTx
	switch {
	case o.InTx && s.TxOn == "":
		s.TxOn = o.Target
	case !o.InTx:
		s.TxOn = ""
	}
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
	w, has := s.LastWrite, s.hasWrite
	*s = *NewSession()
	s.LastWrite, s.hasWrite = w, has
}
