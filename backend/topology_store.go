package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrNoMaster means no writable master is known.
var ErrNoMaster = errors.New("no writable master is known")

// TopologyStore is the one owner of a cluster's Topology: which server is
// the master, the epoch, each server's health as the monitor last saw it,
// the operator's offline marks and the write gate's hold. The topology is
// an immutable value swapped atomically, so routing reads it without
// locks; writers (monitor, failover, admin, the write gate) serialise on
// mu and every change wakes the waiters of Changed.
type TopologyStore struct {
	mu      sync.Mutex
	servers []Server
	topo    atomic.Pointer[Topology]
	// changed is closed and replaced whenever the topology changes, so
	// waiters can select on it.
	changed atomic.Pointer[chan struct{}]
}

// NewTopologyStore starts a topology with master and every server up
// (the monitor's first round replaces that before anything is routed).
func NewTopologyStore(cluster string, servers []Server, master string) *TopologyStore {
	s := &TopologyStore{servers: append([]Server(nil), servers...)}
	t := &Topology{Cluster: cluster, Master: master, Epoch: 1}
	for _, srv := range servers {
		t.Servers = append(t.Servers, ServerState{Server: srv, Health: Health{Up: true}})
	}
	s.topo.Store(t)
	ch := make(chan struct{})
	s.changed.Store(&ch)
	return s
}

// Topology returns the current snapshot (never nil; do not modify it).
func (s *TopologyStore) Topology() *Topology { return s.topo.Load() }

// Changed returns a channel closed at the next topology change.
func (s *TopologyStore) Changed() <-chan struct{} { return *s.changed.Load() }

// update applies f to a copy of the topology and publishes it.
func (s *TopologyStore) update(f func(t *Topology)) *Topology {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topo.Load().clone()
	f(t)
	s.topo.Store(t)
	next := make(chan struct{})
	close(*s.changed.Swap(&next))
	return t
}

// WaitChange waits (bounded by ctx) for a topology with another epoch.
func (s *TopologyStore) WaitChange(ctx context.Context, epoch uint64) (*Topology, error) {
	for {
		changed := s.Changed()
		t := s.topo.Load()
		if t.Epoch != epoch {
			return t, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return t, ctx.Err()
		}
	}
}

// Master returns the current master's name and the topology epoch.
func (s *TopologyStore) Master() (string, uint64) {
	t := s.topo.Load()
	return t.Master, t.Epoch
}

// Servers returns a copy of the server list.
func (s *TopologyStore) Servers() []Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Server(nil), s.servers...)
}

// SetEpoch sets the epoch (restored from persisted state at start-up).
func (s *TopologyStore) SetEpoch(e uint64) {
	s.update(func(t *Topology) { t.Epoch = e })
}

// SetNote records the failover engine's view of a server.
func (s *TopologyStore) SetNote(name string, diverged bool, note string) {
	s.update(func(t *Topology) {
		if st := t.server(name); st != nil {
			st.Diverged, st.Note = diverged, note
		}
	})
}

// SetMasterUnreachable flags (or clears) "the proxy cannot reach the
// master, the replicas can".
func (s *TopologyStore) SetMasterUnreachable(v bool) {
	if s.topo.Load().MasterUnreachable == v {
		return
	}
	s.update(func(t *Topology) { t.MasterUnreachable = v })
}

// SetFailoverBlocked records why an automatic failover of a dead master
// does not happen ("" when nothing blocks it), for every operator surface.
func (s *TopologyStore) SetFailoverBlocked(why string) {
	if s.topo.Load().FailoverBlocked == why {
		return
	}
	s.update(func(t *Topology) { t.FailoverBlocked = why })
}

// SetHealth records what the monitor saw of one server.
func (s *TopologyStore) SetHealth(name string, h Health) {
	s.update(func(t *Topology) {
		if st := t.server(name); st != nil {
			st.Health = h
		}
	})
}

// SetOffline takes a server out of routing (true) or puts it back.
func (s *TopologyStore) SetOffline(name string, offline bool) error {
	found := false
	s.update(func(t *Topology) {
		if st := t.server(name); st != nil {
			st.Offline, found = offline, true
		}
	})
	if !found {
		return fmt.Errorf("unknown backend %q", name)
	}
	return nil
}

// SetWeight changes a server's routing weight.
func (s *TopologyStore) SetWeight(name string, weight int) error {
	found := false
	s.update(func(t *Topology) {
		if st := t.server(name); st != nil {
			st.Weight, found = weight, true
		}
	})
	s.mu.Lock()
	for i := range s.servers {
		if s.servers[i].Name == name {
			s.servers[i].Weight = weight
		}
	}
	s.mu.Unlock()
	if !found {
		return fmt.Errorf("unknown backend %q", name)
	}
	return nil
}

// SetMaster retargets writes to name and bumps the epoch; it ends any
// hold. Connections already handed out to the old master stay with their
// sessions, which compare epochs before reuse.
func (s *TopologyStore) SetMaster(name string) uint64 {
	return s.update(func(t *Topology) {
		t.Master = name
		t.Epoch++
		t.Holding, t.HoldingTransactions, t.MasterUnreachable, t.FailoverBlocked = false, false, false, ""
	}).Epoch
}

// SetMasterEpoch adopts a master and epoch decided elsewhere (another
// instance, through coordination). Older or equal epochs are ignored;
// it reports whether the topology changed.
func (s *TopologyStore) SetMasterEpoch(name string, epoch uint64) bool {
	changed := false
	s.update(func(t *Topology) {
		if epoch > t.Epoch || (epoch == t.Epoch && name != t.Master && t.Master == "") {
			t.Master, t.Epoch = name, epoch
			t.Holding, t.HoldingTransactions, t.MasterUnreachable, t.FailoverBlocked = false, false, false, ""
			changed = true
		}
	})
	return changed
}

// setHolding is the write gate's switch (see WriteGate).
func (s *TopologyStore) setHolding(holding, transactions bool) {
	s.update(func(t *Topology) { t.Holding, t.HoldingTransactions = holding, transactions })
}

// SetServers replaces the server list (config reload): new servers start
// with an unknown health, removed ones leave the topology, weights and
// addresses are updated. The master cannot be removed. It returns the
// names removed.
func (s *TopologyStore) SetServers(servers []Server) ([]string, error) {
	t := s.topo.Load()
	found := false
	for _, srv := range servers {
		found = found || srv.Name == t.Master
	}
	if t.Master != "" && !found {
		return nil, fmt.Errorf("cannot remove the current master %s: switch over first", t.Master)
	}
	var removed []string
	s.update(func(t *Topology) {
		old := map[string]ServerState{}
		for _, st := range t.Servers {
			old[st.Name] = st
		}
		t.Servers = nil
		for _, srv := range servers {
			st, ok := old[srv.Name]
			if !ok {
				st = ServerState{Health: Health{Up: false, Err: "not checked yet"}}
			}
			st.Server = srv
			t.Servers = append(t.Servers, st)
			delete(old, srv.Name)
		}
		for name := range old {
			removed = append(removed, name)
		}
	})
	s.mu.Lock()
	s.servers = append([]Server(nil), servers...)
	s.mu.Unlock()
	return removed, nil
}
