package failover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard/switchyard/backend"
)

// changeKind is who asked for a change.
type changeKind uint8

const (
	automatic  changeKind = iota // the engine, for a dead master
	forced                       // the operator's FAILOVER: no confirmation, no cooldown
	switchover                   // the operator's SWITCHOVER: the master is alive
)

// Failover promotes a replica because the operator says the master is
// gone (admin FAILOVER [TO want]): no confirmation that it is dead, no
// cooldown, and no cooldown after it.
func (e *Engine) Failover(ctx context.Context, want string) (*Record, error) {
	return e.change(ctx, forced, want, "forced by the operator")
}

// Switchover moves the master role to a healthy replica with no loss:
// writes are held, the old master is made read-only, the target applies
// everything, is promoted, and the old master becomes its replica.
func (e *Engine) Switchover(ctx context.Context, want string) (*Record, error) {
	return e.change(ctx, switchover, want, "requested by the operator")
}

func (e *Engine) change(ctx context.Context, who changeKind, want, reason string) (*Record, error) {
	if !e.mu.TryLock() {
		return nil, ErrBusy
	}
	defer e.mu.Unlock()
	planned := who == switchover
	kind := "failover"
	if planned {
		kind = "switchover"
	}
	topo := e.cluster.Topology()
	c := &change{e: e, set: e.cfg(), ctx: ctx, kind: kind, planned: planned, want: want, topo: topo, old: e.server(topo.Master),
		rec: newRecorder(kind, reason, topo.Master)}
	err := c.run()
	if err == nil {
		e.blocked.Store(&Blocked{}) // the topology's note went with SetMaster
		if who == automatic {
			e.lastAuto.Store(time.Now().UnixNano())
		}
	}
	e.finish(c.rec, err)
	return c.rec.rec, err
}

// change is one failover or switchover as it runs: what was decided,
// what was done to which server, and how to undo it.
type change struct {
	e       *Engine
	set     *Settings // as the change started
	ctx     context.Context
	kind    string
	planned bool // switchover: the master is alive and loses nothing
	want    string
	topo    *backend.Topology // when the change started
	old     ServerConfig      // the master being replaced
	rec     *recorder

	cand     Replica
	candCfg  ServerConfig
	replicas []Replica
	ticket   Ticket // the change as recorded with the coordinator
	// fenced: the old master was made read-only (it is reachable); oldPos
	// is what it holds then.
	fenced     bool
	oldPos     backend.Position
	openAtHold int  // transactions open on the master when writes were held
	published  bool // the candidate is the cluster's master
	// detached is closed when the followers' replication is stopped
	// (detachFollowers); nil when it was not started.
	detached chan struct{}

	undoMu sync.Mutex
	undo   []undoStep
}

// undoStep reverses one thing the change did. A guard that fails stops
// the undo: what is older stays as it is (see rollback).
type undoStep struct {
	name  string
	guard bool
	// safe steps run even after a guard stopped the undo: they touch
	// nothing a guard protects (a replica following the fenced old
	// master again).
	safe bool
	do   func(ctx context.Context) error
}

// run is the one procedure both kinds follow:
//
//	failover    hold  pick  coordinate  pre_hook  (detach)      fence  apply  promote  repoint  retarget           verify  post_hook
//	switchover        pick  coordinate  catchup  hold  drain    fence  apply  promote           retarget  repoint  verify  post_hook
//
// A failover holds writes first, open transactions' statements included
// (and while the candidate applies and is promoted, the other replicas'
// replication is stopped in the background: stopping an applier waits
// for its queued transactions, seconds under load, which repoint would
// otherwise wait for with writes held)
// (statements stuck on the dead master are cut; the sessions replay their
// transactions on the new master), fences the old master when it can
// reach it at all, and waits for
// the candidate's relay log; the replicas follow the candidate before
// writes resume, so its semi-sync has an acknowledger at once (there is
// no traffic to hold up). A switchover needs the master alive: the
// candidate catches up while writes still flow; new transactions are
// held while open ones get switchover_drain to finish; the fence then
// ends those still open (their sessions replay them on the new master, or
// abort them); writes are held only for fence, apply and promote, and the
// old master and the replicas follow
// the new one as soon as writes resume (repointing a busy replica can
// take seconds). From the fence on, a failure undoes what was done
// (rollback).
func (c *change) run() error {
	defer c.endHold()
	if c.planned {
		if m := c.topo.Server(c.old.Name); m == nil || !m.Up {
			return fmt.Errorf("master %s is not up: use FAILOVER", c.old.Name)
		}
	} else {
		_ = c.step("hold", c.hold)
	}
	if err := c.step("pick", c.pick); err != nil {
		return err
	}
	if err := c.coordinate(); err != nil {
		return err
	}
	defer c.forgetTicket()
	if c.planned {
		_ = c.step("catchup", c.catchUp)
		_ = c.step("hold", c.hold)
		_ = c.step("drain", c.drain)
	} else if err := c.step("pre_hook", func() error { return c.hook(c.set.Hooks.PreFailover) }); err != nil {
		return fmt.Errorf("pre_failover hook failed, failover aborted: %w", err)
	} else {
		c.detachFollowers()
	}
	// An unreachable old master is expected in a failover: it died.
	if err := c.step("fence", c.fence); err != nil && c.planned {
		return c.rollback(err)
	}
	if err := c.step("apply", c.apply); err != nil {
		return c.rollback(fmt.Errorf("candidate %s could not apply everything it must have: %w (nothing promoted)", c.cand.Name, err))
	}
	if err := c.step("promote", c.promote); err != nil {
		return c.rollback(err)
	}
	if !c.planned {
		_ = c.step("repoint", c.repoint)
	}
	if err := c.step("retarget", c.retarget); err != nil {
		return c.rollback(err)
	}
	c.e.lastChange.Store(time.Now().UnixNano())
	if c.planned {
		_ = c.step("repoint", c.repoint)
	}
	_ = c.step("verify", c.verify)
	post := c.set.Hooks.PostFailover
	if c.planned {
		post = c.set.Hooks.PostSwitchover
	}
	_ = c.step("post_hook", func() error { return c.hook(post) })
	return nil
}

func (c *change) step(name string, f func() error) error { return c.rec.step(name, f) }

func (c *change) timeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, d)
}

// hold pauses new statements for the master. In a failover, statements
// stuck on the dead master are cut first and open transactions are held
// too; the hold's wait is best effort.
func (c *change) hold() error {
	ctx, cancel := c.timeout(c.set.Timeouts.Hold)
	defer cancel()
	if c.planned {
		c.openAtHold = c.e.cluster.Gate.OpenTransactions()
		return c.e.cluster.Gate.Hold(ctx)
	}
	c.e.cluster.Pools.KillInUse(c.old.Name)
	_ = c.e.cluster.Gate.HoldTransactions(ctx)
	return nil
}

// drain gives the transactions open on the master up to switchover_drain
// to finish (new ones wait at the gate since the hold), then holds their
// statements too. Drained counts those open at the hold that finished.
func (c *change) drain() error {
	ctx, cancel := c.timeout(c.set.SwitchoverDrain)
	left := c.e.cluster.Gate.DrainTransactions(ctx)
	cancel()
	c.rec.rec.Drained, c.rec.rec.LeftOpen = max(c.openAtHold-left, 0), left
	hctx, hcancel := c.timeout(c.set.Timeouts.Hold)
	defer hcancel()
	return c.e.cluster.Gate.HoldTransactions(hctx)
}

// endHold lets writes go on to whichever master there is now: the new
// one (SetMaster already ended the hold) or, when the change failed, the
// old one.
func (c *change) endHold() {
	if !c.published {
		c.e.cluster.Gate.Release()
	}
}

// pick chooses the candidate from what the replicas say now.
func (c *change) pick() error {
	c.replicas = c.e.inspectReplicas(c.ctx, c.topo)
	cand, why, err := PickCandidate(c.replicas, c.want)
	if err != nil {
		return err
	}
	c.cand, c.candCfg = cand, c.e.server(cand.Name)
	c.rec.rec.NewMaster = cand.Name
	if !c.planned {
		c.rec.rec.Reason += "; " + why
		c.rec.rec.Positions = positions(c.replicas)
	}
	return nil
}

// catchUp lets the candidate apply what the master has while writes
// still flow, so the hold that follows covers only the last transactions.
func (c *change) catchUp() error {
	for round := 0; round < 5; round++ {
		start := time.Now()
		ctx, cancel := c.timeout(c.set.ApplyTimeout + c.set.Timeouts.Inspect)
		m, err := c.e.act.Inspect(ctx, c.old.Addr)
		if err == nil {
			err = c.e.act.WaitApplied(ctx, c.candCfg.Addr, m.Current, c.set.ApplyTimeout)
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
}

// fence makes the old master read-only, kills its client connections
// (their transactions roll back) and reads what it holds, which the
// candidate must apply.
func (c *change) fence() error {
	ctx, cancel := c.timeout(c.set.Timeouts.Fence)
	defer cancel()
	// The undo comes first: a fence that timed out may still have applied.
	c.pushUndo("unfence "+c.old.Name, false, func(ctx context.Context) error { return c.e.act.Unfence(ctx, c.old.Addr) })
	// Kill: a switchover's transactions still open after the drain end
	// here, so the old master holds no locks when it follows the new one.
	if err := c.e.act.Fence(ctx, c.old.Addr, true); err != nil {
		return err
	}
	c.fenced = true
	st, err := c.e.act.Inspect(ctx, c.old.Addr)
	if err != nil {
		if c.planned {
			return err
		}
		return nil
	}
	c.oldPos = st.Current
	if c.planned {
		c.rec.rec.Positions = c.old.Name + "=" + c.oldPos.String()
	}
	return nil
}

// apply waits until the candidate has applied everything it received
// (its relay log) and everything a reachable old master holds.
func (c *change) apply() error {
	ctx, cancel := c.timeout(c.set.ApplyTimeout + c.set.Timeouts.Inspect)
	defer cancel()
	if err := c.e.act.WaitApplied(ctx, c.candCfg.Addr, c.cand.Received, c.set.ApplyTimeout); err != nil {
		return err
	}
	return c.e.act.WaitApplied(ctx, c.candCfg.Addr, c.oldPos, c.set.ApplyTimeout)
}

// promote makes the candidate a writable master. Its undo is registered
// first: promotion may fail half-way, with the candidate already writable.
func (c *change) promote() error {
	if c.fenced {
		c.pushUndo("refollow "+c.cand.Name, false, func(ctx context.Context) error {
			return c.e.act.Follow(ctx, c.candCfg.Addr, c.old.Addr, false)
		})
	}
	c.pushUndo("demote "+c.cand.Name, true, func(ctx context.Context) error {
		return c.e.act.Fence(ctx, c.candCfg.Addr, false) // no write reached it: writes were held
	})
	ctx, cancel := c.timeout(c.set.Timeouts.Promote)
	defer cancel()
	return c.e.act.Promote(ctx, c.candCfg.Addr)
}

// detachFollowers stops, in the background, the replication of the
// replicas that will follow the candidate (a failover: their master is
// dead, and what they hold the candidate holds too). Each gets an undo
// that makes it follow the old master again, should the change fail.
func (c *change) detachFollowers() {
	followers := c.followers()
	for _, f := range followers {
		c.undoMu.Lock()
		c.undo = append(c.undo, undoStep{name: "restart replication on " + f.Name, safe: true, do: func(ctx context.Context) error {
			return c.e.act.Follow(ctx, f.Addr, c.old.Addr, false)
		}})
		c.undoMu.Unlock()
	}
	c.detached = make(chan struct{})
	go func() {
		defer close(c.detached)
		_ = inParallel(followers, func(f follower) error {
			ctx, cancel := c.timeout(c.set.Timeouts.Repoint)
			defer cancel()
			return c.e.act.Detach(ctx, f.Addr) // Follow stops it anyway if this failed
		})
	}()
}

// waitDetached waits for detachFollowers, if it ran.
func (c *change) waitDetached() {
	if c.detached != nil {
		<-c.detached
	}
}

// repoint makes the other reachable replicas, and in a switchover the
// old master, follow the candidate. (After a failover, rejoinStrays
// repoints the old master once it is back and its history is checked.)
func (c *change) repoint() error {
	c.waitDetached()
	return c.eachFollower(func(f follower) error {
		ctx, cancel := c.timeout(c.set.Timeouts.Repoint)
		defer cancel()
		if err := c.e.act.Follow(ctx, f.Addr, c.candCfg.Addr, f.former); err != nil {
			return err
		}
		// (A detached replica already has its undo: detachFollowers.)
		if c.fenced && !c.published && !f.former && c.detached == nil {
			c.pushUndo("repoint "+f.Name+" back", false, func(ctx context.Context) error {
				return c.e.act.Follow(ctx, f.Addr, c.old.Addr, false)
			})
		}
		return nil
	})
}

// retarget makes the candidate the cluster's master (through the
// coordinator when there is one); writes resume there.
func (c *change) retarget() error {
	if err := c.publish(); err != nil {
		return err
	}
	c.published = true
	if !c.planned {
		c.e.cluster.Pools.KillInUse(c.old.Name)
	}
	return nil
}

// verify checks that the repointed servers' replication threads run.
func (c *change) verify() error {
	return c.eachFollower(func(f follower) error {
		ctx, cancel := c.timeout(c.set.Timeouts.Verify + time.Second)
		defer cancel()
		return c.e.act.Verify(ctx, f.Addr, c.set.Timeouts.Verify)
	})
}

// follower is a server that follows the candidate after the change;
// former: it was the master.
type follower struct {
	ServerConfig
	former bool
}

// followers are every reachable replica but the candidate, and in a
// switchover the old master.
func (c *change) followers() []follower {
	var list []follower
	for _, r := range c.replicas {
		if r.Name != c.cand.Name && r.Reachable {
			list = append(list, follower{ServerConfig: c.e.server(r.Name)})
		}
	}
	if c.planned {
		list = append(list, follower{ServerConfig: c.old, former: true})
	}
	return list
}

// eachFollower runs f for every follower in parallel, and joins their
// errors.
func (c *change) eachFollower(f func(follower) error) error {
	return inParallel(c.followers(), f)
}

// inParallel runs f for each of list at once and joins their errors.
func inParallel(list []follower, f func(follower) error) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, fl := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(fl); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *change) pushUndo(name string, guard bool, do func(ctx context.Context) error) {
	c.undoMu.Lock()
	defer c.undoMu.Unlock()
	c.undo = append(c.undo, undoStep{name: name, guard: guard, do: do})
}

// rollback undoes what the change did, newest first, and returns err
// with what the undo left. The old master is made writable again only
// after the candidate is read-only again: if demoting the candidate (a
// guard) fails, nothing older is undone and the old master stays fenced.
// Writes then fail until an operator acts, which is better than two
// writable masters.
func (c *change) rollback(err error) error {
	c.waitDetached() // its undo must not run before it stopped anything
	ctx, cancel := context.WithTimeout(context.Background(), c.set.Timeouts.Undo)
	defer cancel()
	stopped := false
	for i := len(c.undo) - 1; i >= 0; i-- {
		u := c.undo[i]
		if stopped && !u.safe {
			continue
		}
		uerr := c.rec.step("undo "+u.name, func() error { return u.do(ctx) })
		if uerr != nil && u.guard {
			err = fmt.Errorf("%w; undo stopped: %s failed (%v), so %s stays read-only and writes fail until an operator acts",
				err, u.name, uerr, c.old.Name)
			stopped = true
		}
	}
	return err
}

// coordinate records the change with the coordinator, if any: it fails
// when another instance changed or is changing the topology.
func (c *change) coordinate() error {
	if c.e.coord == nil {
		return nil
	}
	err := c.step("coordinate", func() error {
		ctx, cancel := c.timeout(c.set.Timeouts.Coordinate)
		defer cancel()
		var err error
		c.ticket, err = c.e.coord.Begin(ctx, c.kind, c.old.Name, c.cand.Name, c.topo.Epoch)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s not started: %w", c.kind, err)
	}
	return nil
}

// publish makes the candidate the master: through the coordinator
// (compare-and-swap on the epoch; the other instances follow through
// their watch) or locally.
func (c *change) publish() error {
	if c.ticket == nil {
		c.e.cluster.Topo.SetMaster(c.cand.Name)
		return nil
	}
	ctx, cancel := c.timeout(c.set.Timeouts.Coordinate)
	defer cancel()
	epoch, err := c.e.coord.Commit(ctx, c.ticket, c.cand.Name)
	if err != nil {
		return fmt.Errorf("publish the new master: %w", err)
	}
	c.e.cluster.Topo.SetMasterEpoch(c.cand.Name, epoch)
	return nil
}

// forgetTicket drops the coordinator's record of a change that was not
// published.
func (c *change) forgetTicket() {
	if c.published || c.ticket == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.set.Timeouts.Coordinate)
	defer cancel()
	c.e.coord.Abort(ctx, c.ticket)
}

func (c *change) hook(command string) error {
	return c.e.hook(c.ctx, command, c.kind, c.old, c.candCfg)
}
