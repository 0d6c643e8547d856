package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
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
	HoldTimeout  time.Duration
	Interval     time.Duration
	FailCount    int
	StateFile    string
	Hooks        Hooks
	// Servers in config order with their promotion flags.
	Servers []ServerConfig
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

// Step is one timed stage of a failover or switchover.
type Step struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
}

// Record is one failover or switchover, kept in history and persisted.
type Record struct {
	Kind      string        `json:"kind"` // failover, switchover
	Started   time.Time     `json:"started"`
	Reason    string        `json:"reason"`
	OldMaster string        `json:"old_master"`
	NewMaster string        `json:"new_master,omitempty"`
	Positions string        `json:"positions,omitempty"` // GTID positions seen
	Steps     []Step        `json:"steps"`
	Duration  time.Duration `json:"duration_ns"`
	Error     string        `json:"error,omitempty"`
	Epoch     uint64        `json:"epoch,omitempty"`
}

// Engine detects a dead master, confirms it, promotes the best replica and
// keeps the topology healthy afterwards (rejoining old masters). One
// topology change runs at a time (mu); Run's goroutine drives automatic
// actions, the admin port calls Switchover and Failover.
type Engine struct {
	cluster *backend.Cluster
	act     *Actuator
	set     Settings
	log     *zap.Logger

	mu         sync.Mutex   // one topology change at a time
	lastChange atomic.Int64 // unix nanoseconds of the last topology change
	history    []Record
	noted      map[string]string // last message logged per condition, to log changes once
	nextRejoin map[string]time.Time
	histMu     sync.Mutex
	wake       chan struct{}
	coord      Coordinator // nil: this instance runs alone
	serversMu  sync.Mutex
}

// New builds an engine.
func New(c *backend.Cluster, act *Actuator, set Settings, log *zap.Logger) *Engine {
	e := &Engine{cluster: c, act: act, set: set, log: log, noted: map[string]string{}, nextRejoin: map[string]time.Time{},
		wake: make(chan struct{}, 1)}
	e.loadState()
	return e
}

// persisted is the state file's content.
type persisted struct {
	Epoch   uint64   `json:"epoch"`
	Master  string   `json:"master"`
	History []Record `json:"history"`
}

func (e *Engine) loadState() {
	if e.set.StateFile == "" {
		return
	}
	data, err := os.ReadFile(e.set.StateFile)
	if err != nil {
		return
	}
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil {
		e.log.Warn("ignoring unreadable state file", zap.String("file", e.set.StateFile), zap.Error(err))
		return
	}
	e.history = p.History
	if t := e.cluster.Topology(); p.Epoch >= t.Epoch {
		// Continue the epoch sequence; the master itself was discovered
		// from the servers, never taken from this file.
		e.cluster.SetEpoch(p.Epoch + 1)
	}
	if p.Master != "" && p.Master != e.cluster.Topology().Master {
		e.log.Warn("master differs from the last one recorded", zap.String("recorded", p.Master),
			zap.String("discovered", e.cluster.Topology().Master))
	}
}

func (e *Engine) saveState() {
	if e.set.StateFile == "" {
		return
	}
	t := e.cluster.Topology()
	e.histMu.Lock()
	p := persisted{Epoch: t.Epoch, Master: t.Master, History: e.history}
	e.histMu.Unlock()
	data, _ := json.MarshalIndent(p, "", "  ")
	tmp := e.set.StateFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err == nil {
		_ = os.Rename(tmp, e.set.StateFile)
	} else {
		e.log.Error("cannot persist topology state", zap.String("file", e.set.StateFile), zap.Error(err))
	}
}

// SetCoordinator makes the engine share decisions with other instances:
// only the leader acts on its own, and every change is recorded and
// published with compare-and-swap. Call before Run.
func (e *Engine) SetCoordinator(c Coordinator) { e.coord = c }

// History returns the recorded failovers and switchovers, oldest first.
func (e *Engine) History() []Record {
	e.histMu.Lock()
	defer e.histMu.Unlock()
	return append([]Record(nil), e.history...)
}

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
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		if what, ok := e.coord.ClearStale(cctx); ok {
			e.log.Warn("cleared a topology change left unfinished by a dead instance; redoing from the servers' state", zap.String("change", what))
		}
		cancel()
	}
	topo := e.cluster.Topology()
	master := topo.Server(topo.Master)
	if master != nil && !master.Up && (master.Failures >= e.set.FailCount || strings.Contains(master.Err, "refused")) {
		e.autoFailover(ctx, topo)
		return
	}
	e.noted["suspect"] = ""
	if master != nil && master.Up {
		e.cluster.SetMasterUnreachable(false)
		e.rejoinStrays(ctx, topo)
	}
}

func (e *Engine) autoFailover(ctx context.Context, topo *backend.Topology) {
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
	v := Confirm(replicas)
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
			cctx, cancel := context.WithTimeout(ctx, 2*e.act.Timeout+time.Second)
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

func (e *Engine) server(name string) (ServerConfig, bool) {
	for _, s := range e.servers() {
		if s.Name == name {
			return s, true
		}
	}
	return ServerConfig{}, false
}

// recorder times the steps of one record.
type recorder struct {
	rec   *Record
	start time.Time
}

func (r *recorder) step(name string, f func() error) error {
	t := time.Now()
	err := f()
	s := Step{Name: name, Duration: time.Since(t)}
	if err != nil {
		s.Error = err.Error()
	}
	r.rec.Steps = append(r.rec.Steps, s)
	return err
}

func (e *Engine) finish(r *recorder, err error) {
	r.rec.Duration = time.Since(r.start)
	r.rec.Epoch = e.cluster.Topology().Epoch
	if err != nil {
		r.rec.Error = err.Error()
	}
	e.histMu.Lock()
	e.history = append(e.history, *r.rec)
	e.histMu.Unlock()
	e.saveState()
	fields := []zap.Field{zap.String("kind", r.rec.Kind), zap.String("old_master", r.rec.OldMaster),
		zap.String("new_master", r.rec.NewMaster), zap.Duration("duration", r.rec.Duration), zap.String("reason", r.rec.Reason)}
	for _, s := range r.rec.Steps {
		fields = append(fields, zap.Duration("step_"+s.Name, s.Duration))
	}
	if err != nil {
		e.log.Error(r.rec.Kind+" aborted", append(fields, zap.Error(err))...)
	} else {
		e.log.Warn(r.rec.Kind+" done", fields...)
	}
}

// open starts the record of a topology change from the current topology.
func (e *Engine) open(kind, reason string) (*backend.Topology, ServerConfig, *recorder) {
	topo := e.cluster.Topology()
	oldCfg, _ := e.server(topo.Master)
	now := time.Now()
	return topo, oldCfg, &recorder{rec: &Record{Kind: kind, Started: now, Reason: reason, OldMaster: topo.Master}, start: now}
}

// ErrBusy is returned when another topology change is running.
var ErrBusy = errors.New("another failover or switchover is in progress")

// Failover promotes a replica because the master is gone. want names the
// replica (admin FAILOVER TO); force skips the confirmation that the
// master is dead (admin FAILOVER), never the cooldown for automatic runs.
func (e *Engine) Failover(ctx context.Context, want, reason string, force bool) (*Record, error) {
	if !e.mu.TryLock() {
		return nil, ErrBusy
	}
	defer e.mu.Unlock()
	topo, oldCfg, r := e.open("failover", reason)
	old := topo.Master
	if force {
		r.rec.Reason = "forced by the operator"
	}
	var err error
	defer func() { e.finish(r, err) }()

	// Writes wait from here; statements stuck on the dead master are cut.
	_ = r.step("hold", func() error {
		e.cluster.KillInUse(old)
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = e.cluster.Hold(hctx)
		return nil
	})
	released := false
	defer func() {
		if !released {
			e.cluster.Release()
		}
	}()
	var cand Replica
	var replicas []Replica
	err = r.step("pick", func() error {
		replicas = e.inspectReplicas(ctx, topo)
		var why string
		var perr error
		cand, why, perr = PickCandidate(replicas, want)
		if perr == nil {
			r.rec.Reason += "; " + why
		}
		return perr
	})
	if err != nil {
		return r.rec, err
	}
	candCfg, _ := e.server(cand.Name)
	r.rec.NewMaster = cand.Name
	r.rec.Positions = positions(replicas)
	ch, err := e.begin(ctx, r, "failover", old, cand.Name, topo.Epoch)
	if err != nil {
		return r.rec, err
	}
	defer ch.close()
	// The hook runs once the change is recorded (with coordination, a
	// leader dying from here on leaves a record the next leader clears and
	// redoes); a failing hook aborts before anything changed on a server.
	if err = r.step("pre_hook", func() error { return e.hook(ctx, e.set.Hooks.PreFailover, "failover", oldCfg, candCfg) }); err != nil {
		err = fmt.Errorf("pre_failover hook failed, failover aborted: %w", err)
		return r.rec, err
	}
	// A reachable old master (forced failover, or it came back) is fenced,
	// and what it wrote must reach the candidate before promotion.
	var oldPos backend.Position
	fenced := false
	_ = r.step("fence", func() error {
		fctx, cancel := context.WithTimeout(ctx, e.act.Timeout+time.Second)
		defer cancel()
		if ferr := e.act.Fence(fctx, oldCfg.Addr, true); ferr != nil {
			return ferr // unreachable old master: expected when it died
		}
		fenced = true
		if st, ierr := e.act.Inspect(fctx, oldCfg.Addr); ierr == nil {
			oldPos = st.Current
		}
		return nil
	})
	undoFence := func() {
		if fenced {
			_ = e.act.exec(context.Background(), oldCfg.Addr, "SET GLOBAL read_only = 0")
		}
	}
	err = r.step("apply", func() error {
		actx, cancel := context.WithTimeout(ctx, e.set.ApplyTimeout+5*time.Second)
		defer cancel()
		// Everything the candidate received (its relay log), and what a
		// still-reachable old master has: both must be applied.
		if werr := e.act.WaitApplied(actx, candCfg.Addr, cand.Received, e.set.ApplyTimeout); werr != nil {
			return werr
		}
		return e.act.WaitApplied(actx, candCfg.Addr, oldPos, e.set.ApplyTimeout)
	})
	if err != nil {
		undoFence()
		err = fmt.Errorf("candidate %s could not apply its relay log: %w (nothing promoted)", cand.Name, err)
		return r.rec, err
	}
	err = r.step("promote", func() error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return e.act.Promote(pctx, candCfg.Addr)
	})
	if err != nil {
		undoFence()
		return r.rec, err
	}
	// Replicas are pointed at the new master before writes resume, so
	// semi-sync has an acknowledger at once; checking that their threads
	// run comes after.
	others := func(f func(sc ServerConfig) error) error { return e.eachReplica(replicas, cand.Name, f) }
	_ = r.step("repoint", func() error {
		return others(func(sc ServerConfig) error {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return e.act.StartReplication(rctx, sc.Addr, candCfg.Addr, "slave_pos")
		})
	})
	if err = r.step("retarget", func() error {
		if cerr := ch.publish(ctx, cand.Name); cerr != nil {
			return cerr
		}
		released = true
		e.cluster.KillInUse(old)
		return nil
	}); err != nil {
		return r.rec, err
	}
	_ = r.step("verify", func() error {
		return others(func(sc ServerConfig) error {
			vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return e.act.VerifyReplication(vctx, sc.Addr)
		})
	})
	e.lastChange.Store(time.Now().UnixNano())
	_ = r.step("post_hook", func() error { return e.hook(ctx, e.set.Hooks.PostFailover, "failover", oldCfg, candCfg) })
	return r.rec, nil
}

// Switchover moves the master role to a healthy replica with no loss:
// writes are held, the old master is made read-only, the target applies
// everything, is promoted, and the old master becomes its replica.
func (e *Engine) Switchover(ctx context.Context, want string) (*Record, error) {
	if !e.mu.TryLock() {
		return nil, ErrBusy
	}
	defer e.mu.Unlock()
	topo, oldCfg, r := e.open("switchover", "requested by the operator")
	old := topo.Master
	var err error
	defer func() { e.finish(r, err) }()
	if m := topo.Server(old); m == nil || !m.Up {
		err = fmt.Errorf("master %s is not up: use FAILOVER", old)
		return r.rec, err
	}
	var cand Replica
	var replicas []Replica
	if err = r.step("pick", func() error {
		replicas = e.inspectReplicas(ctx, topo)
		var perr error
		cand, _, perr = PickCandidate(replicas, want)
		return perr
	}); err != nil {
		return r.rec, err
	}
	candCfg, _ := e.server(cand.Name)
	r.rec.NewMaster = cand.Name
	ch, err := e.begin(ctx, r, "switchover", old, cand.Name, topo.Epoch)
	if err != nil {
		return r.rec, err
	}
	defer ch.close()
	released := false
	defer func() {
		if !released {
			e.cluster.Release()
		}
	}()
	// Let the target catch up while writes still flow, so the pause below
	// only covers the last few transactions.
	_ = r.step("catchup", func() error {
		for round := 0; round < 5; round++ {
			start := time.Now()
			cctx, cancel := context.WithTimeout(ctx, e.set.ApplyTimeout+5*time.Second)
			m, err := e.act.Inspect(cctx, oldCfg.Addr)
			if err == nil {
				err = e.act.WaitApplied(cctx, candCfg.Addr, m.Current, e.set.ApplyTimeout)
			}
			cancel()
			if err != nil {
				return err
			}
			if time.Since(start) < 50*time.Millisecond {
				return nil
			}
		}
		return nil
	})
	_ = r.step("hold", func() error {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return e.cluster.Hold(hctx)
	})
	var pos backend.Position
	err = r.step("fence", func() error {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if ferr := e.act.Fence(fctx, oldCfg.Addr, false); ferr != nil {
			return ferr
		}
		st, ierr := e.act.Inspect(fctx, oldCfg.Addr)
		pos = st.Current
		return ierr
	})
	if err != nil {
		_ = e.act.exec(context.Background(), oldCfg.Addr, "SET GLOBAL read_only = 0") // undo
		return r.rec, err
	}
	r.rec.Positions = old + "=" + pos.String()
	err = r.step("apply", func() error {
		actx, cancel := context.WithTimeout(ctx, e.set.ApplyTimeout+5*time.Second)
		defer cancel()
		return e.act.WaitApplied(actx, candCfg.Addr, pos, e.set.ApplyTimeout)
	})
	if err != nil {
		_ = e.act.exec(context.Background(), oldCfg.Addr, "SET GLOBAL read_only = 0")
		return r.rec, err
	}
	if err = r.step("promote", func() error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return e.act.Promote(pctx, candCfg.Addr)
	}); err != nil {
		return r.rec, err
	}
	if err = r.step("retarget", func() error {
		if cerr := ch.publish(ctx, cand.Name); cerr != nil {
			return cerr
		}
		released = true
		return nil
	}); err != nil {
		return r.rec, err
	}
	e.lastChange.Store(time.Now().UnixNano())
	_ = r.step("repoint", func() error {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		// The old master follows with current_pos (its own transactions
		// are in its binlog, not in its slave position).
		oldErr := e.act.Repoint(rctx, oldCfg.Addr, candCfg.Addr, "current_pos")
		return errors.Join(oldErr, e.eachReplica(replicas, cand.Name, func(sc ServerConfig) error {
			return e.act.Repoint(rctx, sc.Addr, candCfg.Addr, "slave_pos")
		}))
	})
	_ = r.step("post_hook", func() error { return e.hook(ctx, e.set.Hooks.PostSwitchover, "switchover", oldCfg, candCfg) })
	return r.rec, nil
}

// change is one topology change, recorded with the coordinator when
// there is one. close forgets it unless it was published.
type change struct {
	e      *Engine
	ticket Ticket // nil when running alone
	done   bool
}

// begin records the change with the coordinator.
func (e *Engine) begin(ctx context.Context, r *recorder, kind, old, cand string, epoch uint64) (*change, error) {
	ch := &change{e: e}
	if e.coord == nil {
		return ch, nil
	}
	err := r.step("coordinate", func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var berr error
		ch.ticket, berr = e.coord.Begin(cctx, kind, old, cand, epoch)
		return berr
	})
	if err != nil {
		return nil, fmt.Errorf("%s not started: %w", kind, err)
	}
	return ch, nil
}

// publish makes cand the master: through the coordinator (compare-and-swap
// on the epoch; the other instances follow through their watch) or locally.
func (ch *change) publish(ctx context.Context, cand string) error {
	if ch.ticket == nil {
		ch.e.cluster.SetMaster(cand)
		ch.done = true
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	epoch, err := ch.e.coord.Commit(cctx, ch.ticket, cand)
	if err != nil {
		return fmt.Errorf("publish the new master: %w", err)
	}
	ch.done = true
	ch.e.cluster.SetMasterEpoch(cand, epoch)
	return nil
}

func (ch *change) close() {
	if !ch.done && ch.ticket != nil {
		ch.e.coord.Abort(context.Background(), ch.ticket)
	}
}

// eachReplica runs f for every reachable replica but skip, in parallel,
// and joins their errors.
func (e *Engine) eachReplica(replicas []Replica, skip string, f func(ServerConfig) error) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, rep := range replicas {
		if rep.Name == skip || !rep.Reachable {
			continue
		}
		sc, _ := e.server(rep.Name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(sc); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// rejoinStrays makes servers that came back (an old master after a
// restart) replicas of the current master when their history allows it,
// and marks them diverged otherwise.
func (e *Engine) rejoinStrays(ctx context.Context, topo *backend.Topology) {
	master := topo.Server(topo.Master)
	masterCfg, ok := e.server(topo.Master)
	if master == nil || !ok {
		return
	}
	// Right after a change the monitor's view is stale: let it catch up.
	if last := e.lastChange.Load(); last != 0 && time.Since(time.Unix(0, last)) < 4*e.set.Interval {
		return
	}
	for _, st := range topo.Servers {
		if st.Name == topo.Master || !st.Up || st.Diverged || st.Offline || st.CheckedAt.UnixNano() < e.lastChange.Load() {
			continue
		}
		followsMaster := st.Replica != nil && fmt.Sprintf("%s:%d", st.Replica.MasterHost, st.Replica.MasterPort) == masterCfg.Addr
		if followsMaster || (st.Replica != nil && st.Replica.IORunning) {
			continue
		}
		if time.Now().Before(e.nextRejoin[st.Name]) {
			continue
		}
		e.nextRejoin[st.Name] = time.Now().Add(5 * time.Second)
		e.rejoin(ctx, st.Name, masterCfg)
	}
}

func (e *Engine) rejoin(ctx context.Context, name string, masterCfg ServerConfig) {
	sc, _ := e.server(name)
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// Read-only first: a returning master must never take writes.
	if err := e.act.exec(cctx, sc.Addr, "SET GLOBAL read_only = 1"); err != nil {
		e.log.Warn("rejoin: cannot set read_only", zap.String("backend", name), zap.Error(err))
		return
	}
	srv, err1 := e.act.Inspect(cctx, sc.Addr)
	mst, err2 := e.act.Inspect(cctx, masterCfg.Addr)
	if err1 != nil || err2 != nil {
		return
	}
	if errant := Errant(srv.Current, mst.Current); len(errant) > 0 {
		note := fmt.Sprintf("diverged: holds transactions the master %s lacks: %s", masterCfg.Name, strings.Join(errant, ", "))
		e.cluster.SetNote(name, true, note)
		e.log.Error("not rejoining a diverged server (kept read-only, out of routing)", zap.String("backend", name), zap.String("detail", note))
		return
	}
	if err := e.act.Repoint(cctx, sc.Addr, masterCfg.Addr, "current_pos"); err != nil {
		note := "rejoin failed: " + err.Error()
		diverged := strings.Contains(err.Error(), "1236")
		e.cluster.SetNote(name, diverged, note)
		e.log.Error("rejoin failed", zap.String("backend", name), zap.Error(err))
		return
	}
	e.cluster.SetNote(name, false, "rejoined as a replica of "+masterCfg.Name)
	e.log.Warn("former master rejoined as a replica", zap.String("backend", name), zap.String("master", masterCfg.Name))
}

// hook runs a configured command with the topology change in its
// environment; an empty command does nothing.
func (e *Engine) hook(ctx context.Context, command, event string, old, new ServerConfig) error {
	if command == "" {
		return nil
	}
	hctx, cancel := context.WithTimeout(ctx, e.set.Hooks.Timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(),
		"SWITCHYARD_EVENT="+event,
		"SWITCHYARD_OLD_MASTER="+old.Addr, "SWITCHYARD_OLD_MASTER_NAME="+old.Name,
		"SWITCHYARD_NEW_MASTER="+new.Addr, "SWITCHYARD_NEW_MASTER_NAME="+new.Name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("hook %q: %w: %s", command, err, strings.TrimSpace(string(out)))
	}
	e.log.Info("hook ran", zap.String("event", event), zap.String("command", command), zap.String("output", strings.TrimSpace(string(out))))
	return nil
}

func positions(rs []Replica) string {
	var parts []string
	for _, r := range rs {
		if r.Reachable {
			parts = append(parts, fmt.Sprintf("%s=%s", r.Name, known(r)))
		}
	}
	return strings.Join(parts, " ")
}
