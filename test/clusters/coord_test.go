package clusters_test

import (
	"database/sql"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/test/harness"
)

// TestTwoProxiesTwoClusters: two instances coordinated by a real etcd,
// in front of two clusters: each cluster has exactly one leader (one
// election key per cluster), and killing the master of either cluster
// promotes once, seen alike by both instances, while the other cluster
// keeps its master.
func TestTwoProxiesTwoClusters(t *testing.T) {
	etcd := harness.EtcdFor(t)
	var ps []*harness.Proxy
	var adms []*sql.DB
	for _, id := range []string{"a", "b"} {
		p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Users: users,
			Failover: "  cooldown: 1s\n  hold_timeout: 30s\n", Extra: etcd.CoordinationConfig(id, "/fleet")})
		ps, adms = append(ps, p), append(adms, p.Admin(t))
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("instance %s log tail:\n%s", id, tail(p.Log(), 6000))
			}
		})
	}
	leaders := func() map[string]int {
		n := map[string]int{}
		for _, adm := range adms {
			for _, r := range harness.AdminRows(t, adm, "SHOW CLUSTERS") {
				if r["coordination"] == "etcd, leader" {
					n[r["cluster"]]++
				}
			}
		}
		return n
	}
	harness.WaitFor(t, "one leader per cluster", 20*time.Second, func() bool {
		n := leaders()
		return n["c1"] == 1 && n["c2"] == 1
	})
	for _, victim := range []string{"c2", "c1"} {
		before := masters(t, adms[0])
		succeeded := func() (n int) {
			for _, adm := range adms {
				for _, r := range harness.AdminRows(t, adm, "SHOW FAILOVERS") {
					if r["cluster"] == victim && r["succeeded"] == "1" {
						n++
					}
				}
			}
			return n
		}
		was := succeeded()
		if err := env.Sandbox.Kill(before[victim], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, "both instances on "+victim+"'s new master", 30*time.Second, func() bool {
			a, b := masters(t, adms[0]), masters(t, adms[1])
			return a[victim] != before[victim] && a[victim] == b[victim]
		})
		time.Sleep(2 * time.Second) // a second promotion would show up here
		after := masters(t, adms[0])
		if n := succeeded() - was; n != 1 {
			t.Errorf("killing %s's master led to %d promotions across the instances, want 1", victim, n)
		}
		for c, m := range before {
			if c != victim && after[c] != m {
				t.Errorf("cluster %s moved from %s to %s when %s's master died", c, m, after[c], victim)
			}
		}
		t.Logf("%s: %s → %s", victim, before[victim], after[victim])
		env.RestartAsReplica(t, adms[0], before[victim])
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
