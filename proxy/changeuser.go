package proxy

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"errors"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"
)

// changeUser handles COM_CHANGE_USER: the client logs in again as another
// (or the same) user on the open connection. The proxy asks for a fresh
// mysql_native_password scramble (auth switch), checks it against the
// configured password, then starts a clean server session for the new
// user. A failed attempt ends the connection, as MariaDB does.
func (s *session) changeUser(data []byte) (quit bool, err error) {
	req, perr := parseChangeUser(data, s.caps)
	if perr != nil {
		return true, s.writeErrFatal(errMalformed("COM_CHANGE_USER"))
	}
	salt := mysql.RandomBuf(20)
	sw := []byte{0, 0, 0, 0, mysql.EOF_HEADER}
	sw = append(sw, mysql.AUTH_NATIVE_PASSWORD...)
	sw = append(sw, 0)
	sw = append(sw, salt...)
	sw = append(sw, 0)
	if err := s.writeClient(sw); err != nil {
		return true, err
	}
	reply, err := s.pc.ReadPacket()
	if err != nil {
		return true, err
	}
	u, known := s.settings.Users[req.user]
	okPass := false
	if known {
		want := mysql.CalcNativePassword(salt, []byte(u.Password.Value()))
		if u.Password.Value() == "" {
			okPass = len(reply) == 0
		} else {
			okPass = subtle.ConstantTimeCompare(reply, want) == 1
		}
	}
	if !okPass || (u.RequireTLS && !s.isTLS()) {
		s.srv.stats.AuthFailures.Add(1)
		s.log.Info("COM_CHANGE_USER authentication failed", zap.String("new_user", req.user))
		return true, s.writeErrFatal(errAccessDenied(req.user, hostOf(s.raw.RemoteAddr()), len(reply) > 0))
	}
	s.stmts.clear()
	s.releaseAll()
	s.route.Reset()
	s.pinned, s.keepFor = "", 0
	s.user = u
	s.log = s.srv.log.With(zap.Uint32("session", s.id), zap.String("user", u.Name))
	coll := s.state.collationID
	if req.collation != 0 {
		coll = req.collation
	}
	s.state = sessionState{db: req.db, collationID: coll}
	s.stateVersion++
	s.status = mysql.SERVER_STATUS_AUTOCOMMIT
	if _, err := s.masterConn(); err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) {
			return true, s.writeErrFatal(me)
		}
		return true, s.writeErrFatal(errNoBackend(err))
	}
	return false, s.writeOKStatus()
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

func (s *session) isTLS() bool {
	_, ok := s.out.Conn.(*tls.Conn)
	return ok
}
