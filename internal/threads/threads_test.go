package threads

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	tests := []struct {
		name             string
		cur, max         int
		used             float64
		quiet            int
		wantN, wantQuiet int
	}{
		{"idle at one thread stays", 1, 8, 0.05, 0, 1, 0},
		{"half a core on one thread stays", 1, 8, 0.45, 0, 1, 0},
		{"busy one thread doubles", 1, 8, 0.7, 0, 2, 0},
		{"busy doubles up to the ceiling", 4, 6, 3.0, 0, 6, 0},
		{"at the ceiling stays", 2, 2, 2.0, 0, 2, 0},
		{"busy resets a quiet count", 2, 8, 1.5, 9, 4, 0},
		{"quiet interval is counted", 4, 8, 1.0, 3, 4, 4},
		{"long quiet gives one back", 4, 8, 1.0, quietIntervals - 1, 3, 0},
		{"load that needs all but one is not quiet", 4, 8, 1.6, 10, 4, 0},
		{"one thread is never given back", 1, 8, 0, quietIntervals, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, q := Next(tc.cur, tc.max, tc.used, tc.quiet)
			if n != tc.wantN || q != tc.wantQuiet {
				t.Fatalf("Next(%d, %d, %.2f, %d) = %d, %d; want %d, %d", tc.cur, tc.max, tc.used, tc.quiet, n, q, tc.wantN, tc.wantQuiet)
			}
		})
	}
}

// TestMeterFollowsLoad feeds readings of a load that rises and falls:
// the count doubles while the threads are busy and gives one back only
// after a long quiet stretch.
func TestMeterFollowsLoad(t *testing.T) {
	at := time.Unix(1000, 0)
	m := meter{max: 4, cur: 1, at: at}
	var cpu time.Duration
	// run spends cores for one interval and returns the count decided.
	run := func(cores float64) (int, bool) {
		at = at.Add(Interval)
		cpu += time.Duration(cores * float64(Interval))
		return m.observe(cpu, at)
	}
	steps := []struct {
		cores   float64
		want    int
		changed bool
	}{
		{0.3, 1, false}, {0.5, 1, false}, // under a core's 60 %: one thread
		{0.95, 2, true}, // one thread saturated
		{1.9, 4, true},  // two saturated: doubled to the ceiling
		{3.9, 4, false}, // the ceiling
	}
	for i := 0; i < quietIntervals-1; i++ {
		steps = append(steps, struct {
			cores   float64
			want    int
			changed bool
		}{0.5, 4, false}) // fits three threads at half load: quiet, not yet given back
	}
	steps = append(steps, []struct {
		cores   float64
		want    int
		changed bool
	}{{0.5, 3, true}, {0.5, 3, false}, {1.5, 3, false}, {1.9, 4, true}}...)
	for i, s := range steps {
		if n, changed := run(s.cores); n != s.want || changed != s.changed {
			t.Fatalf("step %d (%.2f cores): %d threads (changed %v), want %d (changed %v)", i, s.cores, n, changed, s.want, s.changed)
		}
	}
	if n, changed := m.observe(cpu, at); n != 4 || changed {
		t.Fatalf("a reading without time passing changed the count to %d", n)
	}
}

// TestControllerSetsThreads runs the controller against a process that
// always keeps its threads busy: it starts at one, doubles on each tick up
// to Max, and stops when its context ends.
func TestControllerSetsThreads(t *testing.T) {
	var mu sync.Mutex
	readings, busy, total := 0, 0.0, time.Duration(0)
	cpu := func() time.Duration { // each reading: one interval more, every thread busy
		mu.Lock()
		defer mu.Unlock()
		readings++
		total += time.Duration(busy * float64(Interval))
		return total
	}
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Unix(0, 0).Add(time.Duration(readings) * Interval)
	}
	sets := make(chan int, 10)
	set := func(n int) {
		mu.Lock()
		busy = float64(n)
		mu.Unlock()
		sets <- n
	}
	tick := make(chan time.Time)
	c := &Controller{Max: 4, tick: tick, now: now, cpu: cpu, set: set}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	for _, want := range []int{1, 2, 4} {
		select {
		case n := <-sets:
			if n != want {
				t.Fatalf("threads set to %d, want %d", n, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("threads not set (want %d)", want)
		}
		tick <- time.Time{}
	}
	tick <- time.Time{}
	cancel()
	<-done
	select {
	case n := <-sets:
		t.Fatalf("threads set to %d past Max", n)
	default:
	}
}

func TestProcessCPUCounts(t *testing.T) {
	before := ProcessCPU()
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	if got := ProcessCPU() - before; got < 20*time.Millisecond {
		t.Fatalf("50 ms of spinning counted as %v of CPU (x=%d)", got, x)
	}
}
