package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Account is a login used on the servers.
type Account struct {
	User     string
	Password string
}

// Server is the static description of one backend.
type Server struct {
	Name   string
	Addr   string
	Weight int
}

// ErrNoMaster means no writable master is known.
var ErrNoMaster = errors.New("no writable master is known")

// Cluster owns the backend servers, the pools to them (one per server and
// account), and the current Topology: which server is the master, the
// epoch, and each server's health as last seen by the monitor. The
// topology is an immutable value swapped atomically, so routing reads it
// without locks; writers (monitor, failover, admin) serialise on mu.
type Cluster struct {
	mu      sync.RWMutex
	servers []Server
	topo    atomic.Pointer[Topology]
	// changed is closed and replaced whenever the topology changes, so
	// waiters can select on it.
	changed  chan struct{}
	inflight atomic.Int64 // statements running on the master
	openTx   atomic.Int64 // transactions open through the write gate
	// per-server counters, fixed at creation (servers added by reload
	// get theirs lazily under mu).
	counters map[string]*serverCounters
	pools    map[poolKey]*Pool
	opts     PoolOptions
	tls      *tls.Config
}

type poolKey struct {
	server string
	user   string
}

// NewCluster creates a cluster; master is the initial master's name.
func NewCluster(servers []Server, master string, opts PoolOptions, tlsConf *tls.Config) *Cluster {
	c := &Cluster{servers: servers, pools: map[poolKey]*Pool{}, opts: opts, tls: tlsConf, changed: make(chan struct{}),
		counters: map[string]*serverCounters{}}
	for _, s := range servers {
		c.counters[s.Name] = &serverCounters{}
	}
	t := &Topology{Master: master, Epoch: 1}
	for _, s := range servers {
		t.Servers = append(t.Servers, ServerState{Server: s, Health: Health{Up: true}})
	}
	c.topo.Store(t)
	return c
}

// Topology returns the current snapshot (never nil; do not modify it).
func (c *Cluster) Topology() *Topology { return c.topo.Load() }

// update applies f to a copy of the topology and publishes it.
func (c *Cluster) update(f func(t *Topology)) *Topology {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topo.Load().clone()
	f(t)
	c.topo.Store(t)
	close(c.changed)
	c.changed = make(chan struct{})
	return t
}

type serverCounters struct {
	routed   atomic.Uint64
	inflight atomic.Int64
}

func (c *Cluster) countersOf(name string) *serverCounters {
	c.mu.RLock()
	sc := c.counters[name]
	c.mu.RUnlock()
	if sc != nil {
		return sc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counters[name] == nil {
		c.counters[name] = &serverCounters{}
	}
	return c.counters[name]
}

// Begin counts a statement routed to a server, in flight until End.
func (c *Cluster) Begin(name string) *StatementCount {
	sc := c.countersOf(name)
	sc.routed.Add(1)
	sc.inflight.Add(1)
	return (*StatementCount)(sc)
}

// StatementCount is a statement counted in flight by Begin.
type StatementCount serverCounters

// End marks the statement finished.
func (sc *StatementCount) End() { sc.inflight.Add(-1) }

// Routed returns how many statements were routed to a server.
func (c *Cluster) Routed(name string) uint64 { return c.countersOf(name).routed.Load() }

// Drain waits (bounded by ctx) until no statement runs on a server.
func (c *Cluster) Drain(ctx context.Context, name string) error {
	sc := c.countersOf(name)
	for sc.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d statement(s) still running on %s: %w", sc.inflight.Load(), name, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// Changed returns a channel closed at the next topology change.
func (c *Cluster) Changed() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.changed
}

// SetEpoch sets the epoch (restored from persisted state at start-up).
func (c *Cluster) SetEpoch(e uint64) {
	c.update(func(t *Topology) { t.Epoch = e })
}

// SetNote records the failover engine's view of a server.
func (c *Cluster) SetNote(name string, diverged bool, note string) {
	c.update(func(t *Topology) {
		if s := t.server(name); s != nil {
			s.Diverged, s.Note = diverged, note
		}
	})
}

// SetMasterUnreachable flags (or clears) "the proxy cannot reach the
// master, the replicas can".
func (c *Cluster) SetMasterUnreachable(v bool) {
	if c.topo.Load().MasterUnreachable == v {
		return
	}
	c.update(func(t *Topology) { t.MasterUnreachable = v })
}

// Hold pauses new statements for the master and waits (bounded by ctx)
// for those already running to finish. Release or SetMaster ends it.
func (c *Cluster) Hold(ctx context.Context) error {
	c.update(func(t *Topology) { t.Holding = true })
	for c.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d statement(s) still running on the master: %w", c.inflight.Load(), ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// Release ends a hold without changing the master.
func (c *Cluster) Release() {
	c.update(func(t *Topology) { t.Holding, t.HoldingTransactions = false, false })
}

// TxOpened and TxClosed count the transactions open on the master (the
// sessions report them), so a switchover can let them finish first.
func (c *Cluster) TxOpened() { c.openTx.Add(1) }

// TxClosed: see TxOpened.
func (c *Cluster) TxClosed() { c.openTx.Add(-1) }

// OpenTransactions returns how many transactions are open on the master.
func (c *Cluster) OpenTransactions() int { return int(c.openTx.Load()) }

// DrainTransactions waits (bounded by ctx) until no transaction is open
// on the master, while a hold keeps new ones from starting; it returns
// how many are still open.
func (c *Cluster) DrainTransactions(ctx context.Context) int {
	for c.openTx.Load() > 0 {
		select {
		case <-ctx.Done():
			return int(c.openTx.Load())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return 0
}

// HoldTransactions extends a hold to the statements of open
// transactions, and waits (bounded by ctx) for those running to finish.
func (c *Cluster) HoldTransactions(ctx context.Context) error {
	c.update(func(t *Topology) { t.HoldingTransactions = true })
	return c.Hold(ctx)
}

// EnterMaster is called before a statement runs on the master: it waits
// (up to timeout) while writes are held, and counts the statement as in
// flight until LeaveMaster. bypass lets statements of an open transaction
// through (holding them would only make their transaction fail later).
// The common case (nothing held) allocates nothing.
func (c *Cluster) EnterMaster(timeout time.Duration, bypass bool) (master string, epoch uint64, err error) {
	var deadline <-chan time.Time
	for {
		t := c.topo.Load()
		if t.passes(bypass) {
			c.inflight.Add(1)
			if t2 := c.topo.Load(); t2 != t && !t2.passes(bypass) {
				c.inflight.Add(-1)
				continue
			}
			return t.Master, t.Epoch, nil
		}
		if deadline == nil {
			timer := time.NewTimer(timeout)
			defer timer.Stop()
			deadline = timer.C
		}
		select {
		case <-c.Changed():
		case <-deadline:
			return "", t.Epoch, fmt.Errorf("writes held for a topology change: waited %s", timeout)
		}
	}
}

// LeaveMaster ends what a successful EnterMaster began.
func (c *Cluster) LeaveMaster() { c.inflight.Add(-1) }

// WaitChange waits (bounded by ctx) for a topology with another epoch.
func (c *Cluster) WaitChange(ctx context.Context, epoch uint64) (*Topology, error) {
	for {
		t := c.topo.Load()
		if t.Epoch != epoch {
			return t, nil
		}
		select {
		case <-c.Changed():
		case <-ctx.Done():
			return t, ctx.Err()
		}
	}
}

// SetHealth records what the monitor saw of one server.
func (c *Cluster) SetHealth(name string, h Health) {
	c.update(func(t *Topology) {
		if s := t.server(name); s != nil {
			s.Health = h
		}
	})
}

// SetOffline takes a server out of routing (true) or puts it back.
func (c *Cluster) SetOffline(name string, offline bool) error {
	found := false
	c.update(func(t *Topology) {
		if s := t.server(name); s != nil {
			s.Offline, found = offline, true
		}
	})
	if !found {
		return fmt.Errorf("unknown backend %q", name)
	}
	return nil
}

// KillInUse closes the sockets of every connection to a server that a
// session holds, so statements blocked on a dead or hung server fail now
// instead of hanging.
func (c *Cluster) KillInUse(server string) int {
	n := 0
	for _, p := range c.PoolsOf(server) {
		n += p.KillInUse()
	}
	return n
}

// SetServers replaces the server list (config reload): new servers start
// with an unknown health, removed ones leave the topology (their pools are
// closed), weights and addresses are updated. The master cannot be removed.
func (c *Cluster) SetServers(servers []Server) error {
	t := c.topo.Load()
	found := false
	for _, s := range servers {
		if s.Name == t.Master {
			found = true
		}
	}
	if t.Master != "" && !found {
		return fmt.Errorf("cannot remove the current master %s: switch over first", t.Master)
	}
	var removed []string
	c.update(func(t *Topology) {
		old := map[string]ServerState{}
		for _, st := range t.Servers {
			old[st.Name] = st
		}
		t.Servers = nil
		for _, s := range servers {
			st, ok := old[s.Name]
			if !ok {
				st = ServerState{Health: Health{Up: false, Err: "not checked yet"}}
			}
			st.Server = s
			t.Servers = append(t.Servers, st)
			delete(old, s.Name)
		}
		for name := range old {
			removed = append(removed, name)
		}
	})
	c.mu.Lock()
	c.servers = append([]Server(nil), servers...)
	var closing []*Pool
	for k, p := range c.pools {
		for _, name := range removed {
			if k.server == name {
				closing = append(closing, p)
				delete(c.pools, k)
			}
		}
	}
	c.mu.Unlock()
	for _, p := range closing {
		p.Close()
	}
	return nil
}

// Servers returns a copy of the server list.
func (c *Cluster) Servers() []Server {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]Server(nil), c.servers...)
}

// Master returns the current master's name and the topology epoch.
func (c *Cluster) Master() (string, uint64) {
	t := c.topo.Load()
	return t.Master, t.Epoch
}

// SetMaster retargets writes to name and bumps the epoch. Connections
// already handed out to the old master stay with their sessions, which
// compare epochs before reuse.
func (c *Cluster) SetMaster(name string) uint64 {
	return c.update(func(t *Topology) {
		t.Master = name
		t.Epoch++
		t.Holding, t.HoldingTransactions = false, false
		t.MasterUnreachable = false
	}).Epoch
}

// SetMasterEpoch adopts a master and epoch decided elsewhere (another
// instance, through coordination). Older or equal epochs are ignored;
// it reports whether the topology changed.
func (c *Cluster) SetMasterEpoch(name string, epoch uint64) bool {
	changed := false
	c.update(func(t *Topology) {
		if epoch > t.Epoch || (epoch == t.Epoch && name != t.Master && t.Master == "") {
			t.Master, t.Epoch, t.Holding, t.HoldingTransactions, t.MasterUnreachable = name, epoch, false, false, false
			changed = true
		}
	})
	return changed
}

// Acquire takes a connection to a named server for an account, of the
// given variant, preferring one parked with tag (see Pool.AcquireTagged).
func (c *Cluster) Acquire(ctx context.Context, server string, a Account, v Variant, tag string) (*Conn, error) {
	p, err := c.Pool(server, a)
	if err != nil {
		return nil, err
	}
	return p.AcquireTagged(ctx, v, tag)
}

// Return gives a connection back to its pool, which resets it (or
// closes it when broken). A connection from outside a pool is closed.
func (c *Cluster) Return(bc *Conn) {
	if bc.pool == nil {
		_ = bc.Close()
		return
	}
	bc.pool.Release(bc)
}

// Park gives a connection back without a reset, tagged with the state
// left on it (multiplexing; see Pool.Park).
func (c *Cluster) Park(bc *Conn, tag string) {
	if bc.pool == nil {
		_ = bc.Close()
		return
	}
	bc.pool.Park(bc, tag)
}

// CloseIdle closes the idle connections to a server (they may have died
// with it: a restart).
func (c *Cluster) CloseIdle(server string) {
	for _, p := range c.PoolsOf(server) {
		p.CloseIdle()
	}
}

// Pool returns the pool to a named server for an account.
func (c *Cluster) Pool(server string, a Account) (*Pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.poolLocked(server, a)
}

func (c *Cluster) poolLocked(server string, a Account) (*Pool, error) {
	k := poolKey{server, a.User}
	if p, ok := c.pools[k]; ok {
		return p, nil
	}
	for _, s := range c.servers {
		if s.Name == server {
			p := NewPool(s.Name, DialOptions{Addr: s.Addr, User: a.User, Password: a.Password, TLS: c.tls}, c.opts)
			c.pools[k] = p
			return p, nil
		}
	}
	return nil, fmt.Errorf("unknown backend %q", server)
}

// PoolsOf returns every pool open to a server (all accounts).
func (c *Cluster) PoolsOf(server string) []*Pool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*Pool
	for k, p := range c.pools {
		if k.server == server {
			out = append(out, p)
		}
	}
	return out
}

// Close closes every pool.
func (c *Cluster) Close() {
	c.mu.Lock()
	pools := c.pools
	c.pools = map[poolKey]*Pool{}
	c.mu.Unlock()
	for _, p := range pools {
		p.Close()
	}
}
