package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	pingcaperrors "github.com/pingcap/errors"
)

// PoolOptions tune one pool.
type PoolOptions struct {
	MaxOpen        int
	MaxIdle        int
	IdleTimeout    time.Duration
	MaxLifetime    time.Duration
	ConnectTimeout time.Duration
	// IOTimeout bounds the pool's own round trips (reset on release).
	IOTimeout time.Duration
}

// aliveCheckAfter: a connection idle longer is looked at (Conn.Alive)
// before it is handed out or used again.
const aliveCheckAfter = time.Second

// AliveCheckAfter is aliveCheckAfter for the connections sessions hold.
const AliveCheckAfter = aliveCheckAfter

// ErrPoolClosed is returned by Acquire on a closed pool.
var ErrPoolClosed = errors.New("backend pool closed")

// PoolStats is a snapshot of a pool's counters.
type PoolStats struct {
	Open, Idle, InUse, Waiting int
	Dials, DialErrors          uint64
	Resets, Discarded          uint64
	// Parks counts connections returned without a reset (multiplexing).
	Parks uint64
}

// Pool keeps authenticated connections to one server for one backend
// account. Connections are reset with COM_RESET_CONNECTION before they are
// reused, so no session state leaks from one client to the next.
type Pool struct {
	name string
	cfg  atomic.Pointer[poolConfig]

	mu      sync.Mutex
	idle    map[Variant][]*Conn
	inUse   map[*Conn]struct{}
	open    int
	waiters []chan struct{}
	closed  bool

	dials, dialErrors, resets, discarded, parks atomic.Uint64
	stop                                        chan struct{}
}

// poolConfig is what a pool dials with and its limits, swapped whole by
// Configure (a reload).
type poolConfig struct {
	dial DialOptions
	opts PoolOptions
}

// withDefaults fills what an empty config leaves unset.
func (o PoolOptions) withDefaults() PoolOptions {
	if o.MaxOpen <= 0 {
		o.MaxOpen = 100
	}
	return o
}

// NewPool creates a pool; connections are opened on demand.
func NewPool(name string, dial DialOptions, opts PoolOptions) *Pool {
	p := &Pool{name: name, idle: map[Variant][]*Conn{}, inUse: map[*Conn]struct{}{}, stop: make(chan struct{})}
	p.Configure(dial, opts)
	go p.janitor()
	return p
}

// Configure changes what new connections are dialled with and the
// pool's limits; connections already open keep their login.
func (p *Pool) Configure(dial DialOptions, opts PoolOptions) {
	p.cfg.Store(&poolConfig{dial: dial, opts: opts.withDefaults()})
	p.mu.Lock()
	p.wakeOneLocked() // a higher limit may let a waiter in
	p.mu.Unlock()
}

// Dial returns what new connections are dialled with.
func (p *Pool) Dial() DialOptions { return p.cfg.Load().dial }

// Options returns the pool's limits.
func (p *Pool) Options() PoolOptions { return p.cfg.Load().opts }

// Name returns the backend name the pool serves.
func (p *Pool) Name() string { return p.name }

// Addr returns the server address.
func (p *Pool) Addr() string { return p.Dial().Addr }

// Acquire returns a connection of the given variant, dialling one if
// needed, and waits (bounded by ctx) while the pool is at MaxOpen.
func (p *Pool) Acquire(ctx context.Context, v Variant) (*Conn, error) {
	return p.AcquireTagged(ctx, v, "")
}

// AcquireTagged is Acquire preferring an idle connection parked with tag
// (its state already matches, so the caller need not replay it).
func (p *Pool) AcquireTagged(ctx context.Context, v Variant, tag string) (*Conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		if c := p.popIdleLocked(v, tag); c != nil {
			p.inUse[c] = struct{}{}
			p.mu.Unlock()
			if now := time.Now(); p.expired(c, now) || !c.Alive(now, aliveCheckAfter) {
				p.discard(c)
				continue
			}
			c.lastUsed = time.Now()
			return c, nil
		}
		if p.open < p.Options().MaxOpen {
			p.open++
			p.mu.Unlock()
			return p.newConn(ctx, v)
		}
		if victim := p.popAnyIdleLocked(); victim != nil {
			// Full of idle connections of another variant: trade one in.
			p.mu.Unlock()
			p.discard(victim)
			continue
		}
		wait := make(chan struct{})
		p.waiters = append(p.waiters, wait)
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			p.mu.Lock()
			p.removeWaiterLocked(wait)
			p.mu.Unlock()
			return nil, fmt.Errorf("wait for a connection to %s (%d open): %w", p.name, p.Options().MaxOpen, ctx.Err())
		}
	}
}

func (p *Pool) newConn(ctx context.Context, v Variant) (*Conn, error) {
	cfg := p.cfg.Load()
	dctx, cancel := context.WithTimeout(ctx, cfg.opts.ConnectTimeout)
	defer cancel()
	p.dials.Add(1)
	c, err := Dial(dctx, cfg.dial, v)
	if err != nil {
		p.dialErrors.Add(1)
		p.mu.Lock()
		p.open--
		p.wakeOneLocked()
		p.mu.Unlock()
		return nil, fmt.Errorf("backend %s: %w", p.name, err)
	}
	c.pool = p
	p.mu.Lock()
	p.inUse[c] = struct{}{}
	p.mu.Unlock()
	return c, nil
}

// Release returns a connection after use. Broken connections are closed;
// others are reset so the next user starts from a clean session.
func (p *Pool) Release(c *Conn) {
	if !p.keepable(c) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.Options().IOTimeout)
	err := c.Reset(ctx)
	cancel()
	p.resets.Add(1)
	if err != nil {
		p.discard(c)
		return
	}
	p.putIdle(c)
}

// Park returns a connection without resetting it, tagged with the state
// the caller left on it (multiplexing: the next statement of any session
// whose state has the same tag can use it as is). Only connections that
// carry no state beyond what the tag describes may be parked.
func (p *Pool) Park(c *Conn, tag string) {
	if !p.keepable(c) {
		return
	}
	c.stateTag = tag
	p.parks.Add(1)
	p.putIdle(c)
}

// keepable reports whether a returned connection may be kept; a broken or
// expired one is discarded here.
func (p *Pool) keepable(c *Conn) bool {
	if c == nil {
		return false
	}
	if c.Broken() || p.expired(c, time.Now()) {
		p.discard(c)
		return false
	}
	return true
}

func (p *Pool) putIdle(c *Conn) {
	c.lastUsed = time.Now()
	p.mu.Lock()
	if p.closed || p.idleCountLocked() >= p.Options().MaxIdle {
		p.mu.Unlock()
		p.discard(c)
		return
	}
	delete(p.inUse, c)
	if c.schemaSelected {
		c.variant.NoSchema = false
	}
	p.idle[c.variant] = append(p.idle[c.variant], c)
	p.wakeOneLocked()
	p.mu.Unlock()
}

func (p *Pool) discard(c *Conn) {
	_ = c.Close()
	p.discarded.Add(1)
	p.mu.Lock()
	delete(p.inUse, c)
	p.open--
	p.wakeOneLocked()
	p.mu.Unlock()
}

// KillInUse closes the sockets of connections handed out to sessions;
// their blocked reads fail at once. Returns how many were closed.
func (p *Pool) KillInUse() int {
	p.mu.Lock()
	list := make([]*Conn, 0, len(p.inUse))
	for c := range p.inUse {
		list = append(list, c)
	}
	p.mu.Unlock()
	for _, c := range list {
		c.Kill()
	}
	return len(list)
}

// CloseIdle closes every idle connection (used when a server is fenced or
// removed, so that nothing reuses a connection to it).
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	var all []*Conn
	for v, list := range p.idle {
		all = append(all, list...)
		delete(p.idle, v)
	}
	p.mu.Unlock()
	for _, c := range all {
		p.discard(c)
	}
}

// Close closes idle connections and refuses new acquisitions. Connections
// in use are closed when released.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.stop)
	for _, w := range p.waiters {
		close(w)
	}
	p.waiters = nil
	p.mu.Unlock()
	p.CloseIdle()
}

// Stats returns current counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := p.idleCountLocked()
	return PoolStats{
		Open: p.open, Idle: idle, InUse: p.open - idle, Waiting: len(p.waiters),
		Dials: p.dials.Load(), DialErrors: p.dialErrors.Load(),
		Resets: p.resets.Load(), Discarded: p.discarded.Load(), Parks: p.parks.Load(),
	}
}

func (p *Pool) expired(c *Conn, now time.Time) bool {
	o := p.Options()
	if o.MaxLifetime > 0 && now.Sub(c.created) > o.MaxLifetime {
		return true
	}
	return o.IdleTimeout > 0 && now.Sub(c.lastUsed) > o.IdleTimeout
}

// popIdleLocked takes the most recently used idle connection with tag
// (if tag is set and one has it), else the most recently used one: LIFO
// keeps the hottest connections in use and lets the rest time out.
func (p *Pool) popIdleLocked(v Variant, tag string) *Conn {
	list := p.idle[v]
	if len(list) == 0 {
		return nil
	}
	i := len(list) - 1
	if tag != "" {
		for j := len(list) - 1; j >= 0; j-- {
			if list[j].stateTag == tag {
				i = j
				break
			}
		}
	}
	c := list[i]
	p.idle[v] = append(list[:i], list[i+1:]...)
	return c
}

func (p *Pool) popAnyIdleLocked() *Conn {
	for v := range p.idle {
		if c := p.popIdleLocked(v, ""); c != nil {
			return c
		}
	}
	return nil
}

func (p *Pool) idleCountLocked() int {
	n := 0
	for _, list := range p.idle {
		n += len(list)
	}
	return n
}

func (p *Pool) wakeOneLocked() {
	if len(p.waiters) > 0 {
		close(p.waiters[0])
		p.waiters = p.waiters[1:]
	}
}

func (p *Pool) removeWaiterLocked(w chan struct{}) {
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return
		}
	}
	// Already woken: pass the wake-up on so it is not lost.
	p.wakeOneLocked()
}

// janitor closes idle connections past their idle timeout or lifetime.
func (p *Pool) janitor() {
	period := p.Options().IdleTimeout / 2
	if period <= 0 || period > time.Minute {
		period = time.Minute
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			var old []*Conn
			p.mu.Lock()
			for v, list := range p.idle {
				keep := list[:0]
				for _, c := range list {
					if p.expired(c, now) {
						old = append(old, c)
					} else {
						keep = append(keep, c)
					}
				}
				p.idle[v] = keep
			}
			p.mu.Unlock()
			for _, c := range old {
				p.discard(c)
			}
		}
	}
}

// AsMyError extracts a server error (code, SQLSTATE, message) from err.
func AsMyError(err error) (*mysql.MyError, bool) { return asMyError(err) }

func asMyError(err error) (*mysql.MyError, bool) {
	var me *mysql.MyError
	if errors.As(err, &me) {
		return me, true
	}
	if me, ok := pingcaperrors.Cause(err).(*mysql.MyError); ok {
		return me, true
	}
	return nil, false
}
