package router

import (
	"hash/maphash"
	"sync"
)

// classCache maps statement text to its class. Applications send the same
// texts again and again (prepared statements, ORMs), so a plain bounded
// map pays for itself; when full it is emptied rather than tracking
// recency, which keeps lookups lock-light and allocation-free.
type classCache struct {
	shards [cacheShards]cacheShard
	size   int // entries per shard
	seed   maphash.Seed
}

// cacheShards spreads the cache over locks of their own, so sessions on
// many cores do not all take one lock per statement.
const cacheShards = 32

type cacheShard struct {
	mu sync.RWMutex
	m  map[cacheKey]Class
	_  [64]byte // keeps two shards' locks off one cache line
}

type cacheKey struct {
	sql   string
	ansi  bool
	shape bool // sql is a normalized shape, not a text
}

// maxCachedSQL keeps large statements (bulk inserts) out of the cache.
const maxCachedSQL = 2048

func newClassCache(size int) *classCache {
	c := &classCache{size: (size + cacheShards - 1) / cacheShards, seed: maphash.MakeSeed()}
	if size == 0 {
		c.size = 0
	}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]Class, c.size)
	}
	return c
}

func (c *classCache) shard(k cacheKey) *cacheShard {
	return &c.shards[maphash.String(c.seed, k.sql)%cacheShards]
}

func (c *classCache) get(k cacheKey) (Class, bool) {
	if c.size == 0 || len(k.sql) > maxCachedSQL {
		return Class{}, false
	}
	sh := c.shard(k)
	sh.mu.RLock()
	cl, ok := sh.m[k]
	sh.mu.RUnlock()
	return cl, ok
}

func (c *classCache) put(k cacheKey, cl Class) {
	if c.size == 0 || len(k.sql) > maxCachedSQL {
		return
	}
	sh := c.shard(k)
	sh.mu.Lock()
	if len(sh.m) >= c.size {
		sh.m = make(map[cacheKey]Class, c.size)
	}
	sh.m[k] = cl
	sh.mu.Unlock()
}
