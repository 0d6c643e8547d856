package backend

import "time"

// Health is what the monitor last saw of one server.
type Health struct {
	Up        bool
	CheckedAt time.Time
	Err       string
	// Failures counts consecutive failed checks.
	Failures int
	// Refused: the last check's connection was refused (nothing listens:
	// the server is down, not merely slow).
	Refused  bool
	ReadOnly bool
	ServerID uint32
	// Flavor is the server's family, learnt at its first check.
	Flavor Flavor
	// Replica is nil when the server replicates from nobody.
	Replica *ReplicaStatus
	// Applied is @@gtid_slave_pos (what a replica has applied); Current
	// is @@gtid_current_pos (applied or written here).
	Applied Position
	Current Position
	// Received is what a replica's IO thread fetched (its relay log may
	// hold more than it applied).
	Received Position
	// BehindFor estimates the lag (seconds) when the server reports none
	// (SQL thread stopped): time since the replica last had everything the
	// master had. -1 when unknown or not a replica.
	BehindFor int64
}

// ServerState is one server in a topology snapshot.
type ServerState struct {
	Server
	Health
	// Offline is set by the operator: no new statements are routed here.
	Offline bool
	// Note explains a state the failover engine put the server in (e.g.
	// "diverged: 0-1-57 not on the master"); empty when nothing to say.
	Note string
	// Diverged servers hold transactions the master never had: kept out
	// of routing and read-only until an operator deals with them.
	Diverged bool
}

// DisplayLag is LagSeconds, or the estimate when the server reports none
// (for operators; routing uses LagSeconds only).
func (s *ServerState) DisplayLag() int64 {
	if l := s.LagSeconds(); l >= 0 {
		return l
	}
	if s.Replica != nil {
		return s.BehindFor
	}
	return -1
}

// ApplyBacklog is how many transactions a replica received and has not
// applied yet: what a failover to it must wait for.
func (s *ServerState) ApplyBacklog() uint64 {
	if s.Replica == nil {
		return 0
	}
	known, applied := s.Received.Union(s.Applied).Total(), s.Applied.Total()
	if known <= applied {
		return 0
	}
	return known - applied
}

// LagSeconds returns the replication lag, or -1 when unknown (not a
// replica, SQL thread stopped, IO thread not connected).
func (s *ServerState) LagSeconds() int64 {
	if s.Replica == nil || s.Replica.SecondsBehind == nil {
		return -1
	}
	return *s.Replica.SecondsBehind
}

// Topology is an immutable snapshot: the master, the epoch (bumped on
// every change of master) and every server's state.
type Topology struct {
	// Cluster names the cluster this is a topology of.
	Cluster string
	Epoch   uint64
	Master  string
	Servers []ServerState
	// Holding pauses statements for the master (failover, switchover):
	// they wait for the next topology instead of failing. Statements of
	// open transactions still pass, unless HoldingTransactions is set too.
	Holding             bool
	HoldingTransactions bool
	// MasterUnreachable: the proxy cannot reach the master but replicas
	// still replicate from it, so no failover was done.
	MasterUnreachable bool
	// FailoverBlocked says why a dead master is not being replaced
	// (failover disabled, cooldown, no candidate, coordination lost …);
	// empty when nothing blocks a failover.
	FailoverBlocked string
}

// passes reports whether a statement may enter the master now; inTx: it
// belongs to an open transaction.
func (t *Topology) passes(inTx bool) bool {
	return !t.Holding || (inTx && !t.HoldingTransactions)
}

// Server returns the named server's state, or nil.
func (t *Topology) Server(name string) *ServerState { return t.server(name) }

func (t *Topology) server(name string) *ServerState {
	for i := range t.Servers {
		if t.Servers[i].Name == name {
			return &t.Servers[i]
		}
	}
	return nil
}

func (t *Topology) clone() *Topology {
	c := *t
	c.Servers = append([]ServerState(nil), t.Servers...)
	return &c
}
