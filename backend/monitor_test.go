package backend

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// refusedAddr is a loopback address nothing listens on: checks fail at
// once with "connection refused".
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestMonitorStopEndsWatchersAddedByReload: a server added by a reload
// (Sync) is watched under the monitor's context like the others, so Stop
// ends its checks too (they ran under context.Background() and outlived
// the monitor).
func TestMonitorStopEndsWatchersAddedByReload(t *testing.T) {
	c := NewCluster("default", []Server{{Name: "m", Addr: refusedAddr(t)}}, "m", PoolOptions{}, nil)
	m := NewMonitor(c, MonitorOptions{Interval: 5 * time.Millisecond, Timeout: time.Second}, zap.NewNop())
	var mu sync.Mutex
	checks := map[string]int{}
	m.OnCheck = func(name string, _ Health) {
		mu.Lock()
		checks[name]++
		mu.Unlock()
	}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return checks[name]
	}
	m.Start(context.Background())
	if err := c.SetServers([]Server{{Name: "m", Addr: c.Topo.Servers()[0].Addr}, {Name: "added", Addr: refusedAddr(t)}}, PoolOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	m.Sync()
	for deadline := time.Now().Add(10 * time.Second); count("added") < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the added server is not checked")
		}
	}
	stopped := make(chan struct{})
	go func() { m.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop does not return")
	}
	after := count("added")
	time.Sleep(50 * time.Millisecond) // ten intervals
	if n := count("added"); n != after {
		t.Fatalf("the added server was checked %d more times after Stop", n-after)
	}
}
