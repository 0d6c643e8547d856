package main

import (
	"runtime"
	"testing"
	"time"
)

// TestThreadCountSettings walks the threads key through what a config and
// its reloads can say: a fixed count, 0 (sized to the load: one thread
// for an idle process), and 0 under a GOMAXPROCS environment variable,
// which is kept.
func TestThreadCountSettings(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	waitFor := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.GOMAXPROCS(0) != want {
			if time.Now().After(deadline) {
				t.Fatalf("GOMAXPROCS = %d, want %d", runtime.GOMAXPROCS(0), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	tc := newThreadCount(3)
	defer tc.stop()
	waitFor(3)
	if tc.cancel != nil {
		t.Fatal("a fixed count runs the controller")
	}
	tc.apply(0)
	waitFor(1) // the controller starts at one thread; an idle test stays there
	if tc.cancel == nil {
		t.Fatal("threads: 0 does not run the controller")
	}
	tc.apply(0) // unchanged: the same controller keeps running
	tc.apply(2)
	waitFor(2)
	if tc.cancel != nil {
		t.Fatal("the controller still runs under a fixed count")
	}
	t.Setenv("GOMAXPROCS", "5")
	tc.apply(0)
	waitFor(5)
	if tc.cancel != nil {
		t.Fatal("the controller runs although GOMAXPROCS is set")
	}
}
