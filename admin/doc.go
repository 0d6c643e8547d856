// Package admin is the admin SQL port: a MySQL-protocol listener (go-mysql
// server, results buffered — they are small) for its own single account,
// answering SHOW BACKENDS/SESSIONS/QUERY STATS/FAILOVERS/STATUS/CONFIG/
// VERSION/CLUSTER, SWITCHOVER, FAILOVER, SET BACKEND … OFFLINE|ONLINE,
// RELOAD CONFIG and HELP. Commands are regular expressions in a table
// (admin.go); what they report comes from Sources, which cmd wires to the
// proxy, the cluster, the failover engine and the coordinator, so this
// package imports neither proxy nor cmd. One goroutine per admin client.
package admin
