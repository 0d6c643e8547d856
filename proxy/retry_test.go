package proxy

import (
	"errors"
	"testing"
)

// TestNextStep: the retry policy, case by case. Above all: a command that
// may have run is never run again, a transaction that cannot be kept is
// never continued, and every wait ends.
func TestNextStep(t *testing.T) {
	lost := errors.New("EOF")
	tests := []struct {
		name    string
		f       failure
		tries   int
		expired bool
		want    step
	}{
		{"master moved at the gate: decide again", failure{kind: masterMoved}, 0, false, stepRetry},
		{"master moved, deadline passed", failure{kind: masterMoved}, 0, true, stepFail},
		{"replica refuses the session's state: elsewhere", failure{kind: replicaRefused}, 0, false, stepAvoid},
		{"every replica refused: fail", failure{kind: replicaRefused}, maxAvoids, false, stepFail},
		{"master unreachable: wait", failure{kind: notSent, toMaster: true}, 5, false, stepWait},
		{"master unreachable past hold_timeout: fail", failure{kind: notSent, toMaster: true}, 1, true, stepFail},
		{"replica unreachable: elsewhere", failure{kind: notSent}, 0, false, stepAvoid},
		{"read lost in flight on a replica, nothing relayed: elsewhere", failure{kind: lostInFlight, harmless: true}, 0, false, stepAvoid},
		{"read lost in flight on the master: again", failure{kind: lostInFlight, harmless: true, toMaster: true}, 0, false, stepRetry},
		{"read lost twice: fail", failure{kind: lostInFlight, harmless: true, toMaster: true}, maxResends, false, stepFail},
		{"read lost after rows reached the client: fail", failure{kind: lostInFlight, harmless: true, relayed: true}, 0, false, stepFail},
		{"write lost in flight: fail, never twice", failure{kind: lostInFlight, toMaster: true}, 0, false, stepFail},
		{"write never sent: wait for the master", failure{kind: notSent, toMaster: true}, 0, false, stepWait},
		{"kept transaction, command never sent: replay", failure{kind: notSent, tx: txOpen, kept: true, toMaster: true}, 0, false, stepReplay},
		{"kept transaction, even while committing if never sent: replay", failure{kind: notSent, tx: txCommitting, kept: true}, 0, false, stepReplay},
		{"kept transaction, statement lost in flight: replay", failure{kind: lostInFlight, tx: txOpen, kept: true}, 0, false, stepReplay},
		{"kept transaction, lost after part of the reply: abort", failure{kind: lostInFlight, tx: txOpen, kept: true, relayed: true}, 0, false, stepAbortTx},
		{"kept transaction, COMMIT lost in flight: unknown", failure{kind: lostInFlight, tx: txCommitting, kept: true}, 0, false, stepUnknown},
		{"kept transaction, replayed too often: fail", failure{kind: lostInFlight, tx: txOpen, kept: true}, maxReplays, false, stepFail},
		{"kept transaction, deadline passed: fail", failure{kind: notSent, tx: txOpen, kept: true}, 0, true, stepFail},
		{"read-only transaction on a replica lost: fail", failure{kind: lostInFlight, tx: txOpen, harmless: true}, 0, false, stepFail},
		{"read-only transaction on a replica, not sent: fail", failure{kind: notSent, tx: txOpen}, 0, false, stepFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			f.err = lost
			if got := nextStep(&f, tt.tries, tt.expired); got != tt.want {
				t.Fatalf("nextStep = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestNextStepEnds: whatever keeps failing, a command stops retrying
// within its bounds (no failure sequence loops forever).
func TestNextStepEnds(t *testing.T) {
	for kind := notSent; kind <= masterMoved; kind++ {
		for _, toMaster := range []bool{false, true} {
			for _, tx := range []txPhase{txNone, txOpen, txCommitting} {
				f := failure{kind: kind, toMaster: toMaster, tx: tx, kept: tx != txNone, harmless: true, err: errors.New("x")}
				tries := 0
				for ; tries < 100; tries++ {
					s := nextStep(&f, tries, tries > 50)
					if s != stepRetry && s != stepAvoid && s != stepWait && s != stepReplay {
						break
					}
				}
				if tries == 100 {
					t.Errorf("kind %d toMaster %v tx %d: still retrying after 100 failures", kind, toMaster, tx)
				}
			}
		}
	}
}
