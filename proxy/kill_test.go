package proxy

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/backend"
)

// TestKillAimsAtOneStatement: a kill (a query_timeout timer firing late,
// an admin KILL QUERY racing the statement's end) names the statement it
// was aimed at; once that statement ended, it does nothing to the next
// one on the same backend thread.
func TestKillAimsAtOneStatement(t *testing.T) {
	f := newFakeBackends()
	s := newFakeSession(t, f)
	b := f.backends()
	bc, err := f.Acquire(t.Context(), "m", backend.Account{}, backend.Variant{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	c := &s.ctl
	first := c.start(b, "m", bc, backend.Account{}, 0, "query_timeout")
	if why := c.stop(first); why != "" {
		t.Fatalf("a statement nobody killed reports %q", why)
	}
	second := c.start(b, "m", bc, backend.Account{}, 0, "query_timeout")
	// The first statement's timer fires only now.
	if err := c.kill(first.seq, "query_timeout exceeded", false); err != nil {
		t.Fatal(err)
	}
	if got := f.servers["m"].received("KILL"); len(got) != 0 {
		t.Fatalf("a kill aimed at the statement that ended reached the server: %q", got)
	}
	if why := c.stop(second); why != "" {
		t.Fatalf("the next statement was marked killed: %q", why)
	}
	// A kill aimed at the running statement does reach the server.
	third := c.start(b, "m", bc, backend.Account{}, 0, "query_timeout")
	if err := c.kill(third.seq, "query_timeout exceeded", false); err != nil {
		t.Fatal(err)
	}
	if got := f.servers["m"].received("KILL QUERY"); len(got) != 1 {
		t.Fatalf("the kill of the running statement sent %q", got)
	}
	if why := c.stop(third); why != "query_timeout exceeded" {
		t.Fatalf("the killed statement reports %q", why)
	}
}

// TestQueryTimerStoppedWithItsStatement: the timer of a statement that
// ended never kills the statement after it (a timer may still fire
// before its own statement ended on a slow machine: that kill is legit
// and reported by that statement).
func TestQueryTimerStoppedWithItsStatement(t *testing.T) {
	f := newFakeBackends()
	s := newFakeSession(t, f)
	b := f.backends()
	bc, err := f.Acquire(t.Context(), "m", backend.Account{}, backend.Variant{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	c := &s.ctl
	killedInTime := 0
	for range 50 {
		run := c.start(b, "m", bc, backend.Account{}, time.Millisecond, "query_timeout")
		if c.stop(run) != "" {
			killedInTime++
		}
		next := c.start(b, "m", bc, backend.Account{}, 0, "query_timeout")
		time.Sleep(2 * time.Millisecond) // a late timer fires now, if at all
		if why := c.stop(next); why != "" {
			t.Fatalf("a statement without a timeout was killed: %q", why)
		}
	}
	if got := f.servers["m"].received("KILL"); len(got) != killedInTime {
		t.Fatalf("%d kills reached the server, %d statements were killed while they ran", len(got), killedInTime)
	}
}
