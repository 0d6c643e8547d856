// Package coord lets several Switchyard instances agree through etcd:
// leader election (only the leader's failover engine acts on its own),
// the topology (master and epoch) stored in etcd and changed only by
// compare-and-swap, a watch that retargets every instance, and an
// operation record so that a leader dying mid-failover leaves a state the
// next leader can redo. Without a coordination section none of this runs.
//
// Goroutines: one campaigns for leadership, one watches the topology, one
// checks etcd's health and refreshes this instance's registration. The
// failover engine calls Leader, Healthy, Begin, Commit and Abort.
package coord
