package proxy

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/router"
)

// Settings are the parts of the config the proxy reads on each new
// session; they are swapped whole on reload.
type Settings struct {
	Users            map[string]conf.User
	MaxAllowedPacket int
	HandshakeTimeout time.Duration
	MaxConnections   int
	LoadDataLocal    bool
	IOTimeout        time.Duration // proxy's own backend round trips
	QueryTimeout     time.Duration // a relayed statement; 0 = none
	AcquireTimeout   time.Duration
	Multiplexing     bool // give backend connections back between statements
	Policy           router.Policy
	GTIDWait         time.Duration // read-your-writes wait on a replica
	AvoidFor         time.Duration // how long a session avoids a failed replica
	HoldTimeout      time.Duration // how long master statements wait for a new master
}

// SettingsFrom extracts proxy settings from a config.
func SettingsFrom(c *conf.Config) *Settings {
	users := make(map[string]conf.User, len(c.Users))
	for _, u := range c.Users {
		users[u.Name] = u
	}
	return &Settings{
		Users:            users,
		MaxAllowedPacket: int(c.MaxAllowedPacket),
		HandshakeTimeout: c.HandshakeTimeout.D(),
		MaxConnections:   c.MaxClientConnections,
		LoadDataLocal:    c.LoadDataLocal,
		IOTimeout:        c.Pool.IOTimeout.D(),
		QueryTimeout:     c.Pool.QueryTimeout.D(),
		AcquireTimeout:   c.Pool.AcquireTimeout.D(),
		Multiplexing:     c.Pool.Multiplexing,
		Policy: router.Policy{
			Split:                   c.Routing.ReadWriteSplit,
			ReadYourWrites:          c.Routing.Consistency == "session",
			MaxLag:                  c.Routing.MaxReplicaLag.D(),
			ReplicaFallbackToMaster: c.Routing.NoReplica == "master",
			PerStatement:            c.Routing.ReplicaChoice == "statement",
		},
		GTIDWait:    c.Routing.GTIDWaitTimeout.D(),
		AvoidFor:    4 * c.Monitor.Interval.D(),
		HoldTimeout: c.Failover.HoldTimeout.D(),
	}
}

func (s *Server) policy() router.Policy      { return s.settings.Load().Policy }
func (s *Server) gtidWait() time.Duration    { return s.settings.Load().GTIDWait }
func (s *Server) holdTimeout() time.Duration { return s.settings.Load().HoldTimeout }
func (s *Server) avoidFor() time.Duration    { return s.settings.Load().AvoidFor }

// Server accepts client connections and runs one session goroutine each.
type Server struct {
	log        *zap.Logger
	cluster    *backend.Cluster
	classifier *router.Classifier
	mysql      *server.Server
	tls        bool
	settings   atomic.Pointer[Settings]

	mu       sync.Mutex
	listener net.Listener
	sessions map[uint32]*session
	draining bool
	wg       sync.WaitGroup

	stats   Stats
	digests *digestTable
	// observe, when set (before Serve), is told about every statement.
	observe func(kind string, toMaster, ok bool, d time.Duration)
}

// SetObserver installs a per-statement callback (metrics). Call it before
// Serve.
func (s *Server) SetObserver(f func(kind string, toMaster, ok bool, d time.Duration)) { s.observe = f }

// Stats are cumulative counters (read with atomic loads).
type Stats struct {
	Connections   atomic.Uint64 // accepted and authenticated
	AuthFailures  atomic.Uint64
	Queries       atomic.Uint64 // COM_QUERY and COM_STMT_EXECUTE
	BackendErrors atomic.Uint64 // backend lost or unreachable
	Rejected      atomic.Uint64 // over max connections or during drain
}

// New builds a proxy server. tlsConf enables TLS for clients when non-nil.
func New(cfg *conf.Config, cluster *backend.Cluster, tlsConf *tls.Config, log *zap.Logger) (*Server, error) {
	// The RSA key lets caching_sha2_password clients send their password
	// over a non-TLS connection (full authentication).
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	ms := server.NewServer(cfg.ServerVersion, mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, key, tlsConf)
	extra := mysql.CLIENT_MULTI_STATEMENTS | mysql.CLIENT_FOUND_ROWS | mysql.CLIENT_IGNORE_SPACE
	if cfg.LoadDataLocal {
		extra |= mysql.CLIENT_LOCAL_FILES
	}
	if err := advertise(ms, extra); err != nil {
		return nil, err
	}
	s := &Server{log: log, cluster: cluster, mysql: ms, tls: tlsConf != nil, sessions: map[uint32]*session{},
		classifier: router.NewClassifier(10000), digests: newDigestTable()}
	s.settings.Store(SettingsFrom(cfg))
	return s, nil
}

// Reload swaps users and limits; existing sessions keep their login.
func (s *Server) Reload(cfg *conf.Config) { s.settings.Store(SettingsFrom(cfg)) }

// StatsRef exposes the counters.
func (s *Server) StatsRef() *Stats { return &s.stats }

// Listen binds the client listener.
func (s *Server) Listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.mu.Lock()
	s.listener = l
	s.mu.Unlock()
	return nil
}

// Addr returns the bound address (useful with port 0).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listener.Addr()
}

// Serve accepts clients until the listener is closed.
func (s *Server) Serve() error {
	s.mu.Lock()
	l := s.listener
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

// handle runs the handshake and then the session's command loop.
func (s *Server) handle(c net.Conn) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session panic", zap.Any("panic", r), zap.Stack("stack"))
			c.Close()
		}
	}()
	set := s.settings.Load()
	if !s.admit() {
		s.stats.Rejected.Add(1)
		writeRawError(c, errTooManyConnections())
		c.Close()
		return
	}
	sess := newSession(s, set, c)
	defer s.forget(sess)
	sess.run()
}

// admit reserves a session slot; false over the limit or while draining.
func (s *Server) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.draining && len(s.sessions) < s.settings.Load().MaxConnections
}

func (s *Server) register(sess *session) {
	s.mu.Lock()
	s.sessions[sess.id] = sess
	s.mu.Unlock()
}

func (s *Server) forget(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess.id)
	s.mu.Unlock()
}

// SessionCount returns the number of live sessions.
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown stops accepting, closes idle sessions at once and waits for
// busy ones (a running statement or an open transaction) until ctx ends,
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	if s.listener != nil {
		s.listener.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for _, sess := range s.sessions {
			sess.closeIfIdle()
		}
		s.mu.Unlock()
		select {
		case <-done:
			return
		case <-ctx.Done():
			s.mu.Lock()
			for _, sess := range s.sessions {
				sess.client.Close()
			}
			s.mu.Unlock()
			<-done
			return
		case <-tick.C:
		}
	}
}

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
	p := errPacket(e)
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
	u, ok := a.sess.settings.Users[username]
	if !ok {
		return server.Credential{Passwords: []string{impossiblePassword}, AuthPluginName: mysql.AUTH_NATIVE_PASSWORD}, true, nil
	}
	return server.Credential{Passwords: []string{u.Password.Value()}, AuthPluginName: u.Auth}, true, nil
}

func (a *authenticator) OnAuthSuccess(c *server.Conn) error {
	return a.sess.onAuthenticated(c)
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
