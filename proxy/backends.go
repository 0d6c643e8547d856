package proxy

import (
	"context"
	"time"

	"github.com/switchyard/switchyard/backend"
)

// Backends is one cluster as a session uses it, one interface per owner
// of its state. Cluster builds it from a backend.Cluster; tests give
// fakes whose connections are scripted servers.
type Backends struct {
	Name  string
	Topo  Topology
	Gate  Gate
	Conns Connections
	Count Counters
	// Suspect, when set, is told that a connection to a server was
	// refused: evidence for the monitor to check that server now.
	Suspect func(server string)
}

// Topology is the cluster's topology: the current snapshot (never nil,
// never modified) and a wait for the next epoch.
type Topology interface {
	Topology() *backend.Topology
	WaitChange(ctx context.Context, epoch uint64) (*backend.Topology, error)
}

// Gate is the write gate in front of the master.
type Gate interface {
	// Enter waits (up to timeout) while writes are held for a topology
	// change and counts a statement in flight on the master until Leave.
	// inTx lets an open transaction's statements through a hold that
	// does not cover transactions.
	Enter(deadline time.Time, inTx bool) (master string, epoch uint64, err error)
	Leave()
	// TxOpened and TxClosed count transactions open on the master (a
	// switchover lets them finish before it fences the master).
	TxOpened()
	TxClosed()
}

// Connections are the cluster's pools.
type Connections interface {
	// Acquire takes a connection to server, preferring one parked with tag.
	Acquire(ctx context.Context, server string, a backend.Account, v backend.Variant, tag string) (*backend.Conn, error)
	// Return gives a connection back (reset, or closed when broken).
	Return(bc *backend.Conn)
	// Park gives a connection back without a reset (multiplexing).
	Park(bc *backend.Conn, tag string)
	// CloseIdle drops the idle connections to a server.
	CloseIdle(server string)
}

// Counters count statements per server.
type Counters interface {
	// Begin counts a statement running on server until End.
	Begin(server string) *backend.StatementCount
}

// Cluster is a backend.Cluster as sessions use it; suspect may be nil.
func Cluster(c *backend.Cluster, suspect func(server string)) *Backends {
	return &Backends{Name: c.Name, Topo: c.Topo, Gate: c.Gate, Conns: c.Pools, Count: c.Counters, Suspect: suspect}
}

// topology is the current snapshot.
func (b *Backends) topology() *backend.Topology { return b.Topo.Topology() }

// suspect passes on evidence that server refused a connection.
func (b *Backends) suspect(server string) {
	if b.Suspect != nil {
		b.Suspect(server)
	}
}
