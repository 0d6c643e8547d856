package router

import "testing"

// The cache keys its maps by a hash of the text: an entry is returned
// only for the text (and flags) it was made for, so two texts of one
// hash never share a class.
func TestClassCacheKeepsTextsApart(t *testing.T) {
	read, write := Class{Kind: KindRead}, Class{Kind: KindWrite}
	tests := []struct {
		name     string
		put, get cacheKey
		hit      bool
	}{
		{"same text", cacheKey{sql: "SELECT 1"}, cacheKey{sql: "SELECT 1"}, true},
		{"other text", cacheKey{sql: "SELECT 1"}, cacheKey{sql: "SELECT 2"}, false},
		{"ANSI_QUOTES differs", cacheKey{sql: `SELECT "a"`}, cacheKey{sql: `SELECT "a"`, ansi: true}, false},
		{"a shape is not a text", cacheKey{sql: "SELECT ?"}, cacheKey{sql: "SELECT ?", shape: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClassCache(64)
			c.put(tt.put, write)
			got, ok := c.get(tt.get)
			if ok != tt.hit || ok && got.Kind != KindWrite {
				t.Fatalf("get = %+v, %v; want hit %v", got, ok, tt.hit)
			}
		})
	}

	t.Run("two texts of one hash", func(t *testing.T) {
		c := newClassCache(64)
		a, b := cacheKey{sql: "DELETE FROM t"}, cacheKey{sql: "SELECT * FROM t"}
		c.put(a, write)
		// b's hash now finds a's entry, as if the two texts collided.
		ha, hb := c.hash(a), c.hash(b)
		c.shard(hb).m[hb] = c.shard(ha).m[ha]
		if got, ok := c.get(b); ok {
			t.Fatalf("b got a's class %+v", got)
		}
		c.put(b, read)
		if got, ok := c.get(b); !ok || got.Kind != KindRead {
			t.Fatalf("after put: %+v, %v", got, ok)
		}
	})
}
