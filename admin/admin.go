package admin

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"github.com/switchyard/switchyard/internal/acceptloop"
	"go.uber.org/zap"
)

// Server is the admin SQL listener.
type Server struct {
	src  Sources
	cmds []command
	log  *zap.Logger
	ms   *server.Server
	auth *adminAuth
	l    net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	// conns are the sessions and their sockets: Close closes the socket,
	// never touching the session, which its own goroutine owns.
	conns map[*server.Conn]net.Conn
}

// New prepares the admin server with its own account.
func New(src Sources, user, password string, log *zap.Logger) (*Server, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	auth := &adminAuth{user: user, password: password, log: log}
	ms := server.NewServer("5.5.5-10.11.0-switchyard-admin", mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, key, nil)
	return &Server{src: src, cmds: commandTable(), log: log, ms: ms, auth: auth, conns: map[*server.Conn]net.Conn{}}, nil
}

// Listen binds the admin address.
func (s *Server) Listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listen on %s: %w", addr, err)
	}
	s.l = l
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Serve accepts admin clients until Close (nil) or a failure for good
// (the error); out of file descriptors it backs off and goes on.
func (s *Server) Serve() error {
	return acceptloop.Serve(s.l, &s.wg, s.handle, func(err error, backoff time.Duration, log bool) {
		if log {
			s.log.Error("cannot accept admin connections; retrying", zap.Error(err), zap.Duration("backoff", backoff))
		}
	})
}

// Close stops the listener and the sessions.
func (s *Server) Close() {
	if s.l != nil {
		s.l.Close()
	}
	s.mu.Lock()
	for _, nc := range s.conns {
		_ = nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) handle(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	h := &handler{srv: s}
	c, err := s.ms.NewCustomizedConn(nc, s.auth, h)
	if err != nil {
		s.log.Info("admin login failed", zap.String("client", nc.RemoteAddr().String()), zap.String("reason", err.Error()))
		nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	s.mu.Lock()
	s.conns[c] = nc
	s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("admin session panic", zap.Any("panic", r), zap.Stack("stack"))
		}
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		if c.Conn != nil { // HandleCommand drops it on COM_QUIT and errors
			c.Close()
		}
	}()
	for !c.Closed() {
		if err := c.HandleCommand(); err != nil {
			return
		}
	}
}

// adminAuth accepts exactly one account. Any other user name fails like a
// wrong password (1045), so application accounts cannot probe the port.
type adminAuth struct {
	user, password string
	log            *zap.Logger
}

var impossible = string(mysql.RandomBuf(32))

func (a *adminAuth) GetCredential(username string) (server.Credential, bool, error) {
	pw := impossible
	if username == a.user {
		pw = a.password
	}
	return server.Credential{Passwords: []string{pw}, AuthPluginName: mysql.AUTH_NATIVE_PASSWORD}, true, nil
}

func (a *adminAuth) OnAuthSuccess(*server.Conn) error { return nil }

func (a *adminAuth) OnAuthFailure(c *server.Conn, err error) {
	a.log.Info("admin authentication failed", zap.String("user", c.GetUser()), zap.String("client", c.RemoteAddr().String()))
}

type handler struct {
	server.EmptyHandler
	srv *Server
}

func (h *handler) UseDB(string) error { return nil }

func (h *handler) HandleQuery(q string) (*mysql.Result, error) {
	res, err := h.srv.run(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(q), ";")))
	if err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) {
			return nil, me
		}
		return nil, mysql.NewError(mysql.ER_UNKNOWN_ERROR, err.Error())
	}
	return res, nil
}

// run finds the command q matches (the first in table order) and runs it.
func (s *Server) run(q string) (*mysql.Result, error) {
	for _, c := range s.cmds {
		if m := c.pattern.FindStringSubmatch(q); m != nil {
			return c.run(s, m[1:])
		}
	}
	return nil, mysql.NewError(mysql.ER_SYNTAX_ERROR, fmt.Sprintf("Unknown admin command %q: type HELP for the list", shorten(q)))
}

func shorten(q string) string {
	if len(q) > 60 {
		return q[:60] + "…"
	}
	return q
}
