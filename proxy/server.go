package proxy

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/conf"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/internal/acceptloop"
	"github.com/switchyard/switchyard/router"
)

// Server accepts client connections and runs one session goroutine each.
type Server struct {
	log        *zap.Logger
	clusters   map[string]*Backends // fixed at New
	classifier *router.Classifier
	mysql      *server.Server
	tls        bool
	settings   atomic.Pointer[Settings]

	mu       sync.Mutex
	listener net.Listener
	sessions map[uint32]*session
	// handshaking are connections not yet logged in (no id yet): a
	// shutdown that cannot wait closes them too.
	handshaking map[*session]struct{}
	// perUser counts each user's sessions, logins in progress included.
	perUser  map[string]int
	draining bool
	wg       sync.WaitGroup
	// admitted counts client connections from accept to their end: the
	// max_client_connections limit holds while thousands log in at once.
	admitted atomic.Int64

	stats   Stats
	digests *digestTable
	// outcomes: per cluster and topology epoch, transactions replayed
	// and aborted.
	outcomesMu sync.Mutex
	outcomes   map[epochKey]*TxOutcome
	// defaults: per cluster, the session tracking and timeouts sessions
	// start from (read once from a server of that cluster).
	defaults sync.Map
	// cache keeps results of reads that rules mark (nil: no cache).
	cache *cache.Cache
	// observe, when set (before Serve), is told about every statement.
	observe func(cluster, kind string, toMaster, ok bool, d time.Duration)
}

// Stats are cumulative counters (read with atomic loads).
type Stats struct {
	Connections   atomic.Uint64 // accepted and authenticated
	AuthFailures  atomic.Uint64
	Queries       atomic.Uint64 // COM_QUERY and COM_STMT_EXECUTE
	BackendErrors atomic.Uint64 // backend lost or unreachable
	Rejected      atomic.Uint64 // over a connection limit or during drain
	// AcceptErrors counts failed accepts (out of file descriptors …):
	// the listener backs off and goes on.
	AcceptErrors atomic.Uint64
	// Transactions whose connection was lost: replayed on the (new)
	// master; replay attempted and failed; aborted (client told, class 40).
	TxReplayed, TxReplayFailed, TxAborted atomic.Uint64
}

// New builds a proxy server in front of clusters. version is the server
// version sent in the handshake; tlsConf enables TLS for clients when
// non-nil (give it a GetCertificate to change certificates at runtime).
func New(clusters []*Backends, set *Settings, version string, tlsConf *tls.Config, log *zap.Logger) (*Server, error) {
	// The RSA key lets caching_sha2_password clients send their password
	// over a non-TLS connection (full authentication).
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	if err := checkSaltField(); err != nil {
		return nil, err
	}
	hashes := &hashAuth{}
	ms := server.NewServerWithAuth(version, mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, key, tlsConf, hashes)
	extra := mysql.CLIENT_MULTI_STATEMENTS | mysql.CLIENT_FOUND_ROWS | mysql.CLIENT_IGNORE_SPACE
	if set.LoadDataLocal {
		extra |= mysql.CLIENT_LOCAL_FILES
	}
	if err := advertise(ms, extra); err != nil {
		return nil, err
	}
	s := &Server{log: log, clusters: map[string]*Backends{}, mysql: ms, tls: tlsConf != nil, sessions: map[uint32]*session{},
		handshaking: map[*session]struct{}{}, perUser: map[string]int{}, classifier: router.NewClassifier(10000),
		digests: newDigestTable()}
	for _, b := range clusters {
		s.clusters[b.Name] = b
	}
	s.settings.Store(set)
	hashes.users = func() map[string]conf.User { return s.settings.Load().Users }
	return s, nil
}

// SetCache installs the result cache that rules with cache_ttl fill.
// Call it before Serve.
func (s *Server) SetCache(c *cache.Cache) { s.cache = c }

// SetObserver installs a per-statement callback (metrics). Call it before
// Serve.
func (s *Server) SetObserver(f func(cluster, kind string, toMaster, ok bool, d time.Duration)) {
	s.observe = f
}

// Reload swaps users, limits and routing; existing sessions keep their
// login and use the new settings from their next command.
func (s *Server) Reload(set *Settings) { s.settings.Store(set) }

// Settings are the settings sessions use now (read-only).
func (s *Server) Settings() *Settings { return s.settings.Load() }

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

// Serve accepts clients until the listener is closed (nil) or fails for
// good (the error: the process must not go on without its listener).
// Running out of file descriptors or buffers is not for good: the loop
// backs off, logs (at most once a second), counts it and accepts again.
func (s *Server) Serve() error {
	s.mu.Lock()
	l := s.listener
	s.mu.Unlock()
	return acceptloop.Serve(l, &s.wg, s.handle, func(err error, backoff time.Duration, log bool) {
		s.stats.AcceptErrors.Add(1)
		if log {
			s.log.Error("cannot accept client connections; retrying", zap.Error(err), zap.Duration("backoff", backoff))
		}
	})
}

// handle runs the handshake and then the session's command loop. The
// connection counts against max_client_connections from here on.
func (s *Server) handle(c net.Conn) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session panic", zap.Any("panic", r), zap.Stack("stack"))
			c.Close()
		}
	}()
	defer s.admitted.Add(-1)
	if n := s.admitted.Add(1); n > int64(s.settings.Load().MaxConnections) || s.isDraining() {
		s.stats.Rejected.Add(1)
		writeRawError(c, errTooManyConnections())
		c.Close()
		return
	}
	sess := newSession(s, c)
	s.mu.Lock()
	s.handshaking[sess] = struct{}{}
	s.mu.Unlock()
	defer s.forget(sess)
	sess.run()
}

// admitUser reserves a slot for user under its own limit (users[].
// max_connections, 0: none); release it with leaveUser.
func (s *Server) admitUser(user string, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 && s.perUser[user] >= limit {
		return false
	}
	s.perUser[user]++
	return true
}

func (s *Server) leaveUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUser[user]--; s.perUser[user] <= 0 {
		delete(s.perUser, user)
	}
}

func (s *Server) register(sess *session) {
	s.mu.Lock()
	delete(s.handshaking, sess)
	s.sessions[sess.id] = sess
	s.mu.Unlock()
}

func (s *Server) forget(sess *session) {
	s.mu.Lock()
	delete(s.handshaking, sess)
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
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
		s.eachSession(func(sess *session) { sess.ctl.closeIfIdle(&sess.client) })
		select {
		case <-done:
			return
		case <-ctx.Done():
			s.abortAll(done)
			return
		case <-tick.C:
		}
	}
}

// abortAll closes every session's sockets and waits briefly for them.
func (s *Server) abortAll(done <-chan struct{}) {
	s.mu.Lock()
	for _, sess := range s.sessions {
		sess.ctl.abort(&sess.client)
	}
	for sess := range s.handshaking {
		sess.client.close()
	}
	n := len(s.sessions) + len(s.handshaking)
	s.mu.Unlock()
	select {
	case <-done:
	case <-time.After(abortWait):
		s.log.Error("sessions still running after their sockets were closed; stopping without them", zap.Int("sessions", n))
	}
}

// eachSession calls f for every logged-in session, under the lock.
func (s *Server) eachSession(f func(*session)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		f(sess)
	}
}

// abortWait bounds the wait for sessions whose sockets a shutdown closed.
const abortWait = 3 * time.Second

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// session returns a logged-in session by id, or nil.
func (s *Server) session(id uint32) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}
