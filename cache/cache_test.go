package cache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func fill(c *Cache, cluster, key string, tables []string, data string, ttl time.Duration) bool {
	return c.Put(c.Begin(cluster, tables), key, Result{Data: []byte(data)}, ttl, t0)
}

func TestCache(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, c *Cache)
	}{
		{"a stored result is served within its TTL, not after", func(t *testing.T, c *Cache) {
			fill(c, "c1", "k", []string{"t"}, "rows", 2*time.Second)
			if d, ok := c.Get("k", t0.Add(time.Second)); !ok || string(d.Data) != "rows" {
				t.Fatalf("within TTL: %q %v", d.Data, ok)
			}
			if _, ok := c.Get("k", t0.Add(2*time.Second)); ok {
				t.Fatal("served after its TTL")
			}
		}},
		{"a write to a table it read drops it", func(t *testing.T, c *Cache) {
			fill(c, "c1", "k1", []string{"t", "u"}, "a", time.Minute)
			fill(c, "c1", "k2", []string{"v"}, "b", time.Minute)
			c.Invalidate("c1", []string{"u"}, "0-1-5", t0)
			if _, ok := c.Get("k1", t0); ok {
				t.Fatal("a result of a written table was served")
			}
			if _, ok := c.Get("k2", t0); !ok {
				t.Fatal("a result of another table was dropped")
			}
		}},
		{"the same table in another cluster is another table", func(t *testing.T, c *Cache) {
			fill(c, "c2", "k", []string{"t"}, "a", time.Minute)
			c.Invalidate("c1", []string{"t"}, "", t0)
			if _, ok := c.Get("k", t0); !ok {
				t.Fatal("a write in c1 dropped c2's result")
			}
		}},
		{"a write naming no table drops the cluster's results", func(t *testing.T, c *Cache) {
			fill(c, "c1", "k", []string{"t"}, "a", time.Minute)
			fill(c, "c2", "k2", []string{"t"}, "a", time.Minute)
			c.Invalidate("c1", nil, "", t0)
			if _, ok := c.Get("k", t0); ok {
				t.Fatal("kept after a cluster-wide invalidation")
			}
			if _, ok := c.Get("k2", t0); !ok {
				t.Fatal("another cluster's result dropped")
			}
		}},
		{"a read racing a write is not stored", func(t *testing.T, c *Cache) {
			ticket := c.Begin("c1", []string{"t"})
			c.Invalidate("c1", []string{"t"}, "", t0) // the write lands while the read runs
			if c.Put(ticket, "k", Result{Data: []byte("old rows")}, time.Minute, t0) {
				t.Fatal("a result that may predate the write was stored")
			}
			ticket = c.Begin("c1", []string{"t"})
			c.Invalidate("c1", nil, "", t0)
			if c.Put(ticket, "k", Result{Data: []byte("old rows")}, time.Minute, t0) {
				t.Fatal("stored across a cluster-wide invalidation")
			}
		}},
		{"bounded in bytes: the least recently used go first", func(t *testing.T, c *Cache) {
			c.SetMaxSize(3 * (100 + 2 + 128))
			for i := range 3 {
				fill(c, "c1", fmt.Sprint("k", i), []string{"t"}, string(make([]byte, 100)), time.Minute)
			}
			c.Get("k0", t0) // k1 is now the least recently used
			fill(c, "c1", "k3", []string{"t"}, string(make([]byte, 100)), time.Minute)
			if _, ok := c.Get("k1", t0); ok {
				t.Fatal("the least recently used entry was kept")
			}
			for _, k := range []string{"k0", "k2", "k3"} {
				if _, ok := c.Get(k, t0); !ok {
					t.Fatalf("%s evicted", k)
				}
			}
			if st := c.Stats(); st.Bytes > st.MaxBytes || st.Evicted != 1 {
				t.Fatalf("stats %+v", st)
			}
		}},
		{"a result larger than the cache is not stored", func(t *testing.T, c *Cache) {
			c.SetMaxSize(1000)
			if fill(c, "c1", "k", []string{"t"}, string(make([]byte, 2000)), time.Minute) {
				t.Fatal("stored")
			}
		}},
		{"the last write's GTID is kept per table", func(t *testing.T, c *Cache) {
			c.Invalidate("c1", []string{"t"}, "0-1-7", t0)
			w := c.LastWrites(c.Begin("c1", []string{"t", "u"}))
			if len(w) != 1 || w[0].GTID != "0-1-7" {
				t.Fatalf("%+v", w)
			}
		}},
		{"invalidations are published; remote ones are not republished", func(t *testing.T, c *Cache) {
			var got []string
			c.OnInvalidate = func(cluster string, tables []string) { got = append(got, fmt.Sprint(cluster, tables)) }
			fill(c, "c1", "k", []string{"t"}, "a", time.Minute)
			c.InvalidateRemote("c1", []string{"t"})
			if _, ok := c.Get("k", t0); ok || len(got) != 0 {
				t.Fatalf("remote invalidation: served %v, published %v", ok, got)
			}
			c.Invalidate("c1", []string{"t"}, "", t0)
			if len(got) != 1 || got[0] != "c1[t]" {
				t.Fatalf("published %v", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, New(1<<20)) })
	}
}

// TestConcurrentReadersAndWriters: under -race, sessions filling,
// reading and invalidating at once; a read never returns a value older
// than the last write acknowledged before it began. A write is
// acknowledged after its second invalidation, as the proxy answers the
// client only after invalidating: until then a reader may still see the
// value before it.
func TestConcurrentReadersAndWriters(t *testing.T) {
	c := New(1 << 20)
	var mu sync.Mutex
	version := 0 // the table's content
	acked := 0   // the last version whose writer got its OK
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				if w == 0 && i%3 == 0 { // a writer: invalidate before and after
					c.Invalidate("c1", []string{"t"}, "", time.Now())
					mu.Lock()
					version++
					mu.Unlock()
					c.Invalidate("c1", []string{"t"}, "", time.Now())
					mu.Lock()
					acked = version
					mu.Unlock()
					continue
				}
				mu.Lock()
				floor := acked // every write acknowledged before this read
				mu.Unlock()
				if d, ok := c.Get("k", time.Now()); ok {
					var v int
					fmt.Sscan(string(d.Data), &v)
					if v < floor {
						t.Errorf("served version %d after version %d was written", v, floor)
					}
					continue
				}
				ticket := c.Begin("c1", []string{"t"})
				mu.Lock()
				v := version // the server's answer
				mu.Unlock()
				c.Put(ticket, "k", Result{Data: []byte(fmt.Sprint(v))}, time.Minute, time.Now())
			}
		}()
	}
	wg.Wait()
}
