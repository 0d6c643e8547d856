package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// MonitorOptions tune health checks.
type MonitorOptions struct {
	Account  Account
	Interval time.Duration
	// Timeout bounds one whole check (connect and queries).
	Timeout time.Duration
	// FailCount consecutive failures make a server "down": statements
	// running on it are then cut (KillInUse) instead of hanging.
	FailCount int
}

func (o MonitorOptions) withDefaults() MonitorOptions {
	if o.FailCount < 1 {
		o.FailCount = 1
	}
	return o
}

// Monitor checks every server of a cluster periodically and publishes
// what it sees into the cluster's topology. One goroutine per server,
// each with its own monitor connection; every goroutine lives under the
// context Start was given, watchers a reload adds included.
type Monitor struct {
	cluster *Cluster
	opts    atomic.Pointer[MonitorOptions]
	log     *zap.Logger

	mu      sync.Mutex
	ctx     context.Context // Start's; nil before
	cancel  context.CancelFunc
	running map[string]*watcher
	wg      sync.WaitGroup
	// OnCheck, if set (before Start), is called after each check.
	OnCheck func(name string, h Health)
}

// watcher is one server's check loop.
type watcher struct {
	server Server
	cancel context.CancelFunc
	now    chan struct{} // a check is wanted before the next tick
}

// NewMonitor prepares a monitor; Start launches it.
func NewMonitor(c *Cluster, opts MonitorOptions, log *zap.Logger) *Monitor {
	m := &Monitor{cluster: c, log: log, running: map[string]*watcher{}}
	m.SetOptions(opts)
	return m
}

// SetOptions changes the account, interval, timeout and failure count;
// each watcher uses them from its next check (a reload).
func (m *Monitor) SetOptions(o MonitorOptions) {
	o = o.withDefaults()
	if cur := m.opts.Load(); cur != nil && *cur == o {
		return
	}
	m.opts.Store(&o)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		return
	}
	for name, w := range m.running { // a new account or timeout needs a new connection
		w.cancel()
		delete(m.running, name)
		m.startLocked(w.server, nil)
	}
}

// Start checks each server once synchronously (so routing starts with a
// real picture), then keeps checking in the background until Stop or the
// end of ctx.
func (m *Monitor) Start(ctx context.Context) {
	var first sync.WaitGroup
	m.mu.Lock()
	m.ctx, m.cancel = context.WithCancel(ctx)
	for _, s := range m.cluster.Topo.Servers() {
		first.Add(1)
		m.startLocked(s, &first)
	}
	m.mu.Unlock()
	first.Wait()
}

func (m *Monitor) startLocked(s Server, first *sync.WaitGroup) {
	ctx, cancel := context.WithCancel(m.ctx)
	w := &watcher{server: s, cancel: cancel, now: make(chan struct{}, 1)}
	m.running[s.Name] = w
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.watch(ctx, w, first)
	}()
}

// Sync starts checks for servers added to the cluster, stops those of
// removed servers and restarts those whose address changed (a reload).
func (m *Monitor) Sync() {
	want := map[string]Server{}
	for _, s := range m.cluster.Topo.Servers() {
		want[s.Name] = s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		return
	}
	for name, w := range m.running {
		if s, ok := want[name]; !ok || s.Addr != w.server.Addr {
			w.cancel()
			delete(m.running, name)
		}
	}
	for name, s := range want {
		if _, ok := m.running[name]; !ok {
			m.startLocked(s, nil)
		}
	}
}

// CheckNow asks for a check of a server at once instead of at its next
// tick: a session that saw its connection refused has evidence the
// monitor should confirm now.
func (m *Monitor) CheckNow(name string) {
	m.mu.Lock()
	w := m.running[name]
	m.mu.Unlock()
	if w == nil {
		return
	}
	select {
	case w.now <- struct{}{}:
	default:
	}
}

// Stop ends all checks and waits for them.
func (m *Monitor) Stop() {
	m.mu.Lock()
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

func (m *Monitor) watch(ctx context.Context, w *watcher, first *sync.WaitGroup) {
	s := w.server
	opts := m.opts.Load()
	db, err := sql.Open("mysql", MonitorDSN(s.Addr, opts.Account, opts.Timeout))
	if err != nil {
		m.log.Error("monitor: bad DSN", zap.String("backend", s.Name), zap.Error(err))
		if first != nil {
			first.Done()
		}
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(time.Hour)
	o := observer{m: m, name: s.Name, prev: Health{Up: true}, caughtUp: time.Now()}
	for {
		o.observe(m.check(ctx, db, s, o.prev))
		if first != nil {
			first.Done()
			first = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.opts.Load().Interval):
		case <-w.now:
		}
	}
}

// observer follows one server's checks: lag estimate, log lines on
// changes, and cutting statements once per outage.
type observer struct {
	m        *Monitor
	name     string
	prev     Health
	cut      bool      // statements on the server were cut in this outage
	caughtUp time.Time // last time this server had all the master had
}

func (o *observer) observe(h Health) {
	m := o.m
	h.BehindFor = -1
	if h.Up && h.Replica != nil {
		t := m.cluster.Topology()
		if ms := t.Server(t.Master); ms == nil || h.Applied.Covers(ms.Current) || (h.Replica.SecondsBehind != nil && *h.Replica.SecondsBehind == 0) {
			o.caughtUp = h.CheckedAt
		}
		h.BehindFor = int64(h.CheckedAt.Sub(o.caughtUp).Seconds())
	}
	m.cluster.Topo.SetHealth(o.name, h)
	if o.prev.Up != h.Up {
		if h.Up {
			m.log.Info("backend up", zap.String("backend", o.name))
		} else {
			m.log.Warn("backend down", zap.String("backend", o.name), zap.String("error", h.Err))
		}
	}
	// Once per outage: at once when refused, else after FailCount
	// failures (a hung server still accepts TCP).
	if h.Up {
		o.cut = false
	} else if !o.cut && (h.Failures >= m.opts.Load().FailCount || h.Refused) {
		o.cut = true
		if n := m.cluster.Pools.KillInUse(o.name); n > 0 {
			m.log.Warn("cut statements running on a failed backend", zap.String("backend", o.name), zap.Int("connections", n))
		}
	}
	if m.OnCheck != nil {
		m.OnCheck(o.name, h)
	}
	o.prev = h
}

// check runs one health check under the monitor timeout.
func (m *Monitor) check(ctx context.Context, db *sql.DB, s Server, prev Health) Health {
	cctx, cancel := context.WithTimeout(ctx, m.opts.Load().Timeout)
	defer cancel()
	h := Health{CheckedAt: time.Now(), Flavor: prev.Flavor}
	if err := h.read(cctx, db); err != nil {
		h.Flavor = prev.Flavor
		h.Up, h.Err, h.Failures = false, describe(err), prev.Failures+1
		h.Refused = errors.Is(err, syscall.ECONNREFUSED)
		return h
	}
	h.Up = true
	return h
}

// read fills h from one round of queries. The flavour is known from the
// last check (the health query differs); the first check, or one after
// the server changed, asks for @@version first.
func (h *Health) read(ctx context.Context, db *sql.DB) error {
	if h.Flavor == "" {
		var version string
		if err := db.QueryRowContext(ctx, "SELECT @@version").Scan(&version); err != nil {
			return err
		}
		h.Flavor = FlavorFromVersion(version)
	}
	var version, slavePos, currentPos string
	if err := db.QueryRowContext(ctx, h.Flavor.HealthSQL()).
		Scan(&version, &h.ReadOnly, &h.ServerID, &slavePos, &currentPos); err != nil {
		if ServerErrorCode(err) == ErUnknownSystemVariable {
			h.Flavor = "" // another flavour now: ask again next time
		}
		return err
	}
	h.Flavor = FlavorFromVersion(version)
	var err error
	if h.Applied, err = ParsePosition(slavePos); err != nil {
		return fmt.Errorf("applied position %q: %w", slavePos, err)
	}
	if h.Current, err = ParsePosition(currentPos); err != nil {
		return fmt.Errorf("current position %q: %w", currentPos, err)
	}
	rs, ok, err := QueryReplicaStatus(ctx, db, h.Flavor)
	if err != nil {
		return err
	}
	if ok && rs.MasterHost != "" {
		h.Replica = &rs
		if h.Received, err = ParsePosition(rs.GTIDReceived); err != nil {
			return fmt.Errorf("received position %q: %w", rs.GTIDReceived, err)
		}
	}
	return nil
}

// describe turns driver errors into short operator-readable text.
func describe(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return fmt.Sprint(err)
}
