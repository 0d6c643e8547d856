package cache

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"
)

// Cache is the result cache.
type Cache struct {
	// OnInvalidate, when set, is told of every local invalidation (to
	// publish it to other instances); set before use.
	OnInvalidate func(cluster string, tables []string)

	mu      sync.Mutex
	max     int64
	used    int64
	entries map[string]*entry
	lru     list.List // of *entry, most recent first
	// byTable indexes entries by the tables they read; gen counts each
	// table's invalidations, clusterGen a whole cluster's (a write that
	// named no table).
	byTable    map[table]map[*entry]struct{}
	gen        map[table]uint64
	clusterGen map[string]uint64
	// lastWrite is the GTID of the last write through Switchyard to a
	// table ("" when unknown) and when it happened: a result read on a
	// replica is kept only when the replica has it.
	lastWrite map[table]Write

	// filling counts reads between Begin and Put/Abandon: with nothing
	// cached and nothing filling, a write has nothing to invalidate.
	filling atomic.Int64
	count   atomic.Int64 // entries stored now

	hits, misses, stored, dropped, evicted, expired atomic.Uint64
}

// table names one table of one cluster (lower-case name).
type table struct{ cluster, name string }

type entry struct {
	key     string
	cluster string
	tables  []string
	result  Result
	expires time.Time
	elem    *list.Element
}

// Result is a cached reply: the bytes the client received (packets with
// their headers) and how many rows they held.
type Result struct {
	Data []byte
	Rows uint64
}

// Write is a table's last write through Switchyard.
type Write struct {
	GTID string
	At   time.Time
}

// New returns a cache of at most maxBytes of results.
func New(maxBytes int64) *Cache {
	return &Cache{max: maxBytes, entries: map[string]*entry{}, byTable: map[table]map[*entry]struct{}{},
		gen: map[table]uint64{}, clusterGen: map[string]uint64{}, lastWrite: map[table]Write{}}
}

// SetMaxSize changes the bound (a reload); entries over it are evicted.
func (c *Cache) SetMaxSize(maxBytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max = maxBytes
	c.evictLocked()
}

// Get returns the cached result for key, if it has not expired. The
// bytes must not be modified.
func (c *Cache) Get(key string, now time.Time) (Result, bool) {
	if c.count.Load() == 0 {
		c.misses.Add(1)
		return Result{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	switch {
	case e == nil:
		c.misses.Add(1)
		return Result{}, false
	case !now.Before(e.expires):
		c.removeLocked(e)
		c.expired.Add(1)
		c.misses.Add(1)
		return Result{}, false
	}
	c.lru.MoveToFront(e.elem)
	c.hits.Add(1)
	return e.result, true
}

// Has reports whether key is cached and fresh, without counting a
// lookup (EXPLAIN ROUTE).
func (c *Cache) Has(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	return e != nil && now.Before(e.expires)
}

// Ticket is a read about to fill the cache: the generations of what it
// reads when it started.
type Ticket struct {
	cluster    string
	tables     []string
	gens       []uint64
	clusterGen uint64
}

// Begin is called before a read that may fill the cache runs; Put or
// Abandon must follow.
func (c *Cache) Begin(cluster string, tables []string) Ticket {
	c.filling.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	t := Ticket{cluster: cluster, tables: tables, clusterGen: c.clusterGen[cluster], gens: make([]uint64, len(tables))}
	for i, name := range tables {
		t.gens[i] = c.gen[table{cluster, name}]
	}
	return t
}

// Abandon ends a ticket without storing (the read failed, or was not
// cacheable after all).
func (c *Cache) Abandon(Ticket) { c.filling.Add(-1) }

// LastWrites returns the last write to each of the ticket's tables that
// has one.
func (c *Cache) LastWrites(t Ticket) []Write {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Write
	for _, name := range t.tables {
		if w, ok := c.lastWrite[table{t.cluster, name}]; ok {
			out = append(out, w)
		}
	}
	return out
}

// Put stores a result read under t for ttl, unless a table it read was
// written since Begin (the result may predate the write) or it is larger
// than the whole cache. It reports whether the result was stored.
func (c *Cache) Put(t Ticket, key string, r Result, ttl time.Duration, now time.Time) bool {
	defer c.filling.Add(-1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clusterGen[t.cluster] != t.clusterGen {
		c.dropped.Add(1)
		return false
	}
	for i, name := range t.tables {
		if c.gen[table{t.cluster, name}] != t.gens[i] {
			c.dropped.Add(1)
			return false
		}
	}
	size := entrySize(key, r)
	if size > c.max {
		c.dropped.Add(1)
		return false
	}
	if old := c.entries[key]; old != nil {
		c.removeLocked(old)
	}
	e := &entry{key: key, cluster: t.cluster, tables: t.tables, result: r, expires: now.Add(ttl)}
	e.elem = c.lru.PushFront(e)
	c.entries[key] = e
	for _, name := range t.tables {
		k := table{t.cluster, name}
		if c.byTable[k] == nil {
			c.byTable[k] = map[*entry]struct{}{}
		}
		c.byTable[k][e] = struct{}{}
	}
	c.used += size
	c.count.Add(1)
	c.stored.Add(1)
	c.evictLocked()
	return true
}

// Idle reports that nothing is cached and no read is filling: a write
// then has nothing to invalidate locally.
func (c *Cache) Idle() bool { return c.count.Load() == 0 && c.filling.Load() == 0 }

// Invalidate drops what a write through this instance made stale: every
// result that read one of tables (all of the cluster's when tables is
// empty), and any read now filling them. gtid is the write's, when known
// (after its reply). Other instances are told through OnInvalidate.
func (c *Cache) Invalidate(cluster string, tables []string, gtid string, now time.Time) {
	c.invalidate(cluster, tables, gtid, now)
	if c.OnInvalidate != nil {
		c.OnInvalidate(cluster, tables)
	}
}

// InvalidateRemote is Invalidate for a write through another instance.
func (c *Cache) InvalidateRemote(cluster string, tables []string) {
	c.invalidate(cluster, tables, "", time.Now())
}

func (c *Cache) invalidate(cluster string, tables []string, gtid string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(tables) == 0 {
		c.clusterGen[cluster]++
		for _, e := range c.entries {
			if e.cluster == cluster {
				c.removeLocked(e)
			}
		}
		return
	}
	for _, name := range tables {
		k := table{cluster, name}
		c.gen[k]++
		c.lastWrite[k] = Write{GTID: gtid, At: now}
		for e := range c.byTable[k] {
			c.removeLocked(e)
		}
	}
}

func (c *Cache) removeLocked(e *entry) {
	if c.entries[e.key] != e {
		return
	}
	delete(c.entries, e.key)
	c.lru.Remove(e.elem)
	for _, name := range e.tables {
		k := table{e.cluster, name}
		delete(c.byTable[k], e)
		if len(c.byTable[k]) == 0 {
			delete(c.byTable, k)
		}
	}
	c.used -= entrySize(e.key, e.result)
	c.count.Add(-1)
}

// entrySize is what an entry is counted as: its bytes, its key, and the
// index's own cost.
func entrySize(key string, r Result) int64 { return int64(len(r.Data) + len(key) + 128) }

func (c *Cache) evictLocked() {
	for c.used > c.max {
		back := c.lru.Back()
		if back == nil {
			return
		}
		c.removeLocked(back.Value.(*entry))
		c.evicted.Add(1)
	}
}

// Stats are the cache's counters and size.
type Stats struct {
	Entries, Bytes, MaxBytes                        int64
	Hits, Misses, Stored, Dropped, Evicted, Expired uint64
}

// Stats reads the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	used, max := c.used, c.max
	c.mu.Unlock()
	return Stats{Entries: c.count.Load(), Bytes: used, MaxBytes: max, Hits: c.hits.Load(), Misses: c.misses.Load(),
		Stored: c.stored.Load(), Dropped: c.dropped.Load(), Evicted: c.evicted.Load(), Expired: c.expired.Load()}
}
