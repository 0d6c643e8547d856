package backend

import "crypto/tls"

// Cluster is one master–replica cluster as the process runs it: a name,
// and one owner for each piece of its state.
//
//   - Topo: the topology (master, epoch, health, offline marks, holds).
//   - Gate: the write gate in front of the master.
//   - Pools: the connection pools to its servers, by account.
//   - Counters: statements routed to and running on each server.
//
// A Cluster has its own monitor and failover engine (built by cmd); a
// failover in one cluster touches nothing of another.
type Cluster struct {
	Name     string
	Topo     *TopologyStore
	Gate     *WriteGate
	Pools    *Pools
	Counters *RouteCounters
}

// NewCluster assembles a cluster; master is the initial master's name.
func NewCluster(name string, servers []Server, master string, opts PoolOptions, tlsConf *tls.Config) *Cluster {
	topo := NewTopologyStore(name, servers, master)
	return &Cluster{Name: name, Topo: topo, Gate: NewWriteGate(topo), Pools: NewPools(servers, opts, tlsConf),
		Counters: NewRouteCounters()}
}

// Topology is the current snapshot (Topo.Topology).
func (c *Cluster) Topology() *Topology { return c.Topo.Topology() }

// SetServers replaces the server list (config reload): the topology and
// the pools follow; the master cannot be removed.
func (c *Cluster) SetServers(servers []Server, opts PoolOptions, tlsConf *tls.Config) error {
	if _, err := c.Topo.SetServers(servers); err != nil {
		return err
	}
	c.Pools.Configure(servers, opts, tlsConf)
	return nil
}

// Close closes every pool.
func (c *Cluster) Close() { c.Pools.Close() }
