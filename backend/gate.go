package backend

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// WriteGate stands in front of a cluster's master: every statement for
// the master enters it and leaves it, so a failover or switchover can hold
// new statements (they wait for the next master instead of failing),
// wait for those running, and count the transactions still open. The hold
// itself is published in the topology (Holding), so waiters and operators
// see it; the counters are the gate's own.
type WriteGate struct {
	topo     *TopologyStore
	inflight atomic.Int64 // statements running on the master
	openTx   atomic.Int64 // transactions open through the gate
}

// NewWriteGate puts a gate in front of topo's master.
func NewWriteGate(topo *TopologyStore) *WriteGate { return &WriteGate{topo: topo} }

// Enter is called before a statement runs on the master: it waits (until
// deadline) while writes are held, and counts the statement as in flight
// until Leave. inTx lets statements of an open transaction through a hold
// that does not cover transactions (holding them would only make their
// transaction fail later). The common case (nothing held) allocates
// nothing.
func (g *WriteGate) Enter(deadline time.Time, inTx bool) (master string, epoch uint64, err error) {
	var expired <-chan time.Time
	var timeout time.Duration
	for {
		changed := g.topo.Changed()
		t := g.topo.Topology()
		if t.passes(inTx) {
			g.inflight.Add(1)
			if t2 := g.topo.Topology(); t2 != t && !t2.passes(inTx) {
				g.inflight.Add(-1)
				continue
			}
			return t.Master, t.Epoch, nil
		}
		if expired == nil {
			timeout = max(time.Until(deadline), 0)
			timer := time.NewTimer(timeout)
			defer timer.Stop()
			expired = timer.C
		}
		select {
		case <-changed:
		case <-expired:
			return "", t.Epoch, fmt.Errorf("writes held for a topology change: waited %s", timeout)
		}
	}
}

// Leave ends what a successful Enter began.
func (g *WriteGate) Leave() { g.inflight.Add(-1) }

// Hold pauses new statements for the master and waits (bounded by ctx)
// for those already running to finish. Release or a new master ends it.
func (g *WriteGate) Hold(ctx context.Context) error {
	g.topo.setHolding(true, g.topo.Topology().HoldingTransactions)
	return g.waitIdle(ctx)
}

// HoldTransactions extends a hold to the statements of open
// transactions, and waits (bounded by ctx) for those running to finish.
func (g *WriteGate) HoldTransactions(ctx context.Context) error {
	g.topo.setHolding(true, true)
	return g.waitIdle(ctx)
}

func (g *WriteGate) waitIdle(ctx context.Context) error {
	for g.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d statement(s) still running on the master: %w", g.inflight.Load(), ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// Release ends a hold without changing the master.
func (g *WriteGate) Release() { g.topo.setHolding(false, false) }

// TxOpened and TxClosed count the transactions open on the master (the
// sessions report them), so a switchover can let them finish first.
func (g *WriteGate) TxOpened() { g.openTx.Add(1) }

// TxClosed: see TxOpened.
func (g *WriteGate) TxClosed() { g.openTx.Add(-1) }

// OpenTransactions returns how many transactions are open on the master.
func (g *WriteGate) OpenTransactions() int { return int(g.openTx.Load()) }

// DrainTransactions waits (bounded by ctx) until no transaction is open
// on the master, while a hold keeps new ones from starting; it returns
// how many are still open.
func (g *WriteGate) DrainTransactions(ctx context.Context) int {
	for g.openTx.Load() > 0 {
		select {
		case <-ctx.Done():
			return int(g.openTx.Load())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return 0
}
