package router

import (
	"hash/maphash"
	"sync"
)

// classCache maps statement text to its class. Applications send the same
// texts again and again (prepared statements, ORMs), so a plain bounded
// map pays for itself; when full it is emptied rather than tracking
// recency, which keeps lookups lock-light and allocation-free.
//
// A text is hashed once per lookup: the hash picks the shard and is the
// map's key, and the entry keeps the text to tell two texts of one hash
// apart (then the second is a miss, and replaces the first when put).
// Entries are pointers, so the maps stay small and a lookup touches few
// cache lines: on a busy machine the proxy's memory is cold between two
// statements of a session, and each line touched is a miss.
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
	m  map[uint64]*cacheEntry
	_  [64]byte // keeps two shards' locks off one cache line
}

type cacheKey struct {
	sql   string
	ansi  bool
	shape bool // sql is a normalized shape, not a text
}

type cacheEntry struct {
	key   cacheKey
	class Class
}

// maxCachedSQL keeps large statements (bulk inserts) out of the cache.
const maxCachedSQL = 2048

func newClassCache(size int) *classCache {
	c := &classCache{size: (size + cacheShards - 1) / cacheShards, seed: maphash.MakeSeed()}
	if size == 0 {
		c.size = 0
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*cacheEntry, c.size)
	}
	return c
}

// hash is k's one hash: the text's, with its flags in the low bits (the
// shard comes from the high ones).
func (c *classCache) hash(k cacheKey) uint64 {
	h := maphash.String(c.seed, k.sql) &^ 3
	if k.ansi {
		h |= 1
	}
	if k.shape {
		h |= 2
	}
	return h
}

func (c *classCache) shard(h uint64) *cacheShard {
	return &c.shards[(h>>32)%cacheShards] // not the low bits: they hold the flags
}

func (c *classCache) get(k cacheKey) (Class, bool) {
	if c.size == 0 || len(k.sql) > maxCachedSQL {
		return Class{}, false
	}
	h := c.hash(k)
	sh := c.shard(h)
	sh.mu.RLock()
	e := sh.m[h]
	sh.mu.RUnlock()
	if e == nil || e.key != k {
		return Class{}, false
	}
	return e.class, true
}

func (c *classCache) put(k cacheKey, cl Class) {
	if c.size == 0 || len(k.sql) > maxCachedSQL {
		return
	}
	h := c.hash(k)
	e := &cacheEntry{key: k, class: cl}
	sh := c.shard(h)
	sh.mu.Lock()
	if len(sh.m) >= c.size {
		sh.m = make(map[uint64]*cacheEntry, c.size)
	}
	sh.m[h] = e
	sh.mu.Unlock()
}
