package failover_test

import (
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/test/harness"
)

// BenchmarkFailoverTime kills the master (SIGKILL) 5 times under 8
// writers for each connection pattern (a connection per worker, a shared
// driver pool, a new connection per write) and prints, per pattern, the
// median time from the kill to the first write sent after it and
// acknowledged, the writes that failed, the acknowledged writes missing
// on the new master, and the median of each failover
// step (make bench-failover). b.N is ignored: one run is fifteen
// failovers.
func BenchmarkFailoverTime(b *testing.B) {
	const kills = 5
	for i, pattern := range []harness.Pattern{harness.ConnPerWriter, harness.SharedPool, harness.ConnPerWrite} {
		p, err := env.StartProxyErr(harness.ProxyOptions{LogLevel: "warn", Failover: failoverConfig})
		if err != nil {
			b.Fatal(err)
		}
		adm, _ := sql.Open("mysql", fmt.Sprintf("admin:admin@tcp(%s)/", p.AdminAddr))
		var firsts []time.Duration
		var failed []int64
		lost := 0
		steps := map[string][]time.Duration{}
		for run := 0; run < kills; run++ {
			table := fmt.Sprintf("p%d", i)
			w := harness.StartWritersPattern(b, p, 8, "fobench", table, pattern)
			w.WaitMore(b, 100)
			master := harness.MasterOf(b, adm)
			killed := time.Now()
			if err := env.Sandbox.Kill(master, syscall.SIGKILL); err != nil {
				b.Fatal(err)
			}
			var promoted string
			harness.WaitFor(b, "a new master", 30*time.Second, func() bool { promoted = harness.MasterOf(b, adm); return promoted != "" && promoted != master })
			w.WaitMore(b, 50)
			acked := w.Stop()
			n, _ := env.Lost(b, promoted, "fobench", table, acked)
			lost += n
			firsts = append(firsts, w.FirstAckAfter(killed))
			failed = append(failed, w.Failed())
			recs := harness.AdminRows(b, adm, "SHOW FAILOVERS")
			for name, d := range stepsOf(recs[len(recs)-1]["steps"]) {
				steps[name] = append(steps[name], d)
			}
			env.RestartAsReplica(b, adm, master)
			time.Sleep(1200 * time.Millisecond) // the cooldown used here (1s) is a time, not a condition
		}
		adm.Close()
		p.Stop()
		fmt.Printf("\n%s (%s): kill -9 under 8 writers, %d runs\n", pattern, harness.Flavor(), kills)
		fmt.Printf("  first new write after the kill: median %s (min %s, max %s); failed writes per kill %v; acknowledged writes lost: %d\n",
			median(firsts), minOf(firsts), maxOf(firsts), failed, lost)
		fmt.Printf("  steps (median):")
		for _, name := range []string{"hold", "pick", "fence", "apply", "promote", "repoint", "retarget", "verify"} {
			fmt.Printf(" %s=%s", name, median(steps[name]))
		}
		fmt.Println()
		b.ReportMetric(float64(median(firsts).Milliseconds()), fmt.Sprintf("median-ms-%d", i))
	}
}

// stepsOf parses SHOW FAILOVERS' steps column ("hold=5µs pick=1.6ms …").
func stepsOf(s string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, f := range strings.Fields(s) {
		name, val, ok := strings.Cut(f, "=")
		if i := strings.IndexByte(val, '('); i >= 0 {
			val = val[:i]
		}
		if d, err := time.ParseDuration(val); ok && err == nil {
			out[name] = d
		}
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Millisecond)
}

func minOf(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m.Round(time.Millisecond)
}

func maxOf(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = max(m, d)
	}
	return m.Round(time.Millisecond)
}
