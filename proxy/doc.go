// Package proxy is the client-facing MySQL endpoint.
//
// It owns the client listener, one session per client connection, and the
// relay of packets between a client and its backend connections. go-mysql's
// server package performs the handshake, TLS and authentication; after
// that the session runs its own command loop on the same packet connection
// and forwards commands to backend connections from package backend.
//
// Flow of one statement (all in the session's goroutine, few hops):
//
//	session.loop          read one command packet (bounded by max_allowed_packet)
//	session.dispatch      pick the handler by command byte
//	session.query         classify (router.Classifier) and decide (router.Decide)
//	session.execute       write gate for the master, connection to the target with
//	                      the session state replayed (conns.go), write the command
//	session.relayResult   copy the reply packet by packet to the client
//	router.Session.Observe  what the statement changed (transaction, temp tables, GTID)
//
// Result rows are never decoded: the relay looks only at OK packets (which
// it re-frames for the client's capabilities and reads for session state
// — schema, character set, sql_mode, last GTID — through session tracking),
// at EOF/ERR packets and at column counts. Memory per session is one
// packet, whatever the result size. Writes to the client are buffered and
// flushed before the proxy blocks on a read from either side.
//
// Prepared statements get proxy-owned ids; each remembers its SQL and last
// bound parameter types so it can be prepared again, lazily, on whatever
// backend connection runs it.
//
// A session holds at most one backend connection per server and releases
// them (reset by the pool) when it ends or when the topology epoch
// changes. With multiplexing on (multiplex.go) it parks them in the pool
// after each statement unless session state ties it to them.
//
// Goroutines: Server.Serve accepts; each client gets one goroutine that
// owns its session (no locks inside a session). Server.Shutdown, from the
// signal handler's goroutine, only reads session atomics and closes
// sockets. Every error a client sees is a *mysql.MyError: the server's own
// ERR packet relayed unchanged, or one built in errors.go.
package proxy
