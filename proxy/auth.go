package proxy

import (
	"fmt"
	"net"
	"reflect"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"go.uber.org/zap"
)

// advertise adds capability bits to the handshake. go-mysql only lets a
// few be set, but clients (go-sql-driver among them) drop any flag the
// server does not advertise, so without this "multiStatements=true" and
// "clientFoundRows=true" would silently do nothing. The proxy honours
// these flags itself (per-session multi-statement state, FOUND_ROWS pool
// variant). Covered by the multi-statement and found-rows integration tests.
func advertise(ms *server.Server, bits uint32) error {
	f := reflect.ValueOf(ms).Elem().FieldByName("capability")
	if !f.IsValid() || f.Kind() != reflect.Uint32 {
		return fmt.Errorf("go-mysql server has no capability field: cannot advertise 0x%x", bits)
	}
	atomic.OrUint32((*uint32)(unsafe.Pointer(f.UnsafeAddr())), bits)
	return nil
}

// writeRawError sends an ERR packet before any handshake (sequence 0).
func writeRawError(c net.Conn, e *mysql.MyError) {
	p := errPacketFor(e, mysql.CLIENT_PROTOCOL_41)
	n := len(p) - 4
	p[0], p[1], p[2], p[3] = byte(n), byte(n>>8), byte(n>>16), 0
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(p)
}

// authenticator answers go-mysql's credential lookups for one connection
// and finishes the session's setup once the password is verified.
type authenticator struct {
	sess *session
}

// impossiblePassword stands in for unknown users so they fail exactly like
// a wrong password (1045) and user names cannot be probed.
var impossiblePassword = string(mysql.RandomBuf(32))

func (a *authenticator) GetCredential(username string) (server.Credential, bool, error) {
	u, ok := a.sess.cmd.set.Users[username]
	if !ok {
		return server.Credential{Passwords: []string{impossiblePassword}, AuthPluginName: mysql.AUTH_NATIVE_PASSWORD}, true, nil
	}
	return server.Credential{Passwords: []string{u.Password.Value()}, AuthPluginName: u.Auth}, true, nil
}

func (a *authenticator) OnAuthSuccess(c *server.Conn) error {
	s := a.sess
	if err := s.onAuthenticated(c.ConnectionID(), c.GetUser(), c.Capability(), c.Charset(), c.Conn.Conn, c.RemoteAddr()); err != nil {
		return err
	}
	c.SetStatus(s.status)
	return nil
}

func (a *authenticator) OnAuthFailure(c *server.Conn, err error) {
	a.sess.srv.stats.AuthFailures.Add(1)
	// Never log the auth data: only who, from where, and the outcome.
	a.sess.srv.log.Info("client authentication failed",
		zap.String("user", c.GetUser()), zap.String("client", c.RemoteAddr().String()), zap.String("reason", shortErr(err)))
}

// handshakeHandler only records the database named in the handshake:
// go-mysql calls UseDB before the password is checked.
type handshakeHandler struct {
	server.EmptyHandler
	db string
}

func (h *handshakeHandler) UseDB(db string) error {
	h.db = db
	return nil
}
