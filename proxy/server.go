package proxy

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/router"
)

// Settings are what the proxy reads on each new session; cmd builds them
// from the config, and they are swapped whole on reload.
type Settings struct {
	Users            map[string]conf.User // by name
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
	TxReplay         TxReplay      // transactions replayed when their connection is lost
}

func (s *Server) policy() router.Policy      { return s.settings.Load().Policy }
func (s *Server) gtidWait() time.Duration    { return s.settings.Load().GTIDWait }
func (s *Server) holdTimeout() time.Duration { return s.settings.Load().HoldTimeout }
func (s *Server) avoidFor() time.Duration    { return s.settings.Load().AvoidFor }

// Server accepts client connections and runs one session goroutine each.
type Server struct {
	log        *zap.Logger
	backends   Backends
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
	draining    bool
	wg          sync.WaitGroup

	stats   Stats
	digests *digestTable
	// outcomes: per topology epoch, transactions replayed and aborted.
	outcomesMu sync.Mutex
	outcomes   map[uint64]*TxOutcome
	// serverDefaults: session tracking and timeouts sessions start from
	// (read once).
	serverDefaults atomic.Pointer[serverDefaults]
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
	// Transactions whose connection was lost: replayed on the (new)
	// master; replay attempted and failed; aborted (client told, class 40).
	TxReplayed, TxReplayFailed, TxAborted atomic.Uint64
}

// New builds a proxy server in front of b. version is the server version
// sent in the handshake; tlsConf enables TLS for clients when non-nil.
func New(b Backends, set *Settings, version string, tlsConf *tls.Config, log *zap.Logger) (*Server, error) {
	// The RSA key lets caching_sha2_password clients send their password
	// over a non-TLS connection (full authentication).
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	ms := server.NewServer(version, mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, key, tlsConf)
	extra := mysql.CLIENT_MULTI_STATEMENTS | mysql.CLIENT_FOUND_ROWS | mysql.CLIENT_IGNORE_SPACE
	if set.LoadDataLocal {
		extra |= mysql.CLIENT_LOCAL_FILES
	}
	if err := advertise(ms, extra); err != nil {
		return nil, err
	}
	s := &Server{log: log, backends: b, mysql: ms, tls: tlsConf != nil, sessions: map[uint32]*session{}, handshaking: map[*session]struct{}{},
		classifier: router.NewClassifier(10000), digests: newDigestTable()}
	s.settings.Store(set)
	return s, nil
}

// Reload swaps users and limits; existing sessions keep their login.
func (s *Server) Reload(set *Settings) { s.settings.Store(set) }

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
	s.mu.Lock()
	s.handshaking[sess] = struct{}{}
	s.mu.Unlock()
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
				sess.abort()
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
			return
		case <-tick.C:
		}
	}
}

// abortWait bounds the wait for sessions whose sockets a shutdown closed.
const abortWait = 3 * time.Second

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}
