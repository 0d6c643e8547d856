package failover

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// Settings configure the engine.
type Settings struct {
	Enabled      bool
	Cooldown     time.Duration
	ApplyTimeout time.Duration
	Interval     time.Duration
	FailCount    int
	StateFile    string
	Hooks        Hooks
	Timeouts     Timeouts
	// SwitchoverDrain: how long a switchover lets open transactions
	// finish before it fences the master.
	SwitchoverDrain time.Duration
	// Servers in config order with their promotion flags.
	Servers []ServerConfig
}

// Timeouts bound the steps of a topology change and the engine's other
// round trips. Zero values take the defaults of DefaultTimeouts.
type Timeouts struct {
	Hold       time.Duration // statements running on the master finish (then, in a failover, they are cut)
	Inspect    time.Duration // reading one server's replication state
	Fence      time.Duration // making the old master read-only
	Promote    time.Duration // making the candidate a writable master
	Repoint    time.Duration // pointing one server at the new master
	Verify     time.Duration // until a repointed server's threads run
	Coordinate time.Duration // one round trip to the coordination store
	Undo       time.Duration // undoing an aborted change, all steps
	Rejoin     time.Duration // making a returning server a replica
}

// DefaultTimeouts are the step bounds used where none is configured.
func DefaultTimeouts() Timeouts {
	return Timeouts{Hold: 2 * time.Second, Inspect: 3 * time.Second, Fence: 3 * time.Second, Promote: 10 * time.Second,
		Repoint: 10 * time.Second, Verify: 5 * time.Second, Coordinate: 5 * time.Second, Undo: 15 * time.Second,
		Rejoin: 15 * time.Second}
}

// withDefaults fills zero timeouts.
func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	for _, f := range []struct{ v, def *time.Duration }{{&t.Hold, &d.Hold}, {&t.Inspect, &d.Inspect}, {&t.Fence, &d.Fence},
		{&t.Promote, &d.Promote}, {&t.Repoint, &d.Repoint}, {&t.Verify, &d.Verify}, {&t.Coordinate, &d.Coordinate},
		{&t.Undo, &d.Undo}, {&t.Rejoin, &d.Rejoin}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

// ServerConfig is the promotion-relevant part of a backend's config.
type ServerConfig struct {
	Name      string
	Addr      string
	Candidate bool
	NoMaster  bool
}

// Hooks are shell commands run around topology changes.
type Hooks struct {
	PreFailover, PostFailover, PostSwitchover string
	Timeout                                   time.Duration
}

// Engine detects a dead master, confirms it, promotes the best replica and
// keeps the topology healthy afterwards (rejoining old masters). One
// topology change runs at a time (mu); Run's goroutine drives automatic
// actions, the admin port calls Switchover and Failover.
type Engine struct {
	cluster *backend.Cluster
	act     Servers
	set     Settings
	log     *zap.Logger

	mu         sync.Mutex   // one topology change at a time
	lastChange atomic.Int64 // unix nanoseconds of the last topology change
	history    []Record
	histMu     sync.Mutex
	noted      map[string]string // last message logged per condition, to log changes once
	nextRejoin map[string]time.Time
	wake       chan struct{}
	coord      Coordinator // nil: this instance runs alone
	serversMu  sync.Mutex
}

// New builds an engine acting on servers through act.
func New(c *backend.Cluster, act Servers, set Settings, log *zap.Logger) *Engine {
	set.Timeouts = set.Timeouts.withDefaults()
	e := &Engine{cluster: c, act: act, set: set, log: log, noted: map[string]string{}, nextRejoin: map[string]time.Time{},
		wake: make(chan struct{}, 1)}
	e.loadState()
	return e
}

// SetCoordinator makes the engine share decisions with other instances:
// only the leader acts on its own, and every change is recorded and
// published with compare-and-swap. Call before Run.
func (e *Engine) SetCoordinator(c Coordinator) { e.coord = c }

// ErrBusy is returned when another topology change is running.
var ErrBusy = errors.New("another failover or switchover is in progress")

// Run watches the topology until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.set.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.wake:
		}
		e.tick(ctx)
	}
}

// Notify asks the engine to look at the topology now (the monitor calls
// it when the master fails a check), instead of at its next tick.
func (e *Engine) Notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// noteOnce logs msg for key only when it changed since last time.
func (e *Engine) noteOnce(key, msg string, fields ...zap.Field) {
	if e.noted[key] == msg {
		return
	}
	e.noted[key] = msg
	if msg != "" {
		e.log.Warn(msg, fields...)
	}
}

func (e *Engine) tick(ctx context.Context) {
	if e.coord != nil {
		if !e.coord.Leader() {
			return // followers only monitor; the leader acts
		}
		cctx, cancel := context.WithTimeout(ctx, e.set.Timeouts.Coordinate)
		if what, ok := e.coord.ClearStale(cctx); ok {
			e.log.Warn("cleared a topology change left unfinished by a dead instance; redoing from the servers' state", zap.String("change", what))
		}
		cancel()
	}
	topo := e.cluster.Topology()
	master := topo.Server(topo.Master)
	if master != nil && !master.Up && (master.Failures >= e.set.FailCount || master.Refused) {
		e.autoFailover(ctx, topo)
		return
	}
	e.noted["suspect"] = ""
	if master != nil && master.Up {
		e.cluster.SetMasterUnreachable(false)
		e.rejoinStrays(ctx)
	}
}

func (e *Engine) autoFailover(ctx context.Context, topo *backend.Topology) {
	master := topo.Server(topo.Master)
	switch {
	case !e.set.Enabled:
		e.noteOnce("suspect", "master is down and automatic failover is disabled", zap.String("master", topo.Master))
		return
	case e.lastChange.Load() != 0 && time.Since(time.Unix(0, e.lastChange.Load())) < e.set.Cooldown:
		e.noteOnce("suspect", "master is down but the last topology change is within failover.cooldown: not failing over automatically",
			zap.String("master", topo.Master), zap.Duration("cooldown", e.set.Cooldown))
		return
	}
	replicas := e.inspectReplicas(ctx, topo)
	v := Confirm(replicas, master.ServerID)
	if !v.Dead {
		e.cluster.SetMasterUnreachable(true)
		e.noteOnce("suspect", "master unreachable from the proxy, no failover: "+v.Reason, zap.String("master", topo.Master))
		return
	}
	if _, err := e.Failover(ctx, "", "automatic: "+v.Reason, false); err != nil {
		e.noteOnce("suspect", "automatic failover failed: "+err.Error(), zap.String("master", topo.Master))
	}
}

// inspectReplicas asks every server but the master for its state now.
func (e *Engine) inspectReplicas(ctx context.Context, topo *backend.Topology) []Replica {
	var out []Replica
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, sc := range e.servers() {
		if sc.Name == topo.Master {
			continue
		}
		if st := topo.Server(sc.Name); st != nil && (st.Diverged || st.Offline) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, e.set.Timeouts.Inspect)
			defer cancel()
			r, err := e.act.Inspect(cctx, sc.Addr)
			r.Name, r.Order, r.Candidate, r.NoMaster = sc.Name, i, sc.Candidate, sc.NoMaster
			if err != nil {
				r.Reachable = false
			}
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// SetServers updates the servers' promotion settings (config reload).
func (e *Engine) SetServers(list []ServerConfig) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.serversMu.Lock()
	e.set.Servers = list
	e.serversMu.Unlock()
}

func (e *Engine) servers() []ServerConfig {
	e.serversMu.Lock()
	defer e.serversMu.Unlock()
	return e.set.Servers
}

func (e *Engine) server(name string) ServerConfig {
	for _, s := range e.servers() {
		if s.Name == name {
			return s
		}
	}
	return ServerConfig{Name: name}
}
