package proxy

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/conf"
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
	if !ok || u.PasswordHash != "" { // a hash is checked by hashAuth
		return server.Credential{Passwords: []string{impossiblePassword}, AuthPluginName: mysql.AUTH_NATIVE_PASSWORD}, true, nil
	}
	return server.Credential{Passwords: []string{u.Password.Value()}, AuthPluginName: u.Auth}, true, nil
}

// hashAuth checks the users whose password is kept as a
// mysql_native_password hash (added at runtime); go-mysql checks the
// others, from their passwords.
type hashAuth struct {
	server.DefaultAuthenticationProvider
	users func() map[string]conf.User
}

func (h *hashAuth) Authenticate(c *server.Conn, plugin string, data []byte) error {
	u, ok := h.users()[c.GetUser()]
	if !ok || u.PasswordHash == "" || plugin != mysql.AUTH_NATIVE_PASSWORD {
		return h.DefaultAuthenticationProvider.Authenticate(c, plugin, data)
	}
	if matchesNativeHash(data, connSalt(c), u.PasswordHash) {
		return nil
	}
	return server.ErrAccessDenied
}

// matchesNativeHash checks a mysql_native_password answer against the
// stored hash, as the server does: the answer is SHA1(pw) XOR
// SHA1(salt, SHA1(SHA1(pw))), and SHA1(SHA1(pw)) is what is stored.
func matchesNativeHash(answer, salt []byte, hash string) bool {
	stored, err := hex.DecodeString(strings.TrimPrefix(hash, "*"))
	if err != nil || len(stored) != sha1.Size || len(answer) != sha1.Size {
		return false
	}
	h := sha1.New()
	h.Write(salt)
	h.Write(stored)
	stage1 := h.Sum(nil)
	for i := range stage1 {
		stage1[i] ^= answer[i]
	}
	got := sha1.Sum(stage1)
	return subtle.ConstantTimeCompare(got[:], stored) == 1
}

// connSalt reads the scramble go-mysql sent the client (it keeps it
// unexported); checkSaltField makes sure at start that it is there.
func connSalt(c *server.Conn) []byte {
	f := reflect.ValueOf(c).Elem().FieldByName("salt")
	return *(*[]byte)(unsafe.Pointer(f.UnsafeAddr()))
}

func checkSaltField() error {
	f, ok := reflect.TypeOf(server.Conn{}).FieldByName("salt")
	if !ok || f.Type != reflect.TypeOf([]byte(nil)) {
		return fmt.Errorf("go-mysql's server.Conn has no salt field: users with password_hash cannot log in")
	}
	return nil
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
