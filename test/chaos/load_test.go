//go:build faults

// Package chaos_test holds the long fault suite (make test-faults): a
// 2,000-client load test with leak checks and a chaos loop with a
// consistency checker. Each run is bounded in count and time.
package chaos_test

import (
	"database/sql"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithSandbox(m, 2, 8, &env))
}

func inUse(g map[string]float64) float64 {
	n := 0.0
	for k, v := range g {
		if strings.HasPrefix(k, "switchyard_pool_connections,") && strings.HasSuffix(k, "state=in_use") {
			n += v
		}
	}
	return n
}

func TestLoad2000Clients(t *testing.T) {
	const clients = 2000
	const duration = 20 * time.Second
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "warn",
		Extra: "pool:\n  max_connections: 2600\n  max_idle: 2600\n  acquire_timeout: 30s\n"})
	setup, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS load_db",
		"CREATE TABLE IF NOT EXISTS load_db.t (id BIGINT PRIMARY KEY, v INT)",
		"INSERT IGNORE INTO load_db.t SELECT seq, seq FROM load_db.seq_1_to_10000"} {
		if _, err := setup.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	setup.Close()
	// Reads go to replicas: start once they have the data.
	for _, in := range env.Sandbox.ReplicaInstances() {
		db := env.InstanceDB(t, in.Name)
		harness.WaitFor(t, in.Name+" to get the test data", 30*time.Second, func() bool {
			var n int
			return db.QueryRow("SELECT COUNT(*) FROM load_db.t").Scan(&n) == nil && n == 10000
		})
	}
	time.Sleep(time.Second) // let the setup sessions' goroutines end before the baseline
	base := p.Scrape(t)
	var ops, errs atomic.Int64
	var errMu sync.Mutex
	errSamples := map[string]int{}
	var peakRSS float64
	stop := make(chan struct{})
	go func() { // sample memory while the load runs
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
				if rss := p.Scrape(t)["process_resident_memory_bytes"]; rss > peakRSS {
					peakRSS = rss
				}
			}
		}
	}()
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(clients)
	deadline := time.Now().Add(duration)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, _ := sql.Open("mysql", p.DSN("app", "app", "load_db", "timeout=30s&readTimeout=60s"))
			defer db.Close()
			db.SetMaxOpenConns(1)
			err := db.Ping()
			ready.Done()
			if err != nil {
				errs.Add(1)
				errMu.Lock()
				errSamples["connect: "+err.Error()]++
				errMu.Unlock()
				return
			}
			r := rand.New(rand.NewPCG(uint64(c), 7))
			for time.Now().Before(deadline) {
				id := r.IntN(10000) + 1
				var err error
				if r.IntN(5) == 0 {
					_, err = db.Exec("UPDATE t SET v = v + 1 WHERE id = ?", id)
				} else {
					var v int
					err = db.QueryRow("SELECT v FROM t WHERE id = ?", id).Scan(&v)
				}
				ops.Add(1)
				if err != nil {
					errs.Add(1)
					errMu.Lock()
					errSamples[err.Error()]++
					errMu.Unlock()
				}
				time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
			}
		}()
	}
	ready.Wait()
	during := p.Scrape(t)
	wg.Wait()
	close(stop)
	t.Logf("%d clients, %s: %d statements, %d errors; peak RSS %.0f MiB; client connections during load %.0f",
		clients, duration, ops.Load(), errs.Load(), peakRSS/(1<<20), during["switchyard_client_connections"])
	if errs.Load() != 0 {
		t.Fatalf("unexpected errors: %v", errSamples)
	}
	if during["switchyard_client_connections"] < clients*0.9 {
		t.Fatalf("only %.0f clients were connected at once", during["switchyard_client_connections"])
	}
	// Counts return to baseline once the clients are gone.
	var after map[string]float64
	ok := false
	for i := 0; i < 100 && !ok; i++ {
		time.Sleep(200 * time.Millisecond)
		after = p.Scrape(t)
		ok = after["switchyard_client_connections"] == 0 && inUse(after) == 0 &&
			after["go_goroutines"] <= base["go_goroutines"]+10
	}
	t.Logf("goroutines: baseline %.0f, during %.0f, after %.0f; pool in use after %.0f",
		base["go_goroutines"], during["go_goroutines"], after["go_goroutines"], inUse(after))
	if !ok {
		t.Fatalf("leak: client connections %.0f, pool in use %.0f, goroutines %.0f (baseline %.0f)",
			after["switchyard_client_connections"], inUse(after), after["go_goroutines"], base["go_goroutines"])
	}
	if peakRSS > 1.5*(1<<30) {
		t.Fatalf("peak RSS %.0f MiB for %d clients", peakRSS/(1<<20), clients)
	}
}
