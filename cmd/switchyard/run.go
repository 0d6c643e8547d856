package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/check"
	"github.com/switchyard/switchyard/conf"
)

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("config", "switchyard.yaml", "config file")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long busy sessions may finish")
	skipCheck := fs.Bool("skip-check", false, "start even if the pre-flight check finds errors")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := conf.Load(*path)
	if err != nil {
		return err
	}
	log, reopenLog, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	// Signals are taken before anything listens: one that arrives while
	// the proxy starts (logrotate's SIGUSR1, a reload, a stop) waits for
	// the loop below instead of killing the process by default action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	if err := preflight(cfg, log, *skipCheck); err != nil {
		return err
	}
	app, err := start(cfg, log)
	if err != nil {
		return err
	}
	sdNotify("READY=1")
	return loop(app, *path, *drain, sigs, reopenLog, log)
}

// loop serves signals until a stop: SIGHUP reloads, SIGUSR1 reopens the
// log file, SIGTERM/SIGINT stop with a drain. A listener that stopped for
// good stops the process too, with an error (a non-zero exit: systemd
// restarts it).
func loop(app *app, path string, drain time.Duration, sigs chan os.Signal, reopenLog func() error, log *zap.Logger) error {
	for {
		var failure error
		select {
		case failure = <-app.failures:
			log.Error("stopping: a listener stopped for good", zap.Error(failure))
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				sdNotify("RELOADING=1")
				_ = app.reload(path)
				sdNotify("READY=1")
				continue
			case syscall.SIGUSR1:
				if reopenLog != nil {
					if err := reopenLog(); err != nil {
						fmt.Fprintln(os.Stderr, "switchyard: reopen log:", err)
					}
					log.Info("log file reopened")
				}
				continue
			}
		}
		sdNotify("STOPPING=1")
		log.Info("shutting down: draining sessions", zap.Duration("timeout", drain))
		stopBounded(app, drain, sigs, log)
		log.Info("stopped")
		return failure
	}
}

// stopGrace is how long a stop may take beyond the drain timeout: every
// step after the drain is bounded on its own (etcd, backends, clients
// that do not answer), and this is the backstop if one is not.
const stopGrace = 10 * time.Second

// stopBounded stops the app within drain + stopGrace, whatever is down;
// a second SIGTERM or SIGINT stops at once.
func stopBounded(a *app, drain time.Duration, sigs <-chan os.Signal, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	done := make(chan struct{})
	go func() { a.stop(ctx); close(done) }()
	backstop := time.NewTimer(drain + stopGrace)
	defer backstop.Stop()
	for {
		select {
		case <-done:
			return
		case sig := <-sigs:
			if sig == syscall.SIGTERM || sig == syscall.SIGINT {
				log.Warn("second signal: stopping without waiting")
				return
			}
		case <-backstop.C:
			log.Error("stop did not finish in time: exiting anyway", zap.Duration("waited", drain+stopGrace))
			return
		}
	}
}

// preflight runs the pre-flight check: errors stop start-up (unless
// skipped), warnings are logged.
func preflight(cfg *conf.Config, log *zap.Logger, skip bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := check.Run(ctx, cfg)
	for _, f := range r.Findings {
		fields := []zap.Field{zap.String("backend", f.Backend), zap.String("remedy", f.Remedy)}
		if f.Severity == check.Error {
			log.Error("pre-flight: "+f.Problem, fields...)
		} else {
			log.Warn("pre-flight: "+f.Problem, fields...)
		}
	}
	if r.Errors() > 0 && !skip {
		return fmt.Errorf("pre-flight check found %d error(s) (see the log, or run 'switchyard check'); use --skip-check to start anyway", r.Errors())
	}
	return nil
}
