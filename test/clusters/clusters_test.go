// Package clusters_test runs one Switchyard in front of two clusters (a
// sandbox of clusters c1 and c2, databases db1 and db2): statements go to
// the cluster of the databases they name, a statement spanning both is
// refused, and a failover in one cluster leaves the other untouched.
package clusters_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/sandbox"
	"github.com/switchyard/switchyard/test/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	e, err := harness.SetupClusters(2, 1, 21)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		e.Teardown()
		os.Exit(1)
	}
	env = e
	code := m.Run()
	e.Teardown()
	os.Exit(code)
}

// users: app (default cluster: the first), crm (default cluster c2, at
// most 3 sessions).
const users = "  - name: app\n    password: app\n  - name: crm\n    password: crm\n    backend_user: app\n    backend_password: app\n    cluster: c2\n    max_connections: 3\n"

func startProxy(t *testing.T) *harness.Proxy {
	t.Helper()
	return env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Users: users, Failover: "  cooldown: 1s\n  hold_timeout: 15s\n"})
}

// masters returns each cluster's master, from SHOW CLUSTERS.
func masters(t *testing.T, adm *sql.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range harness.AdminRows(t, adm, "SHOW CLUSTERS") {
		out[r["cluster"]] = r["master"]
	}
	return out
}

// serverOf names the sandbox server with the given server id.
func serverOf(t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, sqlText string) string {
	t.Helper()
	var id int
	if err := q.QueryRowContext(context.Background(), sqlText).Scan(&id); err != nil {
		t.Fatalf("%s: %v", sqlText, err)
	}
	return env.ServerName(id)
}

// TestRoutingToClusters: by the session's database, by qualified table
// names, by the user's default cluster, through USE; a statement naming
// both clusters is refused with both names, and runs nowhere.
func TestRoutingToClusters(t *testing.T) {
	p := startProxy(t)
	adm := p.Admin(t)
	m := masters(t, adm)
	app, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
	defer app.Close()
	for _, q := range []string{"CREATE TABLE IF NOT EXISTS db1.t (id INT PRIMARY KEY, sid INT)", "CREATE TABLE IF NOT EXISTS db2.t (id INT PRIMARY KEY, sid INT)",
		"REPLACE INTO db1.t VALUES (1, @@server_id)", "REPLACE INTO db2.t VALUES (1, @@server_id)"} {
		if _, err := app.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Reads below go to replicas: wait until each has its cluster's row.
	for _, c := range env.Sandbox.ClusterNames() {
		for _, in := range env.Sandbox.ClusterInstances(c) {
			db := env.InstanceDB(t, in.Name)
			q := "SELECT sid FROM " + sandbox.ClusterDatabase(c) + ".t WHERE id = 1"
			harness.WaitFor(t, in.Name+" to replicate the setup", 10*time.Second, func() bool {
				var sid int
				return db.QueryRow(q).Scan(&sid) == nil
			})
		}
	}
	cases := []struct {
		name, user, db, sql, want string
	}{
		{"session in db1", "app", "db1", "SELECT sid FROM t WHERE id = 1", m["c1"]},
		{"session in db2", "app", "db2", "SELECT sid FROM t WHERE id = 1", m["c2"]},
		{"qualified table of the other cluster", "app", "db1", "SELECT sid FROM db2.t WHERE id = 1", m["c2"]},
		{"no database: the user's default cluster", "crm", "", "SELECT sid FROM db2.t WHERE id = 1", m["c2"]},
		{"a write goes to its cluster's master", "app", "db2", "SELECT @@server_id FROM t FOR UPDATE", m["c2"]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := sql.Open("mysql", p.DSN(tc.user, tc.user, tc.db, ""))
			defer db.Close()
			if got := serverOf(t, db, tc.sql); got != tc.want {
				t.Fatalf("%s ran its data from %s, want %s", tc.sql, got, tc.want)
			}
		})
	}
	// USE moves a session to the other cluster (no transaction open).
	c := p.Session(t, "app", "app", "db1", "")
	if _, err := c.ExecContext(context.Background(), "USE db2"); err != nil {
		t.Fatal(err)
	}
	if got := serverOf(t, c, "SELECT @@server_id FROM t FOR UPDATE"); got != m["c2"] {
		t.Fatalf("after USE db2 the write ran on %s, want %s", got, m["c2"])
	}
	// A statement or a transaction spanning both clusters is refused.
	_, err := app.Exec("INSERT INTO db1.t SELECT id + 10, sid FROM db2.t")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || !strings.Contains(me.Message, "c1 and c2") {
		t.Fatalf("a statement spanning two clusters: %v", err)
	}
	tx := p.Session(t, "app", "app", "db1", "")
	if _, err := tx.ExecContext(context.Background(), "BEGIN"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.ExecContext(context.Background(), "UPDATE db2.t SET sid = 0")
	if !errors.As(err, &me) || !strings.Contains(me.Message, "transaction runs on cluster c1") {
		t.Fatalf("a transaction spanning two clusters: %v", err)
	}
	var sid int
	if err := app.QueryRow("SELECT sid FROM db2.t WHERE id = 1").Scan(&sid); err != nil || sid == 0 {
		t.Fatalf("the refused statement ran: sid %d %v", sid, err)
	}
	for _, r := range harness.AdminRows(t, adm, "SHOW SESSIONS") {
		if r["cluster"] == "" {
			t.Errorf("SHOW SESSIONS without a cluster: %v", r)
		}
	}
}

// TestFailoverInOneCluster: c1's master is killed under 8 writers on
// each cluster: c1 fails over and loses nothing; c2's writers see no
// error and c2's topology does not move.
func TestFailoverInOneCluster(t *testing.T) {
	p := startProxy(t)
	adm := p.Admin(t)
	w1 := harness.StartWritersPattern(t, p, 8, "db1", "w", harness.ConnPerWriter)
	w2 := harness.StartWritersPattern(t, p, 8, "db2", "w", harness.ConnPerWriter)
	w1.WaitMore(t, 100)
	w2.WaitMore(t, 100)
	before := masters(t, adm)
	epoch2 := clusterRow(t, adm, "c2")["epoch"]
	var held sync.WaitGroup
	stop := make(chan struct{})
	heldSeen := false
	held.Add(1)
	go func() { // watch c2's gate while c1 fails over
		defer held.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if clusterRow(t, adm, "c2")["holding_writes"] == "1" {
				heldSeen = true
			}
		}
	}()
	if err := env.Sandbox.Kill(before["c1"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "c1 to fail over", 20*time.Second, func() bool { return masters(t, adm)["c1"] != before["c1"] })
	w1.WaitMore(t, 100)
	w2.WaitMore(t, 100)
	close(stop)
	held.Wait()
	acked1, acked2 := w1.Stop(), w2.Stop()
	after := masters(t, adm)
	t.Logf("c1: %s → %s, %d acknowledged, %d failed %v; c2: %d acknowledged, %d failed", before["c1"], after["c1"], len(acked1),
		w1.Failed(), w1.Errors(), len(acked2), w2.Failed())
	if lost, _ := env.Lost(t, after["c1"], "db1", "w", acked1); lost != 0 {
		t.Errorf("c1 lost %d acknowledged writes", lost)
	}
	if w2.Failed() != 0 || heldSeen || after["c2"] != before["c2"] || clusterRow(t, adm, "c2")["epoch"] != epoch2 {
		t.Errorf("c2 was touched by c1's failover: %d failed %v, writes held %v, master %s → %s", w2.Failed(), w2.Errors(), heldSeen,
			before["c2"], after["c2"])
	}
	f := harness.AdminRows(t, adm, "SHOW FAILOVERS")
	if last := f[len(f)-1]; last["cluster"] != "c1" || last["succeeded"] != "1" {
		t.Errorf("SHOW FAILOVERS: %v", last)
	}
	env.RestartAsReplica(t, adm, before["c1"])
}

func clusterRow(t *testing.T, adm *sql.DB, name string) map[string]string {
	for _, r := range harness.AdminRows(t, adm, "SHOW CLUSTERS") {
		if r["cluster"] == name {
			return r
		}
	}
	t.Fatalf("SHOW CLUSTERS has no %s", name)
	return nil
}

// TestPerUserLimit: crm may hold 3 sessions; a fourth gets 1040 at once,
// and app is not affected.
func TestPerUserLimit(t *testing.T) {
	p := startProxy(t)
	var open []*sql.Conn
	for i := 0; i < 3; i++ {
		open = append(open, p.Session(t, "crm", "crm", "", ""))
	}
	db, _ := sql.Open("mysql", p.DSN("crm", "crm", "", ""))
	defer db.Close()
	err := db.Ping()
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1040 {
		t.Fatalf("a fourth crm session: %v, want 1040", err)
	}
	other, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
	defer other.Close()
	if err := other.Ping(); err != nil {
		t.Fatalf("app blocked by crm's limit: %v", err)
	}
	harness.EndSession(open[0])
	harness.WaitFor(t, "a crm slot to free up", 5*time.Second, func() bool { return db.Ping() == nil })
}
