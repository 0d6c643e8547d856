// Package backend owns connections to the MariaDB/MySQL servers and the
// state of each cluster.
//
//   - Cluster (cluster.go): one master–replica cluster, one owner per
//     piece of its state:
//   - TopologyStore (topology_store.go): the Topology snapshot — master,
//     epoch, each server's health, offline marks, holds, why a failover
//     is blocked — swapped atomically; writers serialise on its mutex.
//   - WriteGate (gate.go): statements for the master enter and leave it; a
//     failover or switchover holds it and counts open transactions.
//   - Pools (pools.go): a Pool per server and backend account, made on
//     first use; a reload reconfigures what new connections dial with.
//   - RouteCounters (counters.go): statements routed to and running on
//     each server.
//   - Conn (conn.go): one authenticated connection with fixed,
//     relay-friendly capabilities (classic EOF framing, session tracking
//     on), deadlines on every round trip the proxy makes itself, and a
//     read hook so a session can flush its client before blocking.
//   - Pool (pool.go): per server and account; connections are reset with
//     COM_RESET_CONNECTION before reuse, never returned dirty; a janitor
//     goroutine closes idle and old connections.
//   - Monitor (monitor.go): one goroutine per server checks it every
//     interval (or at once, CheckNow, on evidence from a session) and
//     publishes its health into the topology.
//   - flavor.go: the one seam for MariaDB/MySQL differences (replica
//     status statement and columns, GTID variables, fencing), tested with
//     recorded outputs in testdata/; gtid.go: positions of both families.
//   - discover.go: asks every server its role at start-up; an ambiguous
//     topology (two writable masters) is an error, never a guess.
//
// backend knows nothing of routing or failover: it connects, pools and
// reports. A Conn is used by one goroutine at a time (the session holding
// it); every other type here is safe for concurrent use.
package backend
