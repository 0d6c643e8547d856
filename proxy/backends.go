package proxy

import (
	"context"
	"time"

	"github.com/switchyard/switchyard/backend"
)

// Backends is what a session needs of the cluster: the topology snapshot,
// the write gate in front of the master, a wait for the next topology,
// and connections. backend.Cluster implements it; tests use a fake whose
// connections are scripted servers.
type Backends interface {
	// Topology is the current snapshot (never nil, never modified).
	Topology() *backend.Topology
	// EnterMaster waits (up to timeout) while writes are held for a
	// topology change and counts a statement in flight on the master
	// until LeaveMaster. bypass lets an open transaction's statements in.
	EnterMaster(timeout time.Duration, bypass bool) (master string, epoch uint64, err error)
	LeaveMaster()
	// WaitChange waits (bounded by ctx) for a topology with another epoch.
	WaitChange(ctx context.Context, epoch uint64) (*backend.Topology, error)
	// Acquire takes a connection to server, preferring one parked with tag.
	Acquire(ctx context.Context, server string, a backend.Account, v backend.Variant, tag string) (*backend.Conn, error)
	// Return gives a connection back (reset, or closed when broken).
	Return(bc *backend.Conn)
	// Park gives a connection back without a reset (multiplexing).
	Park(bc *backend.Conn, tag string)
	// CloseIdle drops the idle connections to a server.
	CloseIdle(server string)
	// Begin counts a statement running on server until End.
	Begin(server string) *backend.StatementCount
	// TxOpened and TxClosed count transactions open on the master (a
	// switchover lets them finish before it fences the master).
	TxOpened()
	TxClosed()
}

var _ Backends = (*backend.Cluster)(nil)
