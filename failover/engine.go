package failover

import (
	"context"
	"errors"
	"fmt"
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
	// State, when set, persists the epoch and history (shared by the
	// engines of every cluster).
	State    *StateFile
	Hooks    Hooks
	Timeouts Timeouts
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
	// set is swapped whole by a reload (SetSettings); a change in
	// progress keeps the settings it started with.
	set atomic.Pointer[Settings]
	log *zap.Logger

	mu         sync.Mutex   // one topology change at a time
	lastChange atomic.Int64 // unix nanoseconds of the last topology change
	// lastAuto is when the last automatic failover succeeded: only it
	// starts failover.cooldown (a switchover or an operator's FAILOVER
	// does not switch automatic failover off).
	lastAuto atomic.Int64
	// blocked says why a dead master is not being replaced ("" when
	// nothing blocks it); also in the topology, for every surface.
	blocked    atomic.Pointer[Blocked]
	history    []Record
	histMu     sync.Mutex
	noted      map[string]string // last message logged per condition, to log changes once
	nextRejoin map[string]time.Time
	wake       chan struct{}
	coord      Coordinator // nil: this instance runs alone
}

// Blocked is why an automatic failover does not happen.
type Blocked struct {
	// Kind is a short category for metrics and alerts: disabled,
	// cooldown, unconfirmed, no_candidate, coordination, failed.
	Kind   string
	Reason string
}

// New builds an engine acting on cluster c's servers through act.
func New(c *backend.Cluster, act Servers, set Settings, log *zap.Logger) *Engine {
	set.Timeouts = set.Timeouts.withDefaults()
	e := &Engine{cluster: c, act: act, log: log.With(zap.String("cluster", c.Name)), noted: map[string]string{},
		nextRejoin: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	e.set.Store(&set)
	e.blocked.Store(&Blocked{})
	e.loadState()
	return e
}

// Cluster is the cluster the engine acts on.
func (e *Engine) Cluster() *backend.Cluster { return e.cluster }

// Blocked says why an automatic failover of the dead master is not
// happening (zero when none is needed or nothing blocks it).
func (e *Engine) Blocked() Blocked { return *e.blocked.Load() }

// block records why no automatic failover happens, everywhere an operator
// looks (the topology carries it to SHOW BACKENDS, the status page, the
// error a held write gets; Blocked to metrics).
func (e *Engine) block(kind, reason string) {
	if b := e.blocked.Load(); b.Kind == kind && b.Reason == reason {
		return
	}
	e.blocked.Store(&Blocked{Kind: kind, Reason: reason})
	e.cluster.Topo.SetFailoverBlocked(reason)
}

// SetCoordinator makes the engine share decisions with other instances:
// only the leader acts on its own, and every change is recorded and
// published with compare-and-swap. Call before Run.
func (e *Engine) SetCoordinator(c Coordinator) { e.coord = c }

// ErrBusy is returned when another topology change is running.
var ErrBusy = errors.New("another failover or switchover is in progress")

// Run watches the topology until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg().Interval)
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
		cctx, cancel := context.WithTimeout(ctx, e.cfg().Timeouts.Coordinate)
		if what, ok := e.coord.ClearStale(cctx); ok {
			e.log.Warn("cleared a topology change left unfinished by a dead instance; redoing from the servers' state", zap.String("change", what))
		}
		cancel()
	}
	topo := e.cluster.Topology()
	master := topo.Server(topo.Master)
	if master != nil && !master.Up && (master.Failures >= e.cfg().FailCount || master.Refused) {
		e.autoFailover(ctx, topo)
		return
	}
	e.noted["suspect"] = ""
	if master != nil && master.Up {
		e.cluster.Topo.SetMasterUnreachable(false)
		e.block("", "")
		e.rejoinStrays(ctx)
	}
}

func (e *Engine) autoFailover(ctx context.Context, topo *backend.Topology) {
	master := topo.Server(topo.Master)
	if kind, why := e.refuseAutomatic(); kind != "" {
		e.block(kind, why)
		e.noteOnce("suspect", "master is down and will not be replaced automatically: "+why, zap.String("master", topo.Master))
		return
	}
	replicas := e.inspectReplicas(ctx, topo)
	v := Confirm(replicas, master.ServerID)
	if !v.Dead {
		e.cluster.Topo.SetMasterUnreachable(true)
		e.block("unconfirmed", "no failover: "+v.Reason)
		e.noteOnce("suspect", "master unreachable from the proxy, no failover: "+v.Reason, zap.String("master", topo.Master))
		return
	}
	if _, err := e.change(ctx, automatic, "", "automatic: "+v.Reason); err != nil {
		kind := "failed"
		if errors.Is(err, errNoCandidate) {
			kind = "no_candidate"
		}
		e.block(kind, "automatic failover failed: "+err.Error())
		e.noteOnce("suspect", "automatic failover failed: "+err.Error(), zap.String("master", topo.Master))
	}
}

// refuseAutomatic says why the engine must not fail over on its own now
// ("" when it may): switched off, within the cooldown of the last
// automatic failover, or without the coordination store.
func (e *Engine) refuseAutomatic() (kind, why string) {
	switch last := e.lastAuto.Load(); {
	case !e.cfg().Enabled:
		return "disabled", "automatic failover is disabled (failover.enabled: false); admin FAILOVER still works"
	case last != 0 && time.Since(time.Unix(0, last)) < e.cfg().Cooldown:
		until := time.Unix(0, last).Add(e.cfg().Cooldown)
		return "cooldown", fmt.Sprintf("the last automatic failover was less than failover.cooldown (%s) ago: "+
			"not before %s; admin FAILOVER still works", e.cfg().Cooldown, until.UTC().Format(time.RFC3339))
	case e.coord != nil && !e.coord.Healthy():
		return "coordination", "the coordination store (etcd) is unreachable: no instance may promote"
	}
	return "", ""
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
			cctx, cancel := context.WithTimeout(ctx, e.cfg().Timeouts.Inspect)
			defer cancel()
			r, err := e.act.Inspect(cctx, sc.Addr)
			if err != nil {
				e.log.Warn("cannot read a replica's state", zap.String("backend", sc.Name), zap.Error(err))
			}
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

// SetSettings replaces the settings (a reload): never blocked by a change
// in progress, which goes on with the settings it started with. The
// state file is the one the engine was made with.
func (e *Engine) SetSettings(set Settings) {
	set.Timeouts = set.Timeouts.withDefaults()
	set.State = e.cfg().State
	e.set.Store(&set)
}

// cfg returns the settings in force.
func (e *Engine) cfg() *Settings { return e.set.Load() }

func (e *Engine) servers() []ServerConfig { return e.cfg().Servers }

func (e *Engine) server(name string) ServerConfig {
	for _, s := range e.servers() {
		if s.Name == name {
			return s
		}
	}
	return ServerConfig{Name: name}
}
