package cowmap

import (
	"sync"
	"sync/atomic"
)

// Map is a copy-on-write map; the zero value is empty and ready.
type Map[K comparable, V any] struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[K]V]
}

// Load returns the value stored for k.
func (c *Map[K, V]) Load(k K) (V, bool) {
	if m := c.m.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

// LoadOrMake returns the value stored for k, storing newValue() first if
// there is none (it runs at most once per key).
func (c *Map[K, V]) LoadOrMake(k K, newValue func() V) V {
	if v, ok := c.Load(k); ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v // stored by another writer meanwhile
		}
	}
	next := map[K]V{}
	if old != nil {
		next = make(map[K]V, len(*old)+1)
		for ok, ov := range *old {
			next[ok] = ov
		}
	}
	v := newValue()
	next[k] = v
	c.m.Store(&next)
	return v
}

// Range calls f for each entry of the map as it is now, until f returns
// false.
func (c *Map[K, V]) Range(f func(K, V) bool) {
	m := c.m.Load()
	if m == nil {
		return
	}
	for k, v := range *m {
		if !f(k, v) {
			return
		}
	}
}
