// Package router decides where each statement runs. It never touches a
// socket: it reads SQL text and a backend.Topology snapshot and returns a
// backend name.
//
//   - Classify (classify.go) parses a statement with the TiDB parser and
//     returns its Class: read, write, transaction control, session state,
//     or diagnostics, with the tables it names, temporary tables it
//     creates or drops, and any routing hint comment. Classes depend only
//     on the text (and ANSI_QUOTES), so they are cached by text and
//     computed once per prepared statement. Unparsable SQL is a write.
//   - Session (decide.go) is one client's routing state: transaction and
//     where it runs, autocommit, temporary tables, last statement's
//     backend, and the GTID of the last write (read-your-writes).
//   - Decide combines a Class, a Session and a Topology into a Decision;
//     Observe updates the Session from what the statement did.
//
// A Classifier is safe for concurrent use (parsers are pooled). A Session
// belongs to one proxy session goroutine.
package router
