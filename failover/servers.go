package failover

import (
	"context"
	"time"

	"github.com/switchyard/switchyard/backend"
)

// Servers is what the engine needs to change the servers' roles, one
// server (by address) at a time. The Actuator does it with SQL; tests use
// a fake that records the order of the calls and fails on cue.
type Servers interface {
	// Inspect reads a server's replication state now.
	Inspect(ctx context.Context, addr string) (Replica, error)
	// Fence makes a server refuse writes; kill also ends its client
	// connections (their transactions roll back).
	Fence(ctx context.Context, addr string, kill bool) error
	// Unfence makes a fenced master writable again (an aborted change).
	Unfence(ctx context.Context, addr string) error
	// WaitApplied waits until the server has applied pos.
	WaitApplied(ctx context.Context, addr string, pos backend.Position, timeout time.Duration) error
	// Promote turns a replica into a writable master with no source.
	Promote(ctx context.Context, addr string) error
	// Detach stops a replica's replication (keeping its master and
	// position) so that Follow can repoint it at once.
	Detach(ctx context.Context, addr string) error
	// Follow makes a server a read-only replica of master and starts
	// replication, without waiting for it to run (Verify). former: the
	// server was a master, so its own transactions are part of its
	// position.
	Follow(ctx context.Context, addr, master string, former bool) error
	// Verify waits (up to limit) until both replication threads run.
	Verify(ctx context.Context, addr string, limit time.Duration) error
}

var _ Servers = (*Actuator)(nil)
