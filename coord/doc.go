// Package coord lets several Switchyard instances agree through etcd:
// leader election (only the leader's failover engine acts on its own),
// the topology (master and epoch) stored in etcd and changed only by
// compare-and-swap, a watch that retargets every instance, and an
// operation record so that a leader dying mid-failover leaves a state the
// next leader can redo. Without a coordination section none of this runs.
//
// Coordinator is the process's connection to etcd and its registration;
// each cluster joins with its own Cluster coordinator: its own election
// (one leader per cluster, possibly different instances), topology key
// and operation record. The default cluster keeps the keys used before
// clusters existed (<prefix>/topology, /election, /operation); cluster c
// uses <prefix>/clusters/c/….
//
// Beside the topology, etcd carries what every instance must share: the
// runtime configuration layer (<prefix>/config/runtime, compare-and-swap,
// runtime.go) and result-cache invalidations (<prefix>/cache/invalidate,
// invalidate.go).
//
// Goroutines: one checks etcd's health and refreshes this instance's
// registration; one publishes cache invalidations; per cluster, one
// campaigns for leadership and one watches the topology; WatchRuntime and
// WatchInvalidations add one watch each. A cluster's failover engine
// calls Leader, Healthy, Begin, Commit and Abort.
package coord
