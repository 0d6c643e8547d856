// Package proxy is the client-facing MySQL endpoint.
//
// It owns the client listener, one session per client connection, and the
// relay of packets between a client and its backend connections. go-mysql's
// server package performs the handshake, TLS and authentication
// (auth.go); after that the session runs its own command loop on the same
// packet connection and forwards commands to backend connections it gets
// from the clusters it fronts (Backends: one per cluster, built from a
// backend.Cluster by Cluster, or from fakes in tests).
//
// Files, by owner of state:
//
//	server.go            Server: listener (internal/acceptloop), sessions, limits, shutdown
//	settings.go          Settings: users, limits, the cluster map, per-cluster settings
//	backends.go          Backends: what a session needs of one cluster
//	session.go           session: the type, its parts, the command loop and dispatch
//	session_login.go     login: handshake hook, placing a session on a cluster, change user
//	session_query.go     statement commands: COM_QUERY, COM_INIT_DB, prepared statements, options
//	session_exec.go      running one command: cluster, place, send, relay, observe
//	retry.go             the retry policy: what a failure becomes (pure, table-tested)
//	transaction.go       transaction: the state machine and its replay log
//	session_tx.go        replaying a transaction on the (new) master, aborting one
//	session_conns.go     bringing a connection to the session's state
//	conns.go             connSet: the backend connections a session holds
//	state.go             sessionState: variables, database, charset replayed anywhere
//	bound.go             boundState: what only the master connection has (user variables, locks)
//	mux.go               muxState: why connections are kept between statements
//	stmt.go              stmtRegistry: prepared statements (proxy ids, prepared lazily per connection)
//	kill.go              statementControl: KILL, query timeouts, shutdown of a running statement
//	rules.go             what query rules see of a command; the error of a blocked one
//	cached.go            cacheUse: answering reads from the result cache, filling it, invalidating it
//	querylog.go          QueryLog: JSON lines of rule-marked and slow statements
//	explain.go           Server.Explain: EXPLAIN ROUTE, a decision without a session
//	relay.go, relay_rows.go  relayer: the wire to backends, replies relayed packet by packet
//	info.go              sessionInfo: what other goroutines may read of a session
//	wire.go, client.go, errors.go, stats.go, rewrite.go, auth.go  protocol helpers
//
// Flow of one statement (all in the session's goroutine, few hops):
//
//	session.loop      read one command packet (bounded by max_allowed_packet)
//	session.dispatch  by command byte; the loop writes the ERR packet a handler returns
//	session.query     classify (router.Classifier)
//	session.exec      query rules (block, route, cache, timeout, log), the result cache,
//	                  clusterOf (router.ClusterMap), checkTx, place (router.Decide, the
//	                  write gate for the master, a connection in the session's state),
//	                  runOn; a failure goes through nextStep, under one deadline
//	session.runOn     send and relay (relayer); observe what the reply said: status,
//	                  session state, the transaction, the router's memory, statistics
//
// A transaction is one value (transaction) with one owner: its phase
// (none → open → committing | aborted → none) decides what a lost
// connection becomes; the router reads where it runs, the multiplexer
// whether one is open, the write gate counts it.
//
// A command handler returns nil (it answered), a *mysql.MyError (for the
// client: the loop writes it and the session goes on), closeWith (written,
// then the session ends) or any other error (the session ends). Server
// errors are relayed as the server sent them; the proxy's own are built in
// errors.go with codes a client library already knows.
//
// Result rows are never decoded: the relay looks only at OK packets (which
// it re-frames for the client's capabilities and reads for session state
// — schema, character set, sql_mode, last GTID — through session tracking),
// at EOF/ERR packets and at column counts. Memory per session is one
// packet, whatever the result size. Writes to the client are buffered and
// flushed before the proxy blocks on a read from either side.
//
// A session holds at most one backend connection per server and releases
// them (reset by the pool) when it ends or when a cluster's topology epoch
// changes. With multiplexing on it parks them in the pool after each
// statement unless session state ties it to them.
//
// Goroutines: Server.Serve accepts; each client gets one goroutine that
// owns its session (no locks inside a session). Shutdown, the admin port,
// KILL from other sessions and the query timer only read a session's info
// atomics, act through its statementControl (whose mutex keeps a kill from
// reaching the next statement), and close sockets.
package proxy
