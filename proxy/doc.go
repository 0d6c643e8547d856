// Package proxy is the client-facing MySQL endpoint.
//
// It owns the client listener, one session per client connection, and the
// relay of packets between a client and its backend connections. go-mysql's
// server package performs the handshake, TLS and authentication
// (auth.go); after that the session runs its own command loop on the same
// packet connection and forwards commands to backend connections it gets
// from Backends (backend.Cluster, or a fake in tests).
//
// A session, by file (one room per command family):
//
//	session.go           the type, handshake and command loop: one place writes ERR packets
//	session_query.go     COM_QUERY, COM_INIT_DB
//	session_stmt.go      prepared statements (proxy-owned ids, prepared lazily per connection)
//	session_control.go   COM_SET_OPTION, COM_RESET_CONNECTION, COM_CHANGE_USER
//	session_exec.go      running one command: place, send, relay, observe
//	session_relay.go     copying a backend's reply to the client; returns a reply value
//	session_state.go     session state: learned from session tracking, replayed on connections
//	session_conns.go     the backend connections a session holds
//	session_multiplex.go giving connections back between statements
//
// Flow of one statement (all in the session's goroutine, few hops):
//
//	session.loop      read one command packet (bounded by max_allowed_packet)
//	session.answer    dispatch by command byte; write the ERR packet a handler returns
//	session.query     classify (router.Classifier)
//	session.exec      place: router.Decide, the write gate for the master, a connection
//	                  in the session's state; send; relay; observe
//	session.relay*    copy the reply packet by packet; what it learned comes back as a reply
//	session.observe   apply the reply: status, session state, router.Session.Observe, statistics
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
// them (reset by the pool) when it ends or when the topology epoch
// changes. With multiplexing on it parks them in the pool after each
// statement unless session state ties it to them.
//
// Goroutines: Server.Serve accepts; each client gets one goroutine that
// owns its session (no locks inside a session). Server.Shutdown, from the
// signal handler's goroutine, and the admin port only read a session's
// info atomics and close sockets.
package proxy
