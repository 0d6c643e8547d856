// Package rules decides what the operator's query rules do to a
// statement: route it, block it, cache its result, time it out, bound
// the lag of the replica that serves it, log it.
//
// A Set is compiled once from the config (conf.Rule) and is immutable:
// a change (a reload, the admin port, etcd) compiles a new Set and swaps
// it in whole. Match is a pure function of the Set and the statement (no
// socket, no clock); the only shared state is each rule's counters, which
// sessions update with atomics. Rules never decide what the proxy
// guarantees: the session and router.Decide apply a rule's route only
// where a transaction, read-your-writes and session state allow it.
package rules
