package backend

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
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
// account) and which server is the master. The master and the server list
// change under a mutex; sessions read them on each acquisition.
type Cluster struct {
	mu      sync.RWMutex
	servers []Server
	master  string
	epoch   uint64
	pools   map[poolKey]*Pool
	opts    PoolOptions
	tls     *tls.Config
}

type poolKey struct {
	server string
	user   string
}

// NewCluster creates a cluster; master is the initial master's name.
func NewCluster(servers []Server, master string, opts PoolOptions, tlsConf *tls.Config) *Cluster {
	return &Cluster{servers: servers, master: master, pools: map[poolKey]*Pool{}, opts: opts, tls: tlsConf}
}

// Servers returns a copy of the server list.
func (c *Cluster) Servers() []Server {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]Server(nil), c.servers...)
}

// Master returns the current master's name and the topology epoch.
func (c *Cluster) Master() (string, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.master, c.epoch
}

// SetMaster retargets writes to name and bumps the epoch. Connections
// already handed out to the old master stay with their sessions, which
// compare epochs before reuse.
func (c *Cluster) SetMaster(name string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.master = name
	c.epoch++
	return c.epoch
}

// MasterPool returns the pool to the current master for an account.
func (c *Cluster) MasterPool(a Account) (*Pool, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.master == "" {
		return nil, c.epoch, ErrNoMaster
	}
	p, err := c.poolLocked(c.master, a)
	return p, c.epoch, err
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
