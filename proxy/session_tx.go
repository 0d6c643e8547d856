package proxy

import (
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// checkTx runs before each statement: an aborted transaction answers for
// it, and a kept transaction whose connection is gone is replayed first
// (or aborted when it cannot be). handled: the statement was answered
// (err says how).
func (s *session) checkTx(c *command, v *clusterView, deadline time.Time) (handled bool, err error) {
	if handled, rollback, err := s.tx.answerAborted(c); handled {
		if rollback {
			return true, s.writeOKStatus()
		}
		return true, err
	}
	if !s.tx.open() {
		return false, nil
	}
	s.followEpoch(v)
	if h := s.conns.get(s.tx.on); s.tx.lost == "" && (h == nil || !h.bc.Alive(s.cmd.now, backend.AliveCheckAfter)) {
		if !s.tx.kept {
			// A read-only transaction on a replica is not kept: it died
			// with its connection.
			on := s.tx.on
			s.dropConn(on)
			return true, errBackendLost(on, fmt.Errorf("the connection carrying the read-only transaction closed"))
		}
		s.tx.lose("the connection to " + s.tx.on + " was lost")
	}
	if s.tx.lost == "" {
		return false, nil
	}
	if c.class.Rollback {
		s.conns.release(s.tx.on) // nothing left to roll back: its connection is gone
		s.tx.end()
		s.status &^= mysql.SERVER_STATUS_IN_TRANS
		return true, s.writeOKStatus()
	}
	set := v.settings(s.cmd.set)
	switch {
	case !set.TxReplay.Enabled:
		return true, s.abortTx(s.tx.lost + " (transaction replay is off)")
	case s.tx.unreplayable != "":
		return true, s.abortTx(s.tx.lost + ", and the transaction cannot be replayed: " + s.tx.unreplayable)
	}
	if err := s.replayTx(v, deadline); err != nil {
		s.srv.stats.TxReplayFailed.Add(1)
		return true, s.abortTx(err.Error())
	}
	return false, nil
}

// abortTx ends a transaction that could not be kept: its connection is
// reset (rolled back), and the session refuses statements until ROLLBACK.
// It returns the error for the statement at hand.
func (s *session) abortTx(why string) error {
	v := s.tx.view
	s.conns.release(s.tx.on)
	s.tx.abort(errTxAborted(why))
	s.status &^= mysql.SERVER_STATUS_IN_TRANS
	s.info.inTx.Store(false)
	s.srv.stats.TxAborted.Add(1)
	if v != nil {
		s.srv.noteTxOutcome(v.b.Name, v.epoch, false)
	}
	s.log.Warn("transaction rolled back by the proxy", zap.String("why", why))
	return s.tx.aborted
}

// replayTx runs the transaction's statements again on the master, with
// what the client received compared reply by reply.
func (s *session) replayTx(v *clusterView, deadline time.Time) error {
	why := s.tx.lost
	s.conns.release(s.tx.on) // a connection still alive is reset: its part rolls back
	master, bc, err := s.enterMasterForReplay(v, deadline)
	if err != nil {
		return fmt.Errorf("%s, and %v", why, err)
	}
	defer v.b.Gate.Leave()
	for i, e := range s.tx.log {
		sum, err := s.relay.replay(bc, e, v.settings(s.cmd.set).IOTimeout)
		if err == nil && sum == e.sum {
			continue
		}
		// What the replay did so far rolls back with its connection
		// (reset by the pool), or the next BEGIN would commit it.
		s.conns.release(master)
		if err != nil {
			return fmt.Errorf("%s; replaying statement %d on %s failed: %v", why, i+1, master, err)
		}
		return fmt.Errorf("%s; statement %d gave another result on %s than the client received", why, i+1, master)
	}
	s.tx.moved(master, v.epoch)
	s.srv.stats.TxReplayed.Add(1)
	s.srv.noteTxOutcome(v.b.Name, v.epoch, true)
	s.log.Info("transaction replayed after its connection was lost", zap.String("why", why),
		zap.String("master", master), zap.Int("statements", len(s.tx.log)))
	return nil
}

// enterMasterForReplay passes the write gate as a new transaction would
// (waiting while a failover or switchover holds writes) and connects to
// the master, waiting until deadline for it to come back or for a new
// one; the caller owes a Gate.Leave.
func (s *session) enterMasterForReplay(v *clusterView, deadline time.Time) (string, *backend.Conn, error) {
	for {
		s.followEpoch(v)
		epoch := v.b.topology().Epoch
		master, _, err := v.b.Gate.Enter(deadline, false)
		if err != nil {
			return "", nil, fmt.Errorf("no master came: %v", err)
		}
		// The gate may have let us in after a master change: the replay
		// runs in the epoch it entered, on a connection of that epoch.
		s.followEpoch(v)
		bc, err := s.connTo(v, master)
		if err == nil {
			return master, bc, nil
		}
		v.b.Gate.Leave()
		if isRefused(err) {
			v.b.suspect(master)
		}
		if _, serverErr := backend.AsMyError(err); serverErr || time.Now().After(deadline) {
			return "", nil, fmt.Errorf("%s cannot be reached: %v", master, err)
		}
		waitForChange(v, epoch, deadline)
	}
}
