package proxy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"

	"github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// setOption handles COM_SET_OPTION (multi-statements on/off): mirrored on
// every held connection, replayed on later ones.
func (s *session) setOption(data []byte) error {
	if len(data) < 3 {
		return errMalformed("COM_SET_OPTION")
	}
	on := binary.LittleEndian.Uint16(data[1:]) == 0
	s.state.multiOff = !on
	if on {
		s.caps |= mysql.CLIENT_MULTI_STATEMENTS
	}
	for name, h := range s.conns {
		ctx, cancel := context.WithTimeout(context.Background(), s.settings.IOTimeout)
		err := h.bc.SetMultiStatements(ctx, on)
		cancel()
		if err != nil {
			if me, ok := backend.AsMyError(err); ok {
				return me
			}
			return s.lostConnection(name, h.bc, err)
		}
	}
	// The server answers COM_SET_OPTION with an EOF packet.
	return s.client.write([]byte{0, 0, 0, 0, mysql.EOF_HEADER, 0, 0, byte(s.status), byte(s.status >> 8)})
}

// resetConnection handles COM_RESET_CONNECTION: a fresh server session,
// same login, same database.
func (s *session) resetConnection() error {
	s.startOver(s.state.db, s.state.collationID, s.state.multiOff)
	if _, err := s.masterConn(); err != nil {
		return errNoBackend(err)
	}
	return s.writeOKStatus()
}

// startOver forgets everything the server session held (statements,
// variables, transaction, pins) and gives the connections back to be
// reset; the session starts again in db with the given character set.
func (s *session) startOver(db string, collation uint8, multiOff bool) {
	s.endTx()
	s.aborted = nil
	s.dropBound()
	s.stmts.clear()
	s.releaseAll() // released connections are reset by the pool
	s.route.Reset()
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
	req, err := parseChangeUser(data, s.caps)
	if err != nil {
		return closeWith{errMalformed("COM_CHANGE_USER")}
	}
	salt := mysql.RandomBuf(20)
	sw := []byte{0, 0, 0, 0, mysql.EOF_HEADER}
	sw = append(sw, mysql.AUTH_NATIVE_PASSWORD...)
	sw = append(sw, 0)
	sw = append(sw, salt...)
	sw = append(sw, 0)
	if err := s.client.write(sw); err != nil {
		return err
	}
	reply, err := s.client.pc.ReadPacket()
	if err != nil {
		return err
	}
	u, known := s.settings.Users[req.user]
	okPass := false
	if known {
		if u.Password.Value() == "" {
			okPass = len(reply) == 0
		} else {
			okPass = subtle.ConstantTimeCompare(reply, mysql.CalcNativePassword(salt, []byte(u.Password.Value()))) == 1
		}
	}
	if !okPass || (u.RequireTLS && !s.client.isTLS()) {
		s.srv.stats.AuthFailures.Add(1)
		s.log.Info("COM_CHANGE_USER authentication failed", zap.String("new_user", req.user))
		return closeWith{errAccessDenied(req.user, hostOf(s.client.raw.RemoteAddr()), len(reply) > 0)}
	}
	coll := s.state.collationID
	if req.collation != 0 {
		coll = req.collation
	}
	s.startOver(req.db, coll, false)
	s.user = u
	s.log = s.srv.log.With(zap.Uint32("session", s.id), zap.String("user", u.Name))
	if _, err := s.masterConn(); err != nil {
		return closeWith{asClientError(err)}
	}
	return s.writeOKStatus()
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
