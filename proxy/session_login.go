package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/router"
)

// onAuthenticated runs inside the handshake after the password matched
// and before the OK is sent: an error here reaches the client instead of
// a successful login.
func (s *session) onAuthenticated(id uint32, user string, caps uint32, collation uint8, clientConn net.Conn, remote net.Addr) error {
	set := s.cmd.set
	u := set.Users[user]
	s.id = id
	s.log = s.srv.log.With(zap.Uint32("session", id), zap.String("user", u.Name), zap.String("client", remote.String()))
	s.ctl.log = s.srv.log.With(zap.Uint32("session", id))
	if u.RequireTLS {
		if _, isTLS := clientConn.(*tls.Conn); !isTLS {
			return errAccessDenied(u.Name, hostOf(remote), true)
		}
	}
	if s.srv.isDraining() {
		return errShuttingDown()
	}
	if !s.srv.admitUser(u.Name, u.MaxConnections) {
		s.srv.stats.Rejected.Add(1)
		return errTooManyConnections()
	}
	s.login = login{user: u, caps: caps & s.srv.mysql.Capability(), counted: true, // go-mysql keeps the client's flags unmasked
		client: clientAddr(s.client.raw.RemoteAddr())}
	s.info.setUser(u.Name)
	s.relay.login = &s.login
	s.state.collationID = collation
	s.state.db = s.hs.db
	s.status = mysql.SERVER_STATUS_AUTOCOMMIT
	return s.openSession()
}

// clientAddr is a client's IP address (invalid for a Unix socket).
func clientAddr(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

func hostOf(a net.Addr) string {
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

// openSession places the session on its home cluster: the default
// database is checked and the servers' defaults learnt on any server of
// the cluster that answers — the master when it is up, else a replica —
// so a login never needs the master. Only when no server answers does it
// wait (hold_timeout) for one.
func (s *session) openSession() error {
	s.home = s.views.get(s.srv, s.cmd.set.Routes.Home(s.state.db, s.login.user.Name))
	if s.home == nil {
		return errNoBackend(errors.New("no cluster serves this user's database"))
	}
	storeIfChanged(&s.info.db, s.state.db)
	storeIfChanged(&s.info.cluster, s.home.b.Name)
	set := s.home.settings(s.cmd.set)
	s.cmd.now = time.Now() // before the first command: connections are taken now
	deadline := s.cmd.now.Add(set.HoldTimeout)
	for {
		topo := s.home.b.topology()
		var lastErr error
		for _, server := range loginCandidates(topo) {
			bc, err := s.connTo(s.home, server)
			if err == nil {
				s.login.flavor = bc.Flavor()
				d := s.srv.serverDefaults(s.home.b.Name, bc, set.IOTimeout)
				s.login.track, s.login.idleDefault = d.tracking, d.waitTimeout
				if s.login.caps&mysql.CLIENT_INTERACTIVE != 0 {
					s.login.idleDefault = d.interactiveTimeout
				}
				return nil
			}
			if me, ok := backend.AsMyError(err); ok {
				return me // the server's own answer: unknown database, access denied …
			}
			if isRefused(err) {
				s.home.b.suspect(server)
			}
			lastErr = err
		}
		if lastErr == nil {
			lastErr = errors.New("the cluster has no server")
		}
		if time.Now().After(deadline) {
			return errNoServer(s.home.b.Name, lastErr)
		}
		waitForChange(s.home, topo.Epoch, deadline)
	}
}

// loginCandidates orders the servers a login may check its database on:
// the master when it is available, the servers the monitor sees up, then
// the others (the monitor may not have noticed yet that one came back).
func loginCandidates(t *backend.Topology) []string {
	var first, rest []string
	masterOK := router.MasterAvailable(t)
	if masterOK {
		first = append(first, t.Master)
	}
	for i := range t.Servers {
		st := &t.Servers[i]
		switch {
		case st.Name == t.Master && masterOK, st.Offline, st.Diverged:
		case st.Up && st.Name != t.Master:
			first = append(first, st.Name)
		default:
			rest = append(rest, st.Name)
		}
	}
	return append(first, rest...)
}

// startOver forgets everything the server session held (statements,
// variables, transaction, pins) and gives the connections back to be
// reset; the session starts again in db with the given character set.
func (s *session) startOver(db string, collation uint8, multiOff bool) {
	s.tx.end()
	s.stmts.clear()
	s.conns.releaseAll() // released connections are reset by the pool
	for _, v := range s.views {
		v.route.Reset()
		v.bound = boundState{}
	}
	s.mux.reset()
	s.state = sessionState{db: db, collationID: collation, multiOff: multiOff, version: s.state.version + 1}
	s.status = mysql.SERVER_STATUS_AUTOCOMMIT
	s.info.inTx.Store(false)
}

// changeUser handles COM_CHANGE_USER: the client logs in again as another
// (or the same) user on the open connection. The proxy asks for a fresh
// mysql_native_password scramble (auth switch), checks it against the
// configured password, then starts a clean server session for the new
// user. A failed attempt ends the connection, as MariaDB does.
func (s *session) changeUser(data []byte) error {
	req, err := parseChangeUser(data, s.login.caps)
	if err != nil {
		return closeWith{errMalformed("COM_CHANGE_USER")}
	}
	u, err := s.client.reauthenticate(s.cmd.set.Users, req.user)
	if denied := (closeWith{}); errors.As(err, &denied) {
		s.srv.stats.AuthFailures.Add(1)
		s.log.Info("COM_CHANGE_USER authentication failed", zap.String("new_user", req.user))
	}
	if err != nil {
		return err
	}
	if u.Name != s.login.user.Name {
		if !s.srv.admitUser(u.Name, u.MaxConnections) {
			return closeWith{errTooManyConnections()}
		}
		s.srv.leaveUser(s.login.user.Name)
	}
	coll := s.state.collationID
	if req.collation != 0 {
		coll = req.collation
	}
	s.startOver(req.db, coll, false)
	s.login.user = u
	s.info.setUser(u.Name)
	s.log = s.srv.log.With(zap.Uint32("session", s.id), zap.String("user", u.Name))
	if err := s.openSession(); err != nil {
		return closeWith{asClientError(err)}
	}
	return s.writeOKStatus()
}

// serverDefaults are the servers' defaults a session starts from.
type serverDefaults struct {
	tracking                        clientTracking
	waitTimeout, interactiveTimeout time.Duration
}

// serverDefaults reads a cluster's defaults once, from the first
// connection a session gets there (the values below until one answers).
func (srv *Server) serverDefaults(cluster string, bc *backend.Conn, timeout time.Duration) serverDefaults {
	if d, ok := srv.defaults.Load(cluster); ok {
		return d.(serverDefaults)
	}
	d := serverDefaults{tracking: newClientTracking("autocommit,character_set_client,character_set_connection,character_set_results,time_zone", "ON"),
		waitTimeout: 8 * time.Hour, interactiveTimeout: 8 * time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := bc.Exec(ctx, "SELECT @@global.session_track_system_variables, @@global.session_track_schema, @@global.wait_timeout, @@global.interactive_timeout")
	if err == nil && r.Resultset != nil && len(r.Values) == 1 {
		v := r.Values[0]
		d.tracking = newClientTracking(string(v[0].AsString()), v[1].String())
		d.waitTimeout, d.interactiveTimeout = time.Duration(v[2].AsInt64())*time.Second, time.Duration(v[3].AsInt64())*time.Second
		srv.defaults.Store(cluster, d)
	}
	return d
}

type changeUserRequest struct {
	user      string
	db        string
	collation uint8
}

var errBadChangeUser = errors.New("malformed COM_CHANGE_USER")

// parseChangeUser reads user, database and character set; the auth data
// in it is ignored (it was computed with the original handshake's salt,
// so the proxy asks again).
func parseChangeUser(data []byte, caps uint32) (changeUserRequest, error) {
	var r changeUserRequest
	b := data[1:]
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return r, errBadChangeUser
	}
	r.user = string(b[:i])
	b = b[i+1:]
	if caps&mysql.CLIENT_SECURE_CONNECTION != 0 {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return r, errBadChangeUser
		}
		b = b[1+int(b[0]):]
	} else {
		i = bytes.IndexByte(b, 0)
		if i < 0 {
			return r, errBadChangeUser
		}
		b = b[i+1:]
	}
	i = bytes.IndexByte(b, 0)
	if i < 0 {
		r.db = string(b)
		return r, nil
	}
	r.db = string(b[:i])
	b = b[i+1:]
	if len(b) >= 2 {
		r.collation = b[0]
	}
	return r, nil
}
