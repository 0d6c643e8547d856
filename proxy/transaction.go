package proxy

import (
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/router"
)

// A transaction is never split across master changes.
//
// While a transaction is open on the master, the session keeps its
// statements and a checksum of each reply the client received. When the
// connection carrying it is lost — a failover or switchover, a connection
// cut by the monitor, a backend killed — before anything that may commit
// it was sent, the transaction is replayed on the (new) master: the same
// statements in order, every reply compared with what the client got. All
// equal: the session goes on as if nothing happened. Otherwise — a reply
// differs, an error, a transaction too large to keep, or a COMMIT whose
// outcome is unknown — the transaction is aborted: the connection is
// reset (rolled back) and every statement fails with a class 40 error
// until the client sends ROLLBACK (or resets, or reconnects). COMMIT never
// returns OK for a transaction that did not commit as a whole.

// txPhase is where the session's transaction stands:
//
//	none ──(server reports in-transaction)──▶ open
//	open ──(a statement that may end it is sent)──▶ committing
//	committing ──(reply: still in transaction)──▶ open
//	open, committing ──(reply: not in transaction)──▶ none
//	open, committing ──(lost and not replayable)──▶ aborted
//	aborted ──(ROLLBACK, reset)──▶ none
type txPhase uint8

const (
	txNone txPhase = iota
	txOpen
	txCommitting
	txAborted
)

// transaction is the one owner of the session's transaction state: the
// router reads where it runs (server), the multiplexer whether one is
// open, the write gate counts it while it is kept.
type transaction struct {
	phase txPhase
	on    string       // server it runs on
	view  *clusterView // its cluster
	// kept: it runs on the master, is counted at the write gate and its
	// statements are logged for replay (a read-only transaction on a
	// replica is not: losing it is an error).
	kept  bool
	epoch uint64 // topology epoch it runs in
	log   []txEntry
	size  int
	// arena holds the logged statements' bytes; it and log keep their
	// memory from one transaction to the next (no allocation per
	// statement once a session has run a transaction).
	arena []byte
	// unreplayable says why it cannot be replayed ("" when it can).
	unreplayable string
	// lost says why the connection carrying it is gone ("" while it lives).
	lost string
	// aborted is what every statement gets in phase aborted.
	aborted *mysql.MyError
}

// txEntry is one statement of a transaction and the checksum of the
// reply the client got.
type txEntry struct {
	cmd   []byte        // COM_QUERY or COM_STMT_EXECUTE as the client sent it
	stmt  *preparedStmt // for COM_STMT_EXECUTE
	types []byte        // parameter types in force when it ran (executes that omit them)
	sum   uint64
}

// open reports whether a transaction is open (or committing).
func (t *transaction) open() bool { return t.phase == txOpen || t.phase == txCommitting }

// server is where the open transaction runs ("" when none is open).
func (t *transaction) server() string {
	if t.open() {
		return t.on
	}
	return ""
}

// begin opens a transaction the server reported on server of v.
func (t *transaction) begin(server string, v *clusterView, kept bool) {
	*t = transaction{phase: txOpen, on: server, view: v, kept: kept, epoch: v.epoch, log: t.log[:0], arena: t.arena[:0]}
	if kept {
		v.b.Gate.TxOpened()
	}
}

// sending notes a statement about to run in the open transaction: one
// that may end it (COMMIT, DDL, anything but plain DML) makes the phase
// committing, so losing its connection means an unknown outcome.
func (t *transaction) sending(c *command) {
	if t.phase == txOpen && c.runs() && !c.class.DML {
		t.phase = txCommitting
	}
}

// settle follows a reply: the server's in-transaction flag ends the
// transaction or keeps it open.
func (t *transaction) settle(inTx bool) {
	switch {
	case !t.open():
	case !inTx:
		t.end()
	default:
		t.phase = txOpen
	}
}

// follow takes in a command that ran on server of v (toMaster: the
// cluster's master) and the server's in-transaction flag after it: the
// transaction opens, is recorded, or ends.
func (t *transaction) follow(c *command, r *reply, inTx bool, server string, v *clusterView, toMaster bool, maxSize int) {
	if inTx && !t.open() && r.statusSeen {
		t.begin(server, v, toMaster)
	}
	t.settle(inTx)
	if t.open() {
		t.record(c, r, maxSize)
	}
}

// record appends a statement to the log, or marks the transaction
// unreplayable.
func (t *transaction) record(c *command, r *reply, maxSize int) {
	switch {
	case !t.kept || t.unreplayable != "" || c.reply == replyPrepare:
		return // preparing changes nothing in the transaction
	case r.sum == nil:
		t.unreplayable = "a statement ran without being recorded"
	case r.unreplayable != "":
		t.unreplayable = r.unreplayable
	case c.reply == replyRows:
		t.unreplayable = "a cursor was read (COM_STMT_FETCH)"
	case c.stmt != nil && len(c.payload) > 5 && c.payload[5] != 0:
		t.unreplayable = "a statement opened a cursor"
	case t.size+len(c.payload) > maxSize:
		t.unreplayable = fmt.Sprintf("larger than routing.transaction_replay.max_size (%d bytes)", maxSize)
	}
	if t.unreplayable != "" {
		t.forget()
		return
	}
	e := txEntry{cmd: t.keep(c.payload), stmt: c.stmt, sum: r.sum.Sum64()}
	if c.stmt != nil {
		e.types = t.keep(c.stmt.paramTypes)
	}
	t.log = append(t.log, e)
	t.size += len(e.cmd)
}

// keep copies b into the arena. A copy stays valid when the arena grows
// (it keeps pointing at the old array) until the transaction ends.
func (t *transaction) keep(b []byte) []byte {
	start := len(t.arena)
	t.arena = append(t.arena, b...)
	return t.arena[start:len(t.arena):len(t.arena)]
}

// maxKeptArena and maxKeptLog bound the log memory a session keeps
// between transactions (an OLTP transaction fits; thousands of sessions
// each keeping a big one's would not).
const (
	maxKeptArena = 16 << 10
	maxKeptLog   = 256
)

// lose records why the transaction's connection is gone (the first
// reason is kept).
func (t *transaction) lose(why string) {
	if t.open() && t.lost == "" {
		t.lost = why
	}
}

// moved records a successful replay: the transaction runs on server now.
func (t *transaction) moved(server string, epoch uint64) {
	t.on, t.lost, t.epoch, t.phase = server, "", epoch, txOpen
}

// end forgets the transaction (committed, rolled back, or its connection
// reset); an aborted one is over too.
func (t *transaction) end() {
	if t.open() && t.kept {
		t.view.b.Gate.TxClosed()
	}
	t.forget()
	log, arena := t.log, t.arena
	*t = transaction{}
	if cap(arena) <= maxKeptArena && cap(log) <= maxKeptLog {
		t.log, t.arena = log, arena
	}
}

// forget empties the log, keeping its memory for the next transaction.
func (t *transaction) forget() {
	clear(t.log) // no statement stays reachable from a finished log
	t.log, t.arena, t.size = t.log[:0], t.arena[:0], 0
}

// abort ends the transaction as one the proxy could not keep: every
// statement gets err until ROLLBACK.
func (t *transaction) abort(err *mysql.MyError) {
	t.end()
	t.phase, t.aborted = txAborted, err
}

// answerAborted answers a statement of an aborted transaction: ROLLBACK
// ends it (the client gets OK), anything else gets the abort's error.
// handled is false outside phase aborted and for commands that are not
// statements.
func (t *transaction) answerAborted(c *command) (handled, rollback bool, err error) {
	if t.phase != txAborted || !c.runs() {
		return false, false, nil
	}
	if c.class.Rollback {
		*t = transaction{}
		return true, true, nil
	}
	return true, false, t.aborted
}

// recording reports whether a command's reply must be checksummed: it
// runs on the master inside a transaction, or may open one there.
func (t *transaction) recording(c *command, toMaster, replay, autocommitOff bool) bool {
	if !toMaster || !replay {
		return false
	}
	return t.open() || autocommitOff || c.class.Kind == router.KindBegin
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
