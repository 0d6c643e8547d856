//go:build soak

// Package soak_test runs the proxy for a long time under everything that
// happens to it in production at once (make soak, not in CI): sysbench
// oltp_read_write, clients connecting and leaving all the time, a
// switchover every 2 minutes and a RELOAD every minute. Every minute it
// prints the process's RSS, goroutines and open file descriptors; at the
// end they must be where they were after the first minute (±10 %), and
// no acknowledged write may be missing.
package soak_test

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var duration = flag.Duration("soak", 30*time.Minute, "how long the soak runs")

var env *harness.Env

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(harness.MainWithSandbox(m, 2, 31, &env))
}

// sample is the process's footprint at one moment.
type sample struct {
	at                    time.Duration
	rssMiB, goroutines    float64
	fds, sessions, failed float64
}

func TestSoak(t *testing.T) {
	if _, err := exec.LookPath("sysbench"); err != nil {
		t.Fatal("sysbench is not installed: run make bench-deps")
	}
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Failover: "  cooldown: 1s\n"})
	adm := p.Admin(t)
	host, port, _ := strings.Cut(p.Addr, ":")
	sb := []string{"--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port, "--mysql-user=app", "--mysql-password=app",
		"--mysql-db=soak", "--mysql-ssl=off", "--tables=4", "--table-size=10000"}
	setup, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
	defer setup.Close()
	if _, err := setup.Exec("CREATE DATABASE IF NOT EXISTS soak"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sysbench", append(sb, "oltp_read_write", "prepare")...).CombinedOutput(); err != nil {
		t.Fatalf("sysbench prepare: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var wg sync.WaitGroup
	// sysbench, restarted if it stops (it gives up on a failed statement
	// during a switchover), counting its runs.
	var sysbenchRuns atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			cmd := exec.CommandContext(ctx, "sysbench", append(sb, "--threads=8", "--time=0", "--report-interval=0",
				"--mysql-ignore-errors=1213,1205,1927,1158,2013,1290", "oltp_read_write", "run")...)
			_ = cmd.Run()
			sysbenchRuns.Add(1)
		}
	}()
	// Writers whose every acknowledged row must survive; half keep their
	// connection, half open a new one per write (churn).
	kept := harness.StartWritersPattern(t, p, 4, "soak", "kept", harness.ConnPerWriter)
	churn := harness.StartWritersPattern(t, p, 4, "soak", "churn", harness.ConnPerWrite)
	// A switchover every 2 minutes, a reload every minute.
	var switchovers, reloads, changeErrors atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		orig, _ := os.ReadFile(p.ConfigPath)
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				_ = os.WriteFile(p.ConfigPath, orig, 0o600)
				return
			case <-tick.C:
			}
			weight := fmt.Sprintf("    weight: %d\n", 1+n%3)
			cfg := strings.Replace(string(orig), "  - name: replica2\n    host: 127.0.0.1\n", "  - name: replica2\n    host: 127.0.0.1\n"+weight, 1)
			if err := os.WriteFile(p.ConfigPath, []byte(cfg), 0o600); err == nil {
				if _, err := adm.Exec("RELOAD CONFIG"); err != nil {
					changeErrors.Add(1)
					t.Logf("reload: %v", err)
				} else {
					reloads.Add(1)
				}
			}
			if n%2 == 0 {
				if _, err := adm.Exec("SWITCHOVER"); err != nil {
					changeErrors.Add(1)
					t.Logf("switchover: %v", err)
				} else {
					switchovers.Add(1)
				}
			}
		}
	}()
	measure := func(at time.Duration) sample {
		m := p.Scrape(t)
		return sample{at: at, rssMiB: m["process_resident_memory_bytes"] / (1 << 20), goroutines: m["go_goroutines"],
			fds: m["process_open_fds"], sessions: m["switchyard_client_connections"]}
	}
	start := time.Now()
	var samples []sample
	t.Logf("%8s %9s %11s %6s %9s", "minute", "RSS MiB", "goroutines", "fds", "sessions")
	for tick := time.NewTicker(time.Minute); ; {
		select {
		case <-ctx.Done():
		case <-tick.C:
			s := measure(time.Since(start))
			samples = append(samples, s)
			t.Logf("%8.0f %9.1f %11.0f %6.0f %9.0f", s.at.Minutes(), s.rssMiB, s.goroutines, s.fds, s.sessions)
			continue
		}
		tick.Stop()
		break
	}
	last := measure(time.Since(start)) // still under load: comparable to the first minute
	wg.Wait()
	keptAcked, churnAcked := kept.Stop(), churn.Stop()
	master := harness.MasterOf(t, adm)
	lostKept, _ := env.Lost(t, master, "soak", "kept", keptAcked)
	lostChurn, _ := env.Lost(t, master, "soak", "churn", churnAcked)
	t.Logf("%s: %d switchovers, %d reloads, %d refused; sysbench started %d times; writers acknowledged %d (kept connections) and %d (new connection each), lost %d and %d, failed %d and %d",
		*duration, switchovers.Load(), reloads.Load(), changeErrors.Load(), sysbenchRuns.Load(), len(keptAcked), len(churnAcked),
		lostKept, lostChurn, kept.Failed(), churn.Failed())
	if lostKept+lostChurn != 0 {
		t.Errorf("%d acknowledged writes lost", lostKept+lostChurn)
	}
	if changeErrors.Load() != 0 {
		t.Errorf("%d switchovers or reloads failed", changeErrors.Load())
	}
	if len(samples) < 2 {
		t.Fatalf("only %d samples: run longer than 2 minutes", len(samples))
	}
	first := samples[0]
	t.Logf("first minute: RSS %.1f MiB, %v goroutines, %v fds; end: RSS %.1f MiB, %v goroutines, %v fds",
		first.rssMiB, first.goroutines, first.fds, last.rssMiB, last.goroutines, last.fds)
	for _, c := range []struct {
		what        string
		first, last float64
	}{{"RSS", first.rssMiB, last.rssMiB}, {"goroutines", first.goroutines, last.goroutines}, {"open fds", first.fds, last.fds}} {
		if math.Abs(c.last-c.first) > 0.1*c.first {
			t.Errorf("%s went from %.1f to %.1f (more than ±10%%)", c.what, c.first, c.last)
		}
	}
}
