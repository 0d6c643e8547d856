// Package admin is the admin SQL port: a MySQL-protocol listener (go-mysql
// server, results buffered — they are small) for its own single account.
// Its commands are a declarative table (commands.go: pattern, handler,
// HELP line; the first match runs): SHOW BACKENDS/CLUSTERS/SESSIONS/
// QUERY STATS/FAILOVERS/STATUS/CONFIG/VERSION/CLUSTER, SWITCHOVER and
// FAILOVER [cluster] [TO name], SET BACKEND … OFFLINE|ONLINE, KILL,
// RELOAD CONFIG, HELP. What they report and steer comes through Sources,
// an interface cmd implements over the proxy, the clusters, their failover
// engines and the coordinator, so this package imports neither proxy nor
// cmd. status.go turns the same values into Status, which the HTTP status
// page draws. One goroutine per admin client; the accept loop is
// internal/acceptloop's.
package admin
