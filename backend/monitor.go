package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"sync"
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

// Monitor checks every server of a cluster periodically and publishes
// what it sees into the cluster's topology. One goroutine per server,
// each with its own monitor connection.
type Monitor struct {
	cluster *Cluster
	opts    MonitorOptions
	log     *zap.Logger

	mu      sync.Mutex
	cancel  context.CancelFunc
	running map[string]context.CancelFunc
	wg      sync.WaitGroup
	// OnCheck, if set, is called after each check (tests, failover).
	OnCheck func(name string, h Health)
}

// NewMonitor prepares a monitor; Start launches it.
func NewMonitor(c *Cluster, opts MonitorOptions, log *zap.Logger) *Monitor {
	if opts.FailCount < 1 {
		opts.FailCount = 1
	}
	return &Monitor{cluster: c, opts: opts, log: log, running: map[string]context.CancelFunc{}}
}

// Start checks each server once synchronously (so routing starts with a
// real picture), then keeps checking in the background.
func (m *Monitor) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	m.mu.Lock()
	m.cancel = cancel
	m.mu.Unlock()
	var first sync.WaitGroup
	for _, s := range m.cluster.Servers() {
		first.Add(1)
		m.startServer(ctx, s, &first)
	}
	first.Wait()
}

func (m *Monitor) startServer(ctx context.Context, s Server, first *sync.WaitGroup) {
	sctx, cancel := context.WithCancel(ctx)
	m.mu.Lock()
	m.running[s.Name] = cancel
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.watch(sctx, s, first)
	}()
}

// Sync starts checks for servers added to the cluster and stops those of
// removed servers (config reload).
func (m *Monitor) Sync(ctx context.Context) {
	want := map[string]Server{}
	for _, s := range m.cluster.Servers() {
		want[s.Name] = s
	}
	m.mu.Lock()
	var stop []context.CancelFunc
	for name, cancel := range m.running {
		if _, ok := want[name]; !ok {
			stop = append(stop, cancel)
			delete(m.running, name)
		}
	}
	var start []Server
	for name, s := range want {
		if _, ok := m.running[name]; !ok {
			start = append(start, s)
		}
	}
	m.mu.Unlock()
	for _, cancel := range stop {
		cancel()
	}
	for _, s := range start {
		var wg sync.WaitGroup
		wg.Add(1)
		m.startServer(ctx, s, &wg)
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

func (m *Monitor) watch(ctx context.Context, s Server, first *sync.WaitGroup) {
	db, err := sql.Open("mysql", MonitorDSN(s.Addr, m.opts.Account, m.opts.Timeout))
	if err != nil {
		m.log.Error("monitor: bad DSN", zap.String("backend", s.Name), zap.Error(err))
		first.Done()
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(time.Hour)
	prev := Health{Up: true}
	cut := false
	caughtUp := time.Now() // last time this server had all the master had
	tick := time.NewTicker(m.opts.Interval)
	defer tick.Stop()
	for {
		h := m.check(ctx, db, s, prev)
		h.BehindFor = -1
		if h.Up && h.Replica != nil {
			t := m.cluster.Topology()
			if ms := t.Server(t.Master); ms == nil || h.Applied.Covers(ms.Current) || (h.Replica.SecondsBehind != nil && *h.Replica.SecondsBehind == 0) {
				caughtUp = h.CheckedAt
			}
			h.BehindFor = int64(h.CheckedAt.Sub(caughtUp).Seconds())
		}
		m.cluster.SetHealth(s.Name, h)
		if first != nil {
			first.Done()
			first = nil
		}
		if prev.Up != h.Up {
			if h.Up {
				m.log.Info("backend up", zap.String("backend", s.Name))
			} else {
				m.log.Warn("backend down", zap.String("backend", s.Name), zap.String("error", h.Err))
			}
		}
		// Once per outage: at once when refused, else after FailCount
		// failures (a hung server still accepts TCP).
		if h.Up {
			cut = false
		} else if !cut && (h.Failures >= m.opts.FailCount || h.Refused) {
			cut = true
			if n := m.cluster.KillInUse(s.Name); n > 0 {
				m.log.Warn("cut statements running on a failed backend", zap.String("backend", s.Name), zap.Int("connections", n))
			}
		}
		if m.OnCheck != nil {
			m.OnCheck(s.Name, h)
		}
		prev = h
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check runs one health check under the monitor timeout.
func (m *Monitor) check(ctx context.Context, db *sql.DB, s Server, prev Health) Health {
	cctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	h := Health{CheckedAt: time.Now()}
	err := func() error {
		// The flavour is known from the last check (the health query
		// differs); the first check, or one after the server changed,
		// asks for @@version first.
		h.Flavor = prev.Flavor
		if h.Flavor == "" {
			var version string
			if err := db.QueryRowContext(cctx, "SELECT @@version").Scan(&version); err != nil {
				return err
			}
			h.Flavor = FlavorFromVersion(version)
		}
		var version, slavePos, currentPos string
		if err := db.QueryRowContext(cctx, h.Flavor.HealthSQL()).
			Scan(&version, &h.ReadOnly, &h.ServerID, &slavePos, &currentPos); err != nil {
			if ServerErrorCode(err) == ErUnknownSystemVariable {
				h.Flavor = "" // another flavour now: ask again next time
			}
			return err
		}
		h.Flavor = FlavorFromVersion(version)
		var err error
		if h.Applied, err = ParsePosition(slavePos); err != nil {
			return err
		}
		if h.Current, err = ParsePosition(currentPos); err != nil {
			return err
		}
		rs, ok, err := QueryReplicaStatus(cctx, db, h.Flavor)
		if err != nil {
			return err
		}
		if ok && rs.MasterHost != "" {
			h.Replica = &rs
		}
		return nil
	}()
	if err != nil {
		h.Flavor = prev.Flavor
		h.Up, h.Err, h.Failures = false, describe(err), prev.Failures+1
		h.Refused = errors.Is(err, syscall.ECONNREFUSED)
		return h
	}
	h.Up = true
	return h
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
