//go:build !faults

package transactions_test

// bankChanges is how many master changes of each kind (switchover, kill
// -9, monitor cut) the bank test goes through in make test.
const bankChanges = 2
