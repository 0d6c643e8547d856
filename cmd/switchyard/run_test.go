package main

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestListenerFailureStopsTheProcess: a listener whose accept loop ends
// for good (not closed by a stop) marks the process not ready first
// (/readyz answers 503 with the reason), then ends the main loop with an
// error: a non-zero exit, which systemd restarts.
func TestListenerFailureStopsTheProcess(t *testing.T) {
	a := &app{log: zap.NewNop(), failures: make(chan error, 3)}
	stopped := make(chan struct{})
	a.listen("client", func() error { return errors.New("accept tcp 127.0.0.1:3307: bad file descriptor") })
	a.listen("admin", func() error { <-stopped; return nil }) // closed by the stop: not a failure
	done := make(chan error, 1)
	go func() { done <- loop(a, "", time.Second, make(chan os.Signal), nil, zap.NewNop()) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the main loop goes on after a listener died")
	}
	close(stopped)
	if err == nil || !strings.Contains(err.Error(), "client listener stopped") {
		t.Fatalf("main loop ended with %v, want the listener's failure", err)
	}
	if ok, why := (metricSources{a}).Serving(); ok || !strings.Contains(why, "bad file descriptor") {
		t.Fatalf("readiness after the failure: %v %q", ok, why)
	}
}
