package cowmap

import (
	"fmt"
	"sync"
	"testing"
)

func TestLoadOrMake(t *testing.T) {
	var m Map[string, int]
	if _, ok := m.Load("a"); ok {
		t.Fatal("empty map found a")
	}
	steps := []struct {
		key       string
		make      int
		want      int
		wantCalls int
	}{
		{"a", 1, 1, 1},
		{"a", 2, 1, 1}, // stored already: not made again
		{"b", 3, 3, 2},
	}
	calls := 0
	for _, st := range steps {
		got := m.LoadOrMake(st.key, func() int { calls++; return st.make })
		if got != st.want || calls != st.wantCalls {
			t.Fatalf("LoadOrMake(%q) = %d after %d makes, want %d after %d", st.key, got, calls, st.want, st.wantCalls)
		}
	}
	seen := map[string]int{}
	m.Range(func(k string, v int) bool { seen[k] = v; return true })
	if len(seen) != 2 || seen["a"] != 1 || seen["b"] != 3 {
		t.Fatalf("Range saw %v", seen)
	}
}

// Readers never see a value made twice for one key, with writers racing
// (run with -race).
func TestConcurrentLoadOrMake(t *testing.T) {
	var m Map[string, *int]
	var wg sync.WaitGroup
	got := make([][]*int, 8)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				got[g] = append(got[g], m.LoadOrMake(fmt.Sprint(i), func() *int { return new(int) }))
			}
		}()
	}
	wg.Wait()
	for g := 1; g < len(got); g++ {
		for i := range got[g] {
			if got[g][i] != got[0][i] {
				t.Fatalf("key %d: goroutines got different values", i)
			}
		}
	}
}
