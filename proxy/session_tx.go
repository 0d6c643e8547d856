package proxy

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/router"
)

// Transactions across master changes: a transaction is never split.
//
// While a transaction is open on the master, the session keeps its
// statements and a checksum of each reply the client received (txState).
// When the connection carrying it is lost — a failover or switchover, a
// connection cut by the monitor, a backend killed — before a COMMIT was
// sent, the transaction is replayed on the (new) master: the same
// statements in order, every reply compared with what the client got. All
// equal: the session goes on as if nothing happened. Otherwise — a reply
// differs, an error, a transaction too large to keep, or a COMMIT whose
// outcome is unknown — the transaction is aborted: the connection is
// reset (rolled back) and every statement fails with a class 40 error
// until the client sends ROLLBACK (or resets, or reconnects). COMMIT never
// returns OK for a transaction that did not commit as a whole.

// txState is the transaction the session has open on the master.
type txState struct {
	open  bool   // counted open at the write gate (Backends.TxOpened)
	on    string // server it runs on
	epoch uint64 // topology epoch it runs in
	log   []txEntry
	size  int
	// unreplayable says why the transaction cannot be replayed ("" when
	// it can).
	unreplayable string
	// lost says why the connection carrying it is gone ("" while it
	// lives).
	lost string
}

// txEntry is one statement of a transaction and the checksum of the
// reply the client got.
type txEntry struct {
	cmd   []byte        // COM_QUERY or COM_STMT_EXECUTE as the client sent it
	stmt  *preparedStmt // for COM_STMT_EXECUTE
	types []byte        // parameter types in force when it ran (executes that omit them)
	sum   uint64
}

// errTxLost: the transaction's connection was lost while the command was
// in flight, before any of its reply reached the client; the transaction
// is replayed and the command run again.
var errTxLost = errors.New("transaction's connection lost")

// maxTxRetries bounds how often one command replays its transaction.
const maxTxRetries = 3

// txRecording reports whether a command's reply must be checksummed: it
// runs inside a transaction on the master, or may open one there.
func (s *session) txRecording(c *command, target string) bool {
	if target != s.backends.Topology().Master || !s.settings.TxReplay.Enabled {
		return false
	}
	return s.tx.open || s.route.AutocommitOff || c.class.Kind == router.KindBegin
}

// noteTx follows the transaction after a command ran on target: it opens
// (counted at the write gate), grows by one statement, or ends.
func (s *session) noteTx(c *command, target string, r *reply) {
	if s.status&mysql.SERVER_STATUS_IN_TRANS == 0 {
		if s.tx.open {
			s.endTx()
		}
		return
	}
	if target != s.backends.Topology().Master {
		return // a read-only transaction on a replica is not kept
	}
	if !s.tx.open {
		s.tx = txState{open: true, on: target, epoch: s.epoch}
		s.backends.TxOpened()
		s.info.inTx.Store(true)
	}
	if c.reply == replyPrepare {
		return // preparing changes nothing in the transaction
	}
	s.logTx(c, r)
}

// logTx appends a statement to the transaction's log, or marks the
// transaction unreplayable.
func (s *session) logTx(c *command, r *reply) {
	t := &s.tx
	switch {
	case t.unreplayable != "":
		return
	case r.sum == nil:
		t.unreplayable = "a statement ran without being recorded"
	case r.unreplayable != "":
		t.unreplayable = r.unreplayable
	case c.reply == replyRows:
		t.unreplayable = "a cursor was read (COM_STMT_FETCH)"
	case c.stmt != nil && len(c.payload) > 5 && c.payload[5] != 0:
		t.unreplayable = "a statement opened a cursor"
	case t.size+len(c.payload) > s.settings.TxReplay.MaxSize:
		t.unreplayable = fmt.Sprintf("larger than routing.transaction_replay.max_size (%d bytes)", s.settings.TxReplay.MaxSize)
	}
	if t.unreplayable != "" {
		t.log, t.size = nil, 0
		return
	}
	e := txEntry{cmd: append([]byte(nil), c.payload...), stmt: c.stmt, sum: r.sum.Sum64()}
	if c.stmt != nil {
		e.types = append([]byte(nil), c.stmt.paramTypes...)
	}
	t.log = append(t.log, e)
	t.size += len(e.cmd)
}

// endTx forgets a transaction that ended (committed or rolled back).
func (s *session) endTx() {
	if s.tx.open {
		s.backends.TxClosed()
	}
	s.tx = txState{}
}

// checkTx runs before each statement: a transaction whose connection is
// gone is replayed first, and an aborted one answers for the statement.
// handled: the statement was answered (err says how).
func (s *session) checkTx(c *command) (handled bool, err error) {
	s.followEpoch()
	if s.aborted != nil && (c.payload[0] == mysql.COM_QUERY || c.payload[0] == mysql.COM_STMT_EXECUTE) {
		if c.class.Rollback {
			s.aborted = nil
			return true, s.writeOKStatus()
		}
		return true, s.aborted
	}
	if !s.tx.open {
		return false, nil
	}
	if s.tx.lost == "" && s.txConnGone() {
		s.tx.lost = "the connection to " + s.tx.on + " was lost"
	}
	if s.tx.lost == "" {
		return false, nil
	}
	if c.class.Rollback {
		s.dropTx() // nothing left to roll back: its connection is gone
		return true, s.writeOKStatus()
	}
	switch {
	case !s.settings.TxReplay.Enabled:
		return true, s.abortTx(s.tx.lost + " (transaction replay is off)")
	case s.tx.unreplayable != "":
		return true, s.abortTx(s.tx.lost + ", and the transaction cannot be replayed: " + s.tx.unreplayable)
	}
	if err := s.replayTx(); err != nil {
		s.srv.stats.TxReplayFailed.Add(1)
		return true, s.abortTx(err.Error())
	}
	return false, nil
}

// replayTx runs the transaction's statements again on the master, with
// what the client received compared reply by reply.
func (s *session) replayTx() error {
	why := s.tx.lost
	s.release(s.tx.on) // a connection still alive is reset: its part rolls back
	master, bc, err := s.enterMasterForReplay()
	if err != nil {
		return fmt.Errorf("%s, and %v", why, err)
	}
	defer s.backends.LeaveMaster()
	for i, e := range s.tx.log {
		sum, err := s.replayEntry(bc, e)
		switch {
		case err != nil:
			return fmt.Errorf("%s; replaying statement %d on %s failed: %v", why, i+1, master, err)
		case sum != e.sum:
			return fmt.Errorf("%s; statement %d gave another result on %s than the client received", why, i+1, master)
		}
	}
	s.tx.on, s.tx.lost, s.tx.epoch = master, "", s.epoch
	s.route.TxOn = master
	s.srv.stats.TxReplayed.Add(1)
	s.srv.noteTxOutcome(s.epoch, true)
	s.log.Info("transaction replayed after its connection was lost", zap.String("why", why),
		zap.String("master", master), zap.Int("statements", len(s.tx.log)))
	return nil
}

// enterMasterForReplay passes the write gate as a new transaction would
// (waiting while a failover or switchover holds writes) and connects to
// the master, waiting up to hold_timeout for it to come back or for a new
// one; the caller owes a LeaveMaster.
func (s *session) enterMasterForReplay() (string, *backend.Conn, error) {
	deadline := time.Now().Add(s.srv.holdTimeout())
	for {
		s.followEpoch()
		epoch := s.backends.Topology().Epoch
		master, _, err := s.backends.EnterMaster(time.Until(deadline), false)
		if err != nil {
			return "", nil, fmt.Errorf("no master came: %v", err)
		}
		bc, err := s.connTo(master)
		if err == nil {
			return master, bc, nil
		}
		s.backends.LeaveMaster()
		if _, serverErr := backend.AsMyError(err); serverErr || !s.retryMaster(epoch, deadline) {
			return "", nil, fmt.Errorf("%s cannot be reached: %v", master, err)
		}
	}
}

// replayEntry runs one logged statement on bc, relaying to nobody, and
// returns the checksum of its reply.
func (s *session) replayEntry(bc *backend.Conn, e txEntry) (uint64, error) {
	cmd := e.cmd
	if e.stmt != nil {
		id, err := s.prepareOn(bc, e.stmt)
		if err != nil {
			return 0, err
		}
		saved := e.stmt.paramTypes
		e.stmt.paramTypes = e.types
		cmd, err = e.stmt.bindPacket(e.cmd, id)
		e.stmt.paramTypes = saved
		if err != nil {
			return 0, err
		}
	}
	if err := s.send(bc, cmd); err != nil {
		return 0, err
	}
	r := s.newReply()
	r.discard = true
	s.checksummed(r)
	if err := s.relayResult(bc, r); err != nil {
		return 0, err
	}
	return r.sum.Sum64(), nil
}

// lostInTx decides what a command lost in flight inside a transaction
// becomes: replayed and run again (errTxLost), when nothing of its reply
// reached the client and it cannot have committed; otherwise the
// transaction is aborted and the client told.
func (s *session) lostInTx(c *command, r *reply, why string) error {
	s.tx.lost = why
	switch {
	case r.sent:
		return s.abortTx(why + " while its result was being sent")
	case !c.class.DML:
		// COMMIT, DDL, BEGIN … may have committed: the outcome is unknown.
		s.dropTx()
		s.aborted = errTxAborted("the connection was lost during a statement that may have committed it: its outcome is unknown")
		s.srv.stats.TxAborted.Add(1)
		s.srv.noteTxOutcome(s.epoch, false)
		s.log.Warn("transaction outcome unknown: connection lost during a committing statement", zap.String("why", why))
		return errCommitUnknown(why)
	}
	return errTxLost
}

// abortTx ends a transaction that could not be kept: its connection is
// reset (rolled back), and the session refuses statements until ROLLBACK.
// It returns the error for the statement at hand.
func (s *session) abortTx(why string) error {
	s.dropTx()
	s.aborted = errTxAborted(why)
	s.srv.stats.TxAborted.Add(1)
	s.srv.noteTxOutcome(s.epoch, false)
	s.log.Warn("transaction rolled back by the proxy", zap.String("why", why))
	return s.aborted
}

// dropTx forgets the transaction and rolls back what is left of it (its
// connection, if still held, is reset by the pool).
func (s *session) dropTx() {
	on := s.tx.on
	s.endTx()
	s.release(on)
	s.connectionLost()
}

// TxReplay configures transaction replay.
type TxReplay struct {
	Enabled bool
	MaxSize int // bytes of statements kept per transaction
}

// errTxAborted is what a statement gets in a transaction the proxy could
// not keep: a deadlock's code and SQLSTATE (1213, 40001), so the retry
// logic applications already have for deadlocks restarts the transaction.
func errTxAborted(why string) *mysql.MyError {
	return &mysql.MyError{Code: mysql.ER_LOCK_DEADLOCK, State: "40001",
		Message: "Switchyard: transaction rolled back: " + shortText(why) + "; send ROLLBACK, then retry the transaction"}
}

// errCommitUnknown: the connection was lost while a statement that may
// commit was running; nobody can say whether it did.
func errCommitUnknown(why string) *mysql.MyError {
	return &mysql.MyError{Code: erConnectionKilled, State: "08S01",
		Message: "Switchyard: " + shortText(why) + " during a statement that may have committed the transaction: its outcome is unknown"}
}
