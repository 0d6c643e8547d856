package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/admin"
)

//go:embed page
var assets embed.FS

// Sources is what the listener serves.
type Sources struct {
	// Status is the picture the page draws (/api/status).
	Status func() admin.Status
	// Metrics serves /metrics; Ready answers /readyz.
	Metrics http.Handler
	Ready   func() (bool, string)
	// User and Password guard everything but /healthz and /readyz.
	User, Password string
	// Pprof mounts net/http/pprof under /debug/pprof/.
	Pprof bool
}

// Server is the HTTP listener.
type Server struct {
	src Sources
	srv *http.Server
	l   net.Listener
	log *zap.Logger
}

// New builds the handler tree.
func New(src Sources, log *zap.Logger) *Server {
	s := &Server{src: src, log: log}
	if src.Pprof {
		// Sample one lock contention in 10 for /debug/pprof/mutex: off
		// (the default) the mutex profile would always be empty.
		runtime.SetMutexProfileFraction(10)
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(log)}
	return s
}

// Handler routes the requests: the probes open, the rest behind auth.
func (s *Server) Handler() http.Handler {
	open := http.NewServeMux()
	open.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	open.HandleFunc("GET /readyz", s.readyz)

	guarded := http.NewServeMux()
	page, _ := fs.Sub(assets, "page")
	guarded.Handle("GET /", noCache(http.FileServerFS(page)))
	guarded.HandleFunc("GET /api/status", s.status)
	if s.src.Metrics != nil {
		guarded.Handle("GET /metrics", s.src.Metrics)
	}
	if s.src.Pprof {
		guarded.HandleFunc("GET /debug/pprof/", pprof.Index)
		guarded.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		guarded.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		guarded.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	}
	open.Handle("/", s.authenticated(guarded))
	return open
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.src.Ready != nil {
		if ok, why := s.src.Ready(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(why + "\n"))
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	if err := enc.Encode(s.src.Status()); err != nil {
		s.log.Debug("writing /api/status", zap.Error(err))
	}
}

// authenticated asks for the listener's credentials (HTTP basic auth).
// The comparison takes the same time whatever the guess.
func (s *Server) authenticated(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(s.src.User + "\x00" + s.src.Password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		got := sha256.Sum256([]byte(user + "\x00" + pass))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="switchyard", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
		next.ServeHTTP(w, r)
	})
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// Listen binds addr.
func (s *Server) Listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http listen on %s: %w", addr, err)
	}
	s.l = l
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Serve answers requests until Close (nil) or a failure for good (the
// error). net/http itself backs off and goes on when it runs out of file
// descriptors.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops the listener, waiting at most 2 s for requests in flight.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
