// Package router decides where each statement runs. It never touches a
// socket: it reads SQL text and a backend.Topology snapshot and returns a
// backend name. Everything here is a pure function of its inputs.
//
//   - Classify (classify.go) parses a statement with the TiDB parser and
//     returns its Class: read, write, transaction control, session state,
//     or diagnostics, with the tables and databases it names, temporary
//     tables it creates or drops, and any routing hint comment. Classes
//     depend only on the text (and ANSI_QUOTES), so they are cached by
//     text and by shape and computed once per prepared statement.
//     Unparsable SQL is a write.
//   - ClusterMap (cluster.go) picks the cluster a statement belongs to
//     from the databases it names (Mycat's schema → dataHost), else the
//     session's; a statement spanning two clusters is an error.
//   - Session (decide.go) is one client's routing memory on one cluster:
//     its replica, replicas it avoids, temporary tables, last write
//     (read-your-writes). What the proxy's session owns (its transaction,
//     its variables) comes in as Context.
//   - Decide combines a Class, a Context, a Session and a Topology into a
//     Decision; Observe updates the Session from what the statement did.
//
// A Classifier is safe for concurrent use (parsers are pooled). A Session
// belongs to one proxy session goroutine.
package router
