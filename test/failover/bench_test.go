package failover_test

import (
	"database/sql"
	"fmt"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/test/harness"
)

// BenchmarkFailoverTime measures, over 10 SIGKILLs of the master, the time
// from the kill to the first write acknowledged through the proxy, and
// prints min/median/max (make bench-failover). b.N is ignored: one run is
// ten failovers.
func BenchmarkFailoverTime(b *testing.B) {
	p, err := env.StartProxyErr(harness.ProxyOptions{LogLevel: "warn", Failover: failoverConfig})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop()
	adm, _ := sql.Open("mysql", fmt.Sprintf("admin:admin@tcp(%s)/", p.AdminAddr))
	defer adm.Close()
	db, _ := sql.Open("mysql", p.DSN("app", "app", "", "timeout=5s"))
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE DATABASE IF NOT EXISTS fobench"); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS fobench.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, at BIGINT)"); err != nil {
		b.Fatal(err)
	}
	var times []time.Duration
	for run := 0; run < 10; run++ {
		master := adminValue(b, adm, "master")
		var killedAt, writes atomic.Int64
		done := make(chan time.Duration, 1)
		go func() {
			for {
				_, err := db.Exec("INSERT INTO fobench.t (at) VALUES (?)", time.Now().UnixNano())
				if err == nil {
					writes.Add(1)
				}
				if k := killedAt.Load(); k != 0 && err == nil {
					done <- time.Since(time.Unix(0, k))
					return
				}
				if err != nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
		harness.WaitFor(b, "a write before the kill", 10*time.Second, func() bool { return writes.Load() > 0 })
		killedAt.Store(time.Now().UnixNano())
		if err := env.Sandbox.Kill(master, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		select {
		case d := <-done:
			times = append(times, d)
		case <-time.After(30 * time.Second):
			b.Fatalf("run %d: no write succeeded within 30s", run)
		}
		if err := env.Sandbox.StartAsReplica(b.Context(), master); err != nil {
			b.Fatal(err)
		}
		harness.WaitFor(b, master+" to rejoin", 30*time.Second, func() bool { return backendRole(b, adm, master) == "replica" })
		time.Sleep(1200 * time.Millisecond) // the cooldown used here (1s) is a time, not a condition
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("\nfailover: kill -> first acknowledged write through the proxy, %d runs\n", len(times))
	fmt.Printf("  min %s   median %s   max %s\n", times[0].Round(time.Millisecond),
		times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "median-ms")
}

func adminValue(b *testing.B, adm *sql.DB, name string) string {
	rows, err := adm.Query("SHOW STATUS")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		_ = rows.Scan(&k, &v)
		if k == name {
			return v
		}
	}
	return ""
}

func backendRole(b *testing.B, adm *sql.DB, name string) string {
	return harness.Backend(b, adm, name)["role"]
}
