package main

import (
	"fmt"
	"net"
	"os"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/switchyard/switchyard/conf"
)

// What running under a service manager needs: readiness and stop
// notifications for systemd (Type=notify), and a log file that logrotate
// can move away (SIGUSR1 reopens it; SIGHUP stays "reload the config").

// sdNotify sends a state ("READY=1", "STOPPING=1", …) to systemd when the
// process runs under a Type=notify unit; elsewhere it does nothing.
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' { // abstract socket namespace
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}

// logFile is the log's file, reopened on demand by path: after logrotate
// renames it, Reopen creates a new one and later lines go there.
type logFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openLogFile(path string) (*logFile, error) {
	l := &logFile{path: path}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// Reopen closes the current file and opens (creates) path again.
func (l *logFile) Reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

func (l *logFile) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Sync()
}

// newLogger builds the process logger; reopen is nil when it writes to
// stderr (nothing to reopen).
func newLogger(l conf.Log) (log *zap.Logger, reopen func() error, err error) {
	lvl, err := zapcore.ParseLevel(l.Level)
	if err != nil {
		return nil, nil, fmt.Errorf("log.level: %w", err)
	}
	var enc zapcore.Encoder
	opts := []zap.Option{zap.AddCaller()}
	if l.Format == "console" {
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
		opts = append(opts, zap.AddStacktrace(zapcore.ErrorLevel))
	}
	var out zapcore.WriteSyncer = zapcore.Lock(os.Stderr)
	if l.File != "" {
		f, err := openLogFile(l.File)
		if err != nil {
			return nil, nil, err
		}
		out, reopen = f, f.Reopen
	}
	opts = append(opts, zap.ErrorOutput(out))
	return zap.New(zapcore.NewCore(enc, out, zap.NewAtomicLevelAt(lvl)), opts...), reopen, nil
}
