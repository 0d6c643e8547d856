package router

import "sync"

// classCache maps statement text to its class. Applications send the same
// texts again and again (prepared statements, ORMs), so a plain bounded
// map pays for itself; when full it is emptied rather than tracking
// recency, which keeps lookups lock-light and allocation-free.
type classCache struct {
	mu   sync.RWMutex
	m    map[cacheKey]Class
	size int
}

type cacheKey struct {
	sql   string
	ansi  bool
	shape bool // sql is a normalized shape, not a text
}

// maxCachedSQL keeps large statements (bulk inserts) out of the cache.
const maxCachedSQL = 2048

func newClassCache(size int) *classCache {
	return &classCache{m: make(map[cacheKey]Class, size), size: size}
}

func (c *classCache) get(k cacheKey) (Class, bool) {
	if c.size == 0 || len(k.sql) > maxCachedSQL {
		return Class{}, false
	}
	c.mu.RLock()
	cl, ok := c.m[k]
	c.mu.RUnlock()
	return cl, ok
}

func (c *classCache) put(k cacheKey, cl Class) {
	if c.size == 0 || len(k.sql) > maxCachedSQL {
		return
	}
	c.mu.Lock()
	if len(c.m) >= c.size {
		c.m = make(map[cacheKey]Class, c.size)
	}
	c.m[k] = cl
	c.mu.Unlock()
}
