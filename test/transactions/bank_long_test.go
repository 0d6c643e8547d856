//go:build faults

package transactions_test

// bankChanges: make test-faults runs the bank test through 20 master
// changes of each kind (switchover, kill -9, monitor cut).
const bankChanges = 20
