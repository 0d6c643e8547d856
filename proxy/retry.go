package proxy

// The retry policy: one place decides what a failure to place or run a
// command becomes — run it again, send it elsewhere, wait for a master,
// replay the transaction first, or tell the client. Every wait of one
// command is bounded by one deadline (hold_timeout, taken when the
// command arrived), and every retry by a count, so a command never loops.

// failureKind names what happened to a command.
type failureKind uint8

const (
	// notSent: nothing reached a server (connecting failed, or the
	// command's write failed: a server runs only complete packets).
	notSent failureKind = iota
	// lostInFlight: the command was sent and its connection died before
	// the reply was complete.
	lostInFlight
	// replicaRefused: a replica cannot take the session's state
	// (a time zone, a setting it lacks); nothing was sent.
	replicaRefused
	// masterMoved: the master changed while the command waited at the
	// write gate.
	masterMoved
)

// failure is a command that did not run (or did not finish) on server,
// with what the policy weighs.
type failure struct {
	kind   failureKind
	server string
	err    error
	// epoch is the topology epoch the command was placed in.
	epoch    uint64
	toMaster bool
	// relayed: some of the reply reached the client.
	relayed bool
	// harmless: running the command twice is the same as running it once.
	harmless bool
	// tx is the transaction's phase when the command was sent, kept
	// whether it was one the proxy keeps for replay.
	tx   txPhase
	kept bool
}

func (f *failure) Error() string {
	switch f.kind {
	case masterMoved:
		return "the master changed"
	case replicaRefused:
		return f.err.Error()
	}
	return "the connection to " + f.server + " was lost (" + shortErr(f.err) + ")"
}

func (f *failure) Unwrap() error { return f.err }

// step is what the policy decides.
type step uint8

const (
	stepRetry   step = iota // decide again and run: nothing happened the client could see
	stepAvoid               // keep away from the server (a replica) and decide again
	stepWait                // wait for the master (its return or a new one), then decide again
	stepReplay              // replay the transaction on the master first, then run the command
	stepAbortTx             // the transaction cannot be kept: roll it back, tell the client
	stepUnknown             // the transaction may have committed: tell the client so
	stepFail                // tell the client the command failed
)

// Bounds on retries of one command.
const (
	// maxResends: a command lost in flight is sent again at most this
	// often (each time its connection died under it).
	maxResends = 2
	// maxReplays: a transaction is replayed at most this often for one
	// command.
	maxReplays = 3
	// maxAvoids: replicas avoided for one command before it fails (each
	// refusing or unreachable replica is avoided in turn, then the policy
	// for "no replica" sends reads to the master).
	maxAvoids = 8
)

// nextStep is the retry policy. tries counts the failures of this command
// so far (this one excluded); expired: its deadline has passed.
func nextStep(f *failure, tries int, expired bool) step {
	inTx := f.tx == txOpen || f.tx == txCommitting
	switch {
	case f.kind == masterMoved:
		return onlyBefore(!expired, stepRetry)
	case f.kind == replicaRefused:
		return onlyBefore(tries < maxAvoids, stepAvoid)
	case inTx && !f.kept:
		// A read-only transaction on a replica is not kept: it is gone.
		return stepFail
	case inTx && f.kind == notSent:
		return onlyBefore(tries < maxReplays && !expired, stepReplay)
	case inTx && f.relayed:
		return stepAbortTx
	case inTx && f.tx == txCommitting:
		return stepUnknown
	case inTx:
		return onlyBefore(tries < maxReplays && !expired, stepReplay)
	case f.kind == lostInFlight && (f.relayed || !f.harmless):
		return stepFail // it may have run: never twice
	case f.kind == lostInFlight && !f.toMaster:
		return onlyBefore(tries < maxResends, stepAvoid)
	case f.kind == lostInFlight:
		return onlyBefore(tries < maxResends, stepRetry)
	case f.toMaster:
		return onlyBefore(!expired, stepWait)
	}
	return onlyBefore(tries < maxAvoids, stepAvoid)
}

// onlyBefore is s while ok holds, else stepFail.
func onlyBefore(ok bool, s step) step {
	if ok {
		return s
	}
	return stepFail
}
