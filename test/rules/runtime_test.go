package rules_test

import (
	"database/sql"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

// canLogIn reports whether user/password logs in and runs a statement.
func canLogIn(p *harness.Proxy, user, password string) error {
	db, err := sql.Open("mysql", p.DSN(user, password, "", "timeout=3s"))
	if err != nil {
		return err
	}
	defer db.Close()
	var one int
	return db.QueryRow("SELECT 1").Scan(&one)
}

func adminExec(t *testing.T, adm *sql.DB, q string) {
	t.Helper()
	if _, err := adm.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestRuntimeChangesAlone: a user and a rule added on the admin port work
// at once, are written into the config file (the password as a hash,
// comments kept) and are still there after a restart; a bad change is
// refused whole; DROP USER takes a user away.
func TestRuntimeChangesAlone(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Users: "  # our apps\n" + users})
	adm := p.Admin(t)
	adminExec(t, adm, "ADD USER 'dana' IDENTIFIED BY 'dana-pw' BACKEND 'app' MAX_CONNECTIONS 5")
	adminExec(t, adm, `ADD RULE {name: no-drops, match: {regex: '(?i)^\s*DROP\s'}, block: ask the DBA}`)
	adminExec(t, adm, "SET BACKEND 'replica2' WEIGHT 3")
	if err := canLogIn(p, "dana", "dana-pw"); err != nil {
		t.Fatalf("dana after ADD USER: %v", err)
	}
	if err := canLogIn(p, "dana", "wrong"); err == nil {
		t.Fatal("dana logged in with a wrong password")
	}
	blocked := func(p *harness.Proxy) error {
		db, _ := sql.Open("mysql", p.DSN("dana", "dana-pw", "", ""))
		defer db.Close()
		_, err := db.Exec("DROP TABLE IF EXISTS rc.nothing")
		return err
	}
	var me *mysql.MySQLError
	if err := blocked(p); !errors.As(err, &me) || me.Number != 1148 {
		t.Fatalf("DROP after ADD RULE: %v", err)
	}
	text, _ := os.ReadFile(p.ConfigPath)
	if strings.Contains(string(text), "dana-pw") || !strings.Contains(string(text), "password_hash") || !strings.Contains(string(text), "# our apps") {
		t.Fatalf("the config file after the changes:\n%s", text)
	}
	// A bad change: refused whole, nothing applied.
	if _, err := adm.Exec(`ADD RULE {name: broken, match: {regex: '(unclosed'}, block: x}`); err == nil || !strings.Contains(err.Error(), "nothing applied") {
		t.Fatalf("a bad rule: %v", err)
	}
	if rows := harness.AdminRows(t, adm, "SHOW RULES"); len(rows) != 1 {
		t.Fatalf("after a refused change: %v", rows)
	}
	// Restart: everything is still there.
	addr, adminAddr, httpAddr := p.Addr, p.AdminAddr, p.HTTPAddr
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	p2 := env.StartConfig(t, p.ConfigPath, addr, adminAddr, httpAddr)
	if err := canLogIn(p2, "dana", "dana-pw"); err != nil {
		t.Fatalf("dana after a restart: %v", err)
	}
	if err := blocked(p2); !errors.As(err, &me) || me.Number != 1148 {
		t.Fatalf("the rule after a restart: %v", err)
	}
	adm2 := p2.Admin(t)
	if w := harness.Backend(t, adm2, "replica2")["weight"]; w != "3" {
		t.Errorf("replica2's weight after a restart: %s", w)
	}
	adminExec(t, adm2, "DROP USER 'dana'")
	if err := canLogIn(p2, "dana", "dana-pw"); err == nil {
		t.Fatal("dana still logs in after DROP USER")
	}
}

// TestRuntimeChangesShared: two instances on etcd: a user added on one
// logs in on the other within a second, a rule added on the other blocks
// on the first, both run the same configuration version, and it survives
// a restart.
func TestRuntimeChangesShared(t *testing.T) {
	etcd := harness.EtcdFor(t)
	var ps []*harness.Proxy
	for _, id := range []string{"a", "b"} {
		ps = append(ps, env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Users: users, Extra: etcd.CoordinationConfig(id, "/rt")}))
	}
	a, b := ps[0], ps[1]
	adminExec(t, a.Admin(t), "ADD USER 'erin' IDENTIFIED BY 'erin-pw' BACKEND 'app'")
	took := harness.WaitFor(t, "erin to log in on the other instance", 10*time.Second, func() bool { return canLogIn(b, "erin", "erin-pw") == nil })
	t.Logf("a user added on instance a logs in on instance b %v later", took.Round(time.Millisecond))
	adminExec(t, b.Admin(t), `ADD RULE {name: no-truncate, match: {regex: '(?i)^TRUNCATE'}, block: not here}`)
	harness.WaitFor(t, "the rule on the first instance", 10*time.Second, func() bool {
		return len(harness.AdminRows(t, a.Admin(t), "SHOW RULES")) == 1
	})
	harness.WaitFor(t, "both instances to report version 2", 10*time.Second, func() bool {
		versions := map[string]string{}
		for _, r := range harness.AdminRows(t, a.Admin(t), "SHOW CLUSTER") {
			versions[r["instance"]] = r["config_version"]
		}
		return versions["a"] == "2" && versions["b"] == "2"
	})
	if cfg := harness.AdminRows(t, b.Admin(t), "SHOW CONFIG")[0]["config"]; !strings.Contains(cfg, "a=2") || !strings.Contains(cfg, "b=2") {
		t.Errorf("SHOW CONFIG does not say which version runs where:\n%s", cfg[:min(len(cfg), 300)])
	}
	text, _ := os.ReadFile(b.ConfigPath)
	if strings.Contains(string(text), "erin") {
		t.Error("the coordinated change was written into the file instead of etcd")
	}
	// b restarts: it takes the layer from etcd again.
	addr, adminAddr, httpAddr := b.Addr, b.AdminAddr, b.HTTPAddr
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b2 := env.StartConfig(t, b.ConfigPath, addr, adminAddr, httpAddr)
	harness.WaitFor(t, "erin on the restarted instance", 10*time.Second, func() bool { return canLogIn(b2, "erin", "erin-pw") == nil })
	db, _ := sql.Open("mysql", b2.DSN("erin", "erin-pw", "", ""))
	defer db.Close()
	var me *mysql.MySQLError
	if _, err := db.Exec("TRUNCATE TABLE rc.nothing"); !errors.As(err, &me) || me.Number != 1148 {
		t.Errorf("the rule on the restarted instance: %v", err)
	}
}
