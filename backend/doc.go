// Package backend owns connections to the MariaDB/MySQL servers.
//
//   - Conn: one authenticated connection with fixed, relay-friendly
//     capabilities (classic EOF framing, session tracking on), deadlines
//     on every round trip the proxy makes itself, and a read hook so a
//     session can flush its client before blocking on the server.
//   - Pool: per server and account; connections are reset with
//     COM_RESET_CONNECTION before reuse, never returned dirty; a janitor
//     goroutine closes idle and old connections.
//   - Cluster: the server list, pools, which server is the master, and a
//     topology epoch bumped on every change of master.
//   - flavor.go: the one seam for MariaDB/MySQL differences (replica
//     status statement and columns, GTID variables), tested with recorded
//     outputs in testdata/.
//   - discover.go: asks every server its role at start-up; an ambiguous
//     topology (two writable masters) is an error, never a guess.
//
// backend knows nothing of routing or failover: it connects, pools and
// reports. A Conn is used by one goroutine at a time (the session holding
// it); Pool and Cluster are safe for concurrent use.
package backend
