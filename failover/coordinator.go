package failover

import "context"

// Ticket identifies a topology change recorded with a Coordinator.
type Ticket any

// Coordinator is what the engine needs when several Switchyard instances
// share one cluster (package coord implements it on etcd). A nil
// Coordinator means the engine runs alone.
type Coordinator interface {
	// Leader: this instance may start automatic changes.
	Leader() bool
	// Healthy: the coordination store answers; without it nothing is
	// promoted.
	Healthy() bool
	// Begin records a change from prevEpoch; it fails when another
	// instance changed or is changing the topology.
	Begin(ctx context.Context, kind, old, candidate string, prevEpoch uint64) (Ticket, error)
	// Commit publishes the new master; it returns the new epoch.
	Commit(ctx context.Context, t Ticket, master string) (uint64, error)
	// Abort forgets a change that did not happen.
	Abort(ctx context.Context, t Ticket)
	// ClearStale removes a change left by an instance that died during it,
	// so the leader can redo it from the servers' real state.
	ClearStale(ctx context.Context) (string, bool)
}
