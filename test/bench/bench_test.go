// Package bench measures the proxy against a direct connection to the
// same server in the same run, and prints the ratios (make bench).
package bench

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var (
	env   *harness.Env
	proxy *harness.Proxy

	mu      sync.Mutex
	results = map[string]float64{} // benchmark name → ns/op of its final run
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run()) // plain "go test ./...": nothing to start
	}
	var err error
	env, err = harness.Setup(1, 7)
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
	proxy, err = env.StartProxyErr(harness.ProxyOptions{LogLevel: "warn"})
	if err != nil {
		env.Teardown()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	printRatios()
	proxy.Stop()
	env.Teardown()
	os.Exit(code)
}

func record(b *testing.B, name string) {
	mu.Lock()
	results[name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	mu.Unlock()
}

func printRatios() {
	mu.Lock()
	defer mu.Unlock()
	var names []string
	for n := range results {
		if len(n) > 7 && n[len(n)-7:] == "/direct" {
			names = append(names, n[:len(n)-7])
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return
	}
	fmt.Println("\nproxy vs direct (same run; ratio = proxy time per op / direct time per op)")
	for _, n := range names {
		d, p := results[n+"/direct"], results[n+"/proxy"]
		if d == 0 || p == 0 {
			continue
		}
		fmt.Printf("  %-28s direct %9.1f µs/op   proxy %9.1f µs/op   ratio %.2fx\n", n, d/1e3, p/1e3, p/d)
	}
}

func openBoth(b *testing.B) map[string]*sql.DB {
	b.Helper()
	direct, err := sql.Open("mysql", fmt.Sprintf("app:app@tcp(%s)/bench_db", env.Sandbox.Master().Addr()))
	if err != nil {
		b.Fatal(err)
	}
	viaProxy, err := sql.Open("mysql", proxy.DSN("app", "app", "bench_db", ""))
	if err != nil {
		b.Fatal(err)
	}
	for _, db := range []*sql.DB{direct, viaProxy} {
		db.SetMaxIdleConns(64)
	}
	b.Cleanup(func() { direct.Close(); viaProxy.Close() })
	return map[string]*sql.DB{"direct": direct, "proxy": viaProxy}
}

func setupTable(b *testing.B) {
	b.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("app:app@tcp(%s)/", env.Sandbox.Master().Addr()))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS bench_db",
		"CREATE TABLE IF NOT EXISTS bench_db.t (id INT PRIMARY KEY, k INT, c CHAR(60))",
		"INSERT IGNORE INTO bench_db.t SELECT seq, seq % 100, REPEAT('c', 60) FROM bench_db.seq_1_to_10000",
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPointSelect: 16 concurrent clients, prepared point selects.
func BenchmarkPointSelect(b *testing.B) {
	setupTable(b)
	for _, side := range []string{"direct", "proxy"} {
		b.Run(side, func(b *testing.B) {
			db := openBoth(b)[side]
			b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 clients
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				var c string
				for pb.Next() {
					i++
					if err := db.QueryRow("SELECT c FROM t WHERE id = ?", i%10000+1).Scan(&c); err != nil {
						b.Error(err)
						return
					}
				}
			})
			record(b, "PointSelect/"+side)
		})
	}
}

// BenchmarkLargeResult: one client streaming 100k rows.
func BenchmarkLargeResult(b *testing.B) {
	setupTable(b)
	for _, side := range []string{"direct", "proxy"} {
		b.Run(side, func(b *testing.B) {
			db := openBoth(b)[side]
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rows, err := db.Query("SELECT seq, REPEAT('x', 50) FROM seq_1_to_100000")
				if err != nil {
					b.Fatal(err)
				}
				var s int
				var pad sql.RawBytes
				for rows.Next() {
					_ = rows.Scan(&s, &pad)
				}
				rows.Close()
			}
			record(b, "LargeResult/"+side)
		})
	}
}

// BenchmarkConnect: a new connection (handshake + auth) each time.
func BenchmarkConnect(b *testing.B) {
	setupTable(b)
	for _, side := range []string{"direct", "proxy"} {
		b.Run(side, func(b *testing.B) {
			dsn := fmt.Sprintf("app:app@tcp(%s)/bench_db", env.Sandbox.Master().Addr())
			if side == "proxy" {
				dsn = proxy.DSN("app", "app", "bench_db", "")
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				db, _ := sql.Open("mysql", dsn)
				if err := db.Ping(); err != nil {
					b.Fatal(err)
				}
				db.Close()
			}
			record(b, "Connect/"+side)
		})
	}
}
