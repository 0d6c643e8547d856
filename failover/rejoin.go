package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// rejoinStrays makes servers that came back (an old master after a
// restart) replicas of the current master when their history allows it,
// and marks them diverged otherwise.
//
// It never runs beside a failover or switchover: mid-change, a promoted
// candidate looks exactly like a stray (no replication source, not the
// topology's master yet).
func (e *Engine) rejoinStrays(ctx context.Context) {
	if !e.mu.TryLock() {
		return
	}
	defer e.mu.Unlock()
	topo := e.cluster.Topology() // read under the lock: after any change
	master := topo.Server(topo.Master)
	if master == nil {
		return
	}
	masterCfg := e.server(topo.Master)
	// Right after a change the monitor's view is stale: let it catch up.
	if last := e.lastChange.Load(); last != 0 && time.Since(time.Unix(0, last)) < 4*e.cfg().Interval {
		return
	}
	for _, st := range topo.Servers {
		if st.Diverged && st.Up && st.Name != topo.Master {
			e.noticeRepair(st.Name, &st, masterCfg, master.Current)
			continue
		}
		if st.Name == topo.Master || !st.Up || st.Offline || st.CheckedAt.UnixNano() < e.lastChange.Load() {
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
		if replicatesFrom(master, e.server(st.Name).Addr) && !st.ReadOnly {
			// Not a stray: the master was made its replica outside this
			// instance. Rejoining it would make every server read-only
			// and replicate in a circle.
			e.followExternalChange(st.Name, topo.Master)
			return
		}
		e.rejoin(ctx, st.Name, masterCfg)
	}
}

// replicatesFrom: the server's replication source is addr.
func replicatesFrom(st *backend.ServerState, addr string) bool {
	return st.Replica != nil && fmt.Sprintf("%s:%d", st.Replica.MasterHost, st.Replica.MasterPort) == addr
}

// followExternalChange makes name the master when the topology was
// changed outside this instance: the master it routed to is now a replica
// of name, which takes writes (an operator's CHANGE MASTER, or another
// Switchyard instance that is not coordinated with this one). Alone, it
// follows what the servers say, as a restart would discover it; with a
// coordinator, the topology comes from etcd only, so it just reports.
func (e *Engine) followExternalChange(name, old string) {
	if e.coord != nil {
		if e.noted[name] != "external" {
			e.noted[name] = "external"
			e.log.Error("the master replicates from another server, changed outside Switchyard: not following it without the coordinator",
				zap.String("master", old), zap.String("source", name))
		}
		return
	}
	e.log.Warn("the topology was changed outside this Switchyard instance: following it",
		zap.String("old_master", old), zap.String("new_master", name))
	e.cluster.Topo.SetMaster(name)
	e.lastChange.Store(time.Now().UnixNano())
	e.saveState()
}

func (e *Engine) rejoin(ctx context.Context, name string, masterCfg ServerConfig) {
	sc := e.server(name)
	cctx, cancel := context.WithTimeout(ctx, e.cfg().Timeouts.Rejoin)
	defer cancel()
	// Read-only first: a returning master must never take writes.
	if err := e.act.Fence(cctx, sc.Addr, false); err != nil {
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
		e.cluster.Topo.SetNote(name, true, note)
		e.log.Error("not rejoining a diverged server (kept read-only, out of routing)", zap.String("backend", name), zap.String("detail", note))
		return
	}
	err := e.act.Follow(cctx, sc.Addr, masterCfg.Addr, true)
	if err == nil {
		err = e.act.Verify(cctx, sc.Addr, e.cfg().Timeouts.Verify)
	}
	if err != nil {
		var re *ReplicationError
		diverged := errors.As(err, &re) && re.Diverged()
		e.cluster.Topo.SetNote(name, diverged, "rejoin failed: "+err.Error())
		e.log.Error("rejoin failed", zap.String("backend", name), zap.Error(err))
		return
	}
	e.cluster.Topo.SetNote(name, false, "rejoined as a replica of "+masterCfg.Name)
	e.log.Warn("former master rejoined as a replica", zap.String("backend", name), zap.String("master", masterCfg.Name))
}

// noticeRepair takes a diverged server back once an operator repaired it
// (rebuilt it from a backup or a clone and pointed it at the master): it
// replicates from the master with both threads running and holds nothing
// the master lacks.
func (e *Engine) noticeRepair(name string, st *backend.ServerState, masterCfg ServerConfig, masterPos backend.Position) {
	rs := st.Replica
	if rs == nil || !rs.IORunning || !rs.SQLRunning || fmt.Sprintf("%s:%d", rs.MasterHost, rs.MasterPort) != masterCfg.Addr {
		return
	}
	if errant := Errant(st.Current, masterPos); len(errant) > 0 {
		return
	}
	e.cluster.Topo.SetNote(name, false, "repaired: replicates from "+masterCfg.Name)
	e.log.Warn("diverged server repaired: back in routing", zap.String("backend", name), zap.String("master", masterCfg.Name))
}
