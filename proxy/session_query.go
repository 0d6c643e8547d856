package proxy

import "github.com/switchyard/switchyard/router"

// query handles COM_QUERY: classify (cached by text and by shape), then
// run where the router decides.
func (s *session) query(data []byte) error {
	if len(data) > 5 && (data[1]|0x20) == 'k' {
		if id, query, ok := parseKill(string(data[1:])); ok {
			return s.kill(id, query)
		}
	}
	cl, data := s.classify(data)
	s.noteStatement(cl.Digest)
	s.mux.notePin(cl)
	return s.exec(&command{class: cl, payload: data, route: routeByClass, reply: replyResult})
}

// classify classifies the SQL of a COM_QUERY or COM_STMT_PREPARE packet.
// A statement calling CONNECTION_ID() is first rewritten to carry the
// session's id (withConnectionID), and classified as rewritten.
func (s *session) classify(data []byte) (router.Class, []byte) {
	cl := s.srv.classifier.Classify(string(data[1:]), s.state.ansiQuotes())
	if cl.ConnectionID {
		sql := withConnectionID(string(data[1:]), s.id)
		data = append([]byte{data[0]}, sql...)
		cl = s.srv.classifier.Classify(sql, s.state.ansiQuotes())
		cl.ConnectionID = false
	}
	return cl, data
}

// initDB handles COM_INIT_DB (USE from most connectors) on the master;
// the new default database is then replayed on every connection. Servers
// report the change through session tracking; the name is also taken
// from the command in case the server does not.
func (s *session) initDB(data []byte) error {
	err := s.exec(&command{class: router.Class{Kind: router.KindWrite, Reason: "command"},
		payload: data, route: routeMaster, reply: replyResult})
	if err == nil && s.state.db != string(data[1:]) {
		s.state.db = string(data[1:])
		s.stateChanged(s.cmd.target)
	}
	return err
}
