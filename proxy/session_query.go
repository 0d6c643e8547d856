package proxy

import "github.com/switchyard/switchyard/router"

// query handles COM_QUERY: classify (cached by text and by shape), then
// run where the router decides.
func (s *session) query(data []byte) error {
	cl := s.srv.classifier.Classify(string(data[1:]), s.state.ansiQuotes())
	s.noteStatement(cl.Digest)
	s.mux.notePin(cl)
	return s.exec(&command{class: cl, payload: data, route: routeByClass, reply: replyResult})
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
