package backend

import (
	"context"
	"crypto/tls"
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

// Pools is a cluster's pool registry: one Pool per server and backend
// account, created on first use. A reload changes what new connections
// are dialled with (addresses, pool limits, TLS, passwords) through
// Configure; connections already open stay until they are returned.
type Pools struct {
	mu    sync.RWMutex
	addrs map[string]string // server name → address
	opts  PoolOptions
	tls   *tls.Config
	pools map[poolKey]*Pool
}

type poolKey struct {
	server string
	user   string
}

// NewPools returns an empty registry for servers.
func NewPools(servers []Server, opts PoolOptions, tlsConf *tls.Config) *Pools {
	p := &Pools{pools: map[poolKey]*Pool{}}
	p.Configure(servers, opts, tlsConf)
	return p
}

// Configure sets what pools dial from now on. Pools of servers no longer
// listed are closed; a server whose address changed has its idle
// connections (to the old address) closed.
func (p *Pools) Configure(servers []Server, opts PoolOptions, tlsConf *tls.Config) {
	addrs := make(map[string]string, len(servers))
	for _, s := range servers {
		addrs[s.Name] = s.Addr
	}
	p.mu.Lock()
	p.addrs, p.opts, p.tls = addrs, opts, tlsConf
	var closing, moved []*Pool
	for k, pool := range p.pools {
		addr, kept := addrs[k.server]
		switch {
		case !kept:
			closing = append(closing, pool)
			delete(p.pools, k)
		default:
			d := pool.Dial()
			if d.Addr != addr {
				moved = append(moved, pool)
			}
			d.Addr, d.TLS = addr, tlsConf
			pool.Configure(d, opts)
		}
	}
	p.mu.Unlock()
	for _, pool := range closing {
		pool.Close()
	}
	for _, pool := range moved {
		pool.CloseIdle()
	}
}

// Pool returns the pool to a named server for an account. A password that
// changed since the pool was made (a reload) is used for new connections.
func (p *Pools) Pool(server string, a Account) (*Pool, error) {
	k := poolKey{server, a.User}
	p.mu.RLock()
	pool, ok := p.pools[k]
	p.mu.RUnlock()
	if ok {
		if d := pool.Dial(); d.Password != a.Password {
			d.Password = a.Password
			pool.Configure(d, pool.Options())
		}
		return pool, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pool, ok := p.pools[k]; ok {
		return pool, nil
	}
	addr, known := p.addrs[server]
	if !known {
		return nil, fmt.Errorf("unknown backend %q", server)
	}
	pool = NewPool(server, DialOptions{Addr: addr, User: a.User, Password: a.Password, TLS: p.tls}, p.opts)
	p.pools[k] = pool
	return pool, nil
}

// Acquire takes a connection to a named server for an account, of the
// given variant, preferring one parked with tag (see Pool.AcquireTagged).
func (p *Pools) Acquire(ctx context.Context, server string, a Account, v Variant, tag string) (*Conn, error) {
	pool, err := p.Pool(server, a)
	if err != nil {
		return nil, err
	}
	return pool.AcquireTagged(ctx, v, tag)
}

// Return gives a connection back to its pool, which resets it (or
// closes it when broken). A connection from outside a pool is closed.
func (p *Pools) Return(bc *Conn) {
	if bc.pool == nil {
		_ = bc.Close()
		return
	}
	bc.pool.Release(bc)
}

// Park gives a connection back without a reset, tagged with the state
// left on it (multiplexing; see Pool.Park).
func (p *Pools) Park(bc *Conn, tag string) {
	if bc.pool == nil {
		_ = bc.Close()
		return
	}
	bc.pool.Park(bc, tag)
}

// CloseIdle closes the idle connections to a server (they may have died
// with it: a restart).
func (p *Pools) CloseIdle(server string) {
	for _, pool := range p.Of(server) {
		pool.CloseIdle()
	}
}

// KillInUse closes the sockets of every connection to a server that a
// session holds, so statements blocked on a dead or hung server fail now
// instead of hanging.
func (p *Pools) KillInUse(server string) int {
	n := 0
	for _, pool := range p.Of(server) {
		n += pool.KillInUse()
	}
	return n
}

// Of returns every pool open to a server (all accounts).
func (p *Pools) Of(server string) []*Pool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []*Pool
	for k, pool := range p.pools {
		if k.server == server {
			out = append(out, pool)
		}
	}
	return out
}

// Stats sums the counters of every pool to a server.
func (p *Pools) Stats(server string) PoolStats {
	var sum PoolStats
	for _, pool := range p.Of(server) {
		s := pool.Stats()
		sum.Open, sum.Idle, sum.InUse, sum.Waiting = sum.Open+s.Open, sum.Idle+s.Idle, sum.InUse+s.InUse, sum.Waiting+s.Waiting
		sum.Dials, sum.DialErrors, sum.Resets, sum.Discarded, sum.Parks = sum.Dials+s.Dials, sum.DialErrors+s.DialErrors,
			sum.Resets+s.Resets, sum.Discarded+s.Discarded, sum.Parks+s.Parks
	}
	return sum
}

// Limit is pool.max_connections: the most connections one pool opens.
func (p *Pools) Limit() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.opts.MaxOpen
}

// Close closes every pool.
func (p *Pools) Close() {
	p.mu.Lock()
	pools := p.pools
	p.pools = map[poolKey]*Pool{}
	p.mu.Unlock()
	for _, pool := range pools {
		pool.Close()
	}
}
