package operator_test

import (
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/test/harness"
)

// TestThreadsFollowLoad runs the proxy with the default threads setting
// (sized to the load) and watches GOMAXPROCS through /metrics
// (go_sched_gomaxprocs_threads): one thread while idle, more while eight
// clients keep it busy with statements it answers itself, one again once
// they stop, and every statement answered meanwhile. The statements are
// long (too long for the classifier's cache, so each is parsed) and a rule
// blocks them (no server in the way): the proxy spends several times the
// CPU its clients do per statement, so it needs more than the 60 % of a
// core that makes it add a thread even when the clients share its two
// CPUs (with a short cached SELECT, client and proxy took half each and
// the proxy at times stayed under the threshold).
func TestThreadsFollowLoad(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Fatalf("this test needs 2 CPUs to see the thread count grow; the machine has %d", runtime.NumCPU())
	}
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Extra: "rules:\n  - name: load\n    match: {regex: '^SELECT 42'}\n    block: thread test\n"})
	threads := func() float64 { return p.Scrape(t)["go_sched_gomaxprocs_threads"] }
	harness.WaitFor(t, "one thread while idle", 10*time.Second, func() bool { return threads() == 1 })

	db, err := sql.Open("mysql", p.DSN("app", "app", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(8)
	var columns strings.Builder
	for i := 0; columns.Len() < 3000; i++ {
		fmt.Fprintf(&columns, ", %d AS column_%d", i, i)
	}
	statement := "SELECT 42" + columns.String()
	var stop atomic.Bool
	var answered, failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				_, err := db.Exec(statement)
				if err == nil || !strings.Contains(err.Error(), "blocked by rule load") {
					failed.Add(1)
					continue
				}
				answered.Add(1)
			}
		}()
	}
	grew := false
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !grew {
		time.Sleep(100 * time.Millisecond)
		grew = threads() >= 2
	}
	stop.Store(true)
	wg.Wait()
	if !grew {
		t.Fatalf("GOMAXPROCS stayed at %v under load (%d statements answered)", threads(), answered.Load())
	}
	if failed.Load() != 0 {
		t.Fatalf("%d of %d statements failed while the thread count changed", failed.Load(), failed.Load()+answered.Load())
	}
	harness.WaitFor(t, "one thread again after the load", 15*time.Second, func() bool { return threads() == 1 })
}
