//go:build faults

package chaos_test

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/test/harness"
)

// TestChaosConsistency: 8 writers insert unique ids through the proxy
// while a chaos loop kills the master (and restarts it), pauses replicas
// (SIGSTOP/SIGCONT) and stops replication threads. Afterwards every
// acknowledged id is on the final master exactly once, every server has
// the same GTID position, and no row was written by a server after it was
// fenced.
func TestChaosConsistency(t *testing.T) {
	const actions = 8
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "warn", Failover: "  cooldown: 1s\n  hold_timeout: 20s\n"})
	adm := p.Admin(t)
	w := harness.StartWriters(t, p, 8, "chaos", "acks")
	var stop atomic.Bool
	var wg sync.WaitGroup
	// Readers keep replicas busy (their errors are not counted: a paused
	// replica legitimately fails its running statement).
	for rd := 0; rd < 4; rd++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, _ := sql.Open("mysql", p.DSN("app", "app", "chaos", "timeout=5s&readTimeout=30s"))
			defer db.Close()
			for !stop.Load() {
				var n int
				_ = db.QueryRow("SELECT COUNT(*) FROM acks").Scan(&n)
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}

	master := func() string {
		for _, row := range harness.AdminRows(t, adm, "SHOW STATUS") {
			if row["variable"] == "master" {
				return row["value"]
			}
		}
		return ""
	}
	replicaNames := func(m string) []string {
		var out []string
		for _, in := range env.Sandbox.Instances {
			if in.Name != m {
				out = append(out, in.Name)
			}
		}
		return out
	}
	// Every server id each server had: a rebuilt server gets a new one,
	// and the rows it wrote before carry the old.
	ids := map[string][]any{}
	noteServerIDs := func() {
		for _, in := range env.Sandbox.Instances {
			if !slices.Contains(ids[in.Name], any(in.ServerID)) {
				ids[in.Name] = append(ids[in.Name], in.ServerID)
			}
		}
	}
	noteServerIDs()
	w.WaitMore(t, 200)
	for a := 0; a < actions; a++ {
		m := master()
		reps := replicaNames(m)
		victim := reps[r.IntN(len(reps))]
		switch kind := r.IntN(3); kind {
		case 0: // kill the master, wait for a new one, restart it as a replica
			t.Logf("action %d: SIGKILL master %s", a, m)
			if err := env.Sandbox.Kill(m, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			harness.WaitFor(t, "a new master", 30*time.Second, func() bool { return master() != m })
			// Restarted as a replica; on MySQL a master killed mid-commit
			// may come back diverged and is rebuilt, as an operator would.
			env.RestartAsReplica(t, adm, m)
		case 1: // pause a replica
			t.Logf("action %d: SIGSTOP %s for 2s", a, victim)
			_ = env.Sandbox.Kill(victim, syscall.SIGSTOP)
			time.Sleep(2 * time.Second) // the fault lasts 2 s
			_ = env.Sandbox.Kill(victim, syscall.SIGCONT)
		case 2: // stop replication threads
			t.Logf("action %d: stop replication on %s for 2s", a, victim)
			db := env.InstanceDB(t, victim)
			_, _ = db.Exec(harness.Flavor().StopReplicaSQL())
			time.Sleep(2 * time.Second) // the fault lasts 2 s
			_, _ = db.Exec(harness.Flavor().StartReplicaSQL())
			db.Close()
		}
		noteServerIDs()
		time.Sleep(1200 * time.Millisecond) // past the 1s cooldown: a time, not a condition
	}
	w.WaitMore(t, 200)
	acked := w.Stop()
	stop.Store(true)
	wg.Wait()

	final := master()
	mdb := env.InstanceDB(t, final)
	lost, rows := env.Lost(t, final, "chaos", "acks", acked)
	fmt.Printf("chaos: acknowledged %d, failed %d, lost %d (final master %s, %d rows)\n", len(acked), w.Failed(), lost, final, rows)
	if lost != 0 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}
	// Every server converges on the same GTID position.
	harness.WaitFor(t, "all servers to converge", 60*time.Second, func() bool {
		positions := map[string]bool{}
		for _, in := range env.Sandbox.Instances {
			db := env.InstanceDB(t, in.Name)
			var pos string
			err := db.QueryRow(harness.Flavor().GTIDPositionSQL()).Scan(&pos)
			db.Close()
			if err != nil {
				return false
			}
			positions[pos] = true
		}
		return len(positions) == 1
	})
	// Fenced-write audit: between the fence of an old master and the
	// moment it becomes master again (if ever), it must not have written
	// a row.
	recs := harness.AdminRows(t, adm, "SHOW FAILOVERS")
	for i, rec := range recs {
		if rec["succeeded"] != "1" {
			continue
		}
		started, err := time.Parse(time.RFC3339Nano, rec["started"])
		if err != nil {
			t.Fatal(err)
		}
		from := started.Add(fenceOffset(rec["steps"], "fence"))
		until := time.Now().Add(time.Hour)
		for _, later := range recs[i+1:] {
			if later["succeeded"] == "1" && later["new_master"] == rec["old_master"] {
				ls, _ := time.Parse(time.RFC3339Nano, later["started"])
				until = ls.Add(fenceOffset(later["steps"], "retarget"))
				break
			}
		}
		const layout = "2006-01-02 15:04:05.999999"
		var n int
		sids := ids[rec["old_master"]]
		q := "SELECT COUNT(*) FROM chaos.acks WHERE sid IN (?" + strings.Repeat(", ?", len(sids)-1) + ") AND ts > ? AND ts < ?"
		args := append(append([]any(nil), sids...), from.Local().Format(layout), until.Local().Format(layout))
		if err := mdb.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d rows written by %s after it was fenced (%s .. %s)", n, rec["old_master"], from, until)
		}
	}
	fmt.Printf("chaos: %d topology changes audited for writes after fencing\n", len(recs))
}

// fenceOffset is the time from the start of a topology change to the end
// of the named step.
func fenceOffset(steps, step string) time.Duration {
	var total time.Duration
	for _, part := range strings.Fields(steps) {
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		if i := strings.Index(val, "("); i >= 0 {
			val = val[:i]
		}
		d, err := time.ParseDuration(val)
		if err != nil {
			continue
		}
		total += d
		if name == step {
			return total
		}
	}
	return total
}
