package failover

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/backend"
)

// fakeServers plays the servers of a topology for the engine: each has a
// role (writable or not, which master it follows) and a GTID position.
// Every call is logged in order; failures are scripted per call.
type fakeServers struct {
	mu      sync.Mutex
	servers map[string]*fakeServer // by address
	calls   []string
	// fail makes a call fail: "Promote db2" → error. halfway makes
	// Promote fail after the server became writable.
	fail    map[string]error
	halfway map[string]bool
	// detached lists Detach calls apart: they run in the background, in
	// no fixed order with the calls in calls.
	detached []string
}

type fakeServer struct {
	name      string
	down      bool
	writable  bool
	follows   string // address of its master, "" when none
	position  backend.Position
	connsKill int // client connections killed by fences
}

func newFakeServers() *fakeServers {
	return &fakeServers{servers: map[string]*fakeServer{}, fail: map[string]error{}, halfway: map[string]bool{}}
}

// add puts a server at addr; master "" makes it writable.
func (f *fakeServers) add(name, addr, master, pos string) {
	p, _ := backend.ParsePosition(pos)
	f.servers[addr] = &fakeServer{name: name, writable: master == "", follows: master, position: p}
}

func (f *fakeServers) call(op, addr string) (*fakeServer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.servers[addr]
	name := addr
	if s != nil {
		name = s.name
	}
	f.calls = append(f.calls, op+" "+name)
	if err := f.fail[op+" "+name]; err != nil {
		return s, err
	}
	if s == nil || s.down {
		return s, fmt.Errorf("dial tcp %s: connection refused", addr)
	}
	return s, nil
}

// changes lists the calls that change a server (not Inspect/Verify).
func (f *fakeServers) changes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if !strings.HasPrefix(c, "Inspect") && !strings.HasPrefix(c, "Verify") && !strings.HasPrefix(c, "WaitApplied") {
			out = append(out, c)
		}
	}
	return out
}

// writable lists the servers that take writes, sorted.
func (f *fakeServers) writable() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.servers {
		if s.writable && !s.down {
			out = append(out, s.name)
		}
	}
	sort.Strings(out)
	return out
}

func (f *fakeServers) follows(addr string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.servers[addr].follows
}

func (f *fakeServers) Inspect(_ context.Context, addr string) (Replica, error) {
	s, err := f.call("Inspect", addr)
	if err != nil {
		return Replica{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := Replica{Reachable: true, Applied: s.position, Current: s.position}
	if s.follows != "" {
		if m := f.servers[s.follows]; m != nil && !m.down {
			r.IOConnected = true
		}
		r.Received = s.position
	}
	return r, nil
}

func (f *fakeServers) Fence(_ context.Context, addr string, kill bool) error {
	s, err := f.call("Fence", addr)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s.writable = false
	if kill {
		s.connsKill++
	}
	return nil
}

func (f *fakeServers) Unfence(_ context.Context, addr string) error {
	s, err := f.call("Unfence", addr)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s.writable = true
	return nil
}

func (f *fakeServers) WaitApplied(_ context.Context, addr string, pos backend.Position, _ time.Duration) error {
	s, err := f.call("WaitApplied", addr)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !s.position.Covers(pos) {
		return fmt.Errorf("%s did not apply %s", addr, pos)
	}
	return nil
}

func (f *fakeServers) Promote(_ context.Context, addr string) error {
	s, err := f.call("Promote", addr)
	f.mu.Lock()
	defer f.mu.Unlock()
	if s != nil && f.halfway[s.name] {
		s.follows, s.writable = "", true
		return errors.New("promote failed after read_only=0 (connection lost)")
	}
	if err != nil {
		return err
	}
	s.follows, s.writable = "", true
	return nil
}

func (f *fakeServers) Detach(_ context.Context, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.servers[addr]
	if s == nil || s.down {
		return fmt.Errorf("dial tcp %s: connection refused", addr)
	}
	f.detached = append(f.detached, s.name)
	s.follows = "" // stopped: it fetches from nobody until Follow
	return nil
}

func (f *fakeServers) Follow(_ context.Context, addr, master string, _ bool) error {
	s, err := f.call("Follow", addr)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s.writable, s.follows = false, master
	return nil
}

func (f *fakeServers) Verify(_ context.Context, addr string, _ time.Duration) error {
	_, err := f.call("Verify", addr)
	return err
}

// fakeCoordinator records changes; commitErr makes Commit fail.
type fakeCoordinator struct {
	commitErr error
	aborted   int
	epoch     uint64
}

func (c *fakeCoordinator) Leader() bool  { return true }
func (c *fakeCoordinator) Healthy() bool { return true }
func (c *fakeCoordinator) Begin(_ context.Context, kind, old, cand string, prev uint64) (Ticket, error) {
	c.epoch = prev
	return kind + ":" + old + "->" + cand, nil
}
func (c *fakeCoordinator) Commit(context.Context, Ticket, string) (uint64, error) {
	if c.commitErr != nil {
		return 0, c.commitErr
	}
	c.epoch++
	return c.epoch, nil
}
func (c *fakeCoordinator) Abort(context.Context, Ticket)             { c.aborted++ }
func (c *fakeCoordinator) ClearStale(context.Context) (string, bool) { return "", false }
