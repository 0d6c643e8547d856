// Package migration_test takes the road from MHA + Mycat to Switchyard on
// a sandbox: an app1.cnf and a schema.xml/server.xml describing the
// sandbox's servers go through `switchyard import`, the config it writes
// runs, the Mycat user connects to Mycat's port, and a switchover and a
// failover call the MHA scripts with MHA's arguments.
package migration_test

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/sandbox"
	"github.com/switchyard/switchyard/test/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithSandbox(m, 2, 19, &env))
}

// mhaScript is an MHA-style IP script that records its arguments.
const mhaScript = `#!/bin/sh
echo "$(basename "$0") $*" >> %s
`

func TestImportedMHAAndMycatConfigRuns(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls.log")
	harness.WriteFile(t, filepath.Join(dir, "master_ip_failover"), fmt.Sprintf(mhaScript, calls), 0o755)
	harness.WriteFile(t, filepath.Join(dir, "master_ip_online_change"), fmt.Sprintf(mhaScript, calls), 0o755)
	sb := env.Sandbox
	master, r1, r2 := sb.Instances[0], sb.Instances[1], sb.Instances[2]
	harness.WriteFile(t, filepath.Join(dir, "app1.cnf"), fmt.Sprintf(`[server default]
manager_workdir=/var/log/masterha/app1
manager_log=/var/log/masterha/app1/manager.log
user=%s
password=%s
repl_user=%s
repl_password=%s
ssh_user=root
ping_interval=1
master_ip_failover_script=%s/master_ip_failover
master_ip_online_change_script=%s/master_ip_online_change

[server1]
hostname=127.0.0.1
port=%d

[server2]
hostname=127.0.0.1
port=%d
candidate_master=1

[server3]
hostname=127.0.0.1
port=%d
no_master=1
`, sandbox.MonitorUser, sandbox.MonitorPassword, sandbox.ReplUser, sandbox.ReplPassword, dir, dir, master.Port, r1.Port, r2.Port), 0o600)
	ports, err := harness.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, filepath.Join(dir, "schema.xml"), fmt.Sprintf(`<?xml version="1.0"?>
<!DOCTYPE mycat:schema SYSTEM "schema.dtd">
<mycat:schema xmlns:mycat="http://io.mycat/">
	<schema name="shop" checkSQLschema="false" sqlMaxLimit="100" dataNode="dn1"/>
	<dataNode name="dn1" dataHost="dh1" database="shop"/>
	<dataHost name="dh1" maxCon="200" minCon="10" balance="1" writeType="0" dbType="mysql" dbDriver="native" switchType="1" slaveThreshold="100">
		<heartbeat>select user()</heartbeat>
		<writeHost host="hostM1" url="127.0.0.1:%d" user="%s" password="%s">
			<readHost host="hostS1" url="127.0.0.1:%d" user="%s" password="%s"/>
			<readHost host="hostS2" url="127.0.0.1:%d" user="%s" password="%s"/>
		</writeHost>
	</dataHost>
</mycat:schema>
`, master.Port, sandbox.AppUser, sandbox.AppPassword, r1.Port, sandbox.AppUser, sandbox.AppPassword, r2.Port, sandbox.AppUser, sandbox.AppPassword), 0o600)
	harness.WriteFile(t, filepath.Join(dir, "server.xml"), fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<mycat:server xmlns:mycat="http://io.mycat/">
	<system>
		<property name="bindIp">127.0.0.1</property>
		<property name="serverPort">%d</property>
		<property name="managerPort">%d</property>
	</system>
	<user name="shop">
		<property name="password">Shop_app123</property>
		<property name="schemas">shop</property>
	</user>
</mycat:server>
`, ports[0], ports[1]), 0o600)

	// One command.
	out := filepath.Join(dir, "switchyard.yaml")
	cmd := exec.Command(env.Binary, "import", "--mha", filepath.Join(dir, "app1.cnf"),
		"--mycat-schema", filepath.Join(dir, "schema.xml"), "--mycat-server", filepath.Join(dir, "server.xml"), "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("switchyard import: %v\n%s", err, b)
	}
	text := harness.LocalizeImported(t, out, dir, ports[2])
	cfg, err := conf.Load(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	addr, adminAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	if cfg.Listen != addr || cfg.Admin.Listen != adminAddr {
		t.Fatalf("listen %s admin %s", cfg.Listen, cfg.Admin.Listen)
	}
	check := exec.Command(env.Binary, "check", "--config", out)
	if b, err := check.CombinedOutput(); err != nil {
		t.Fatalf("switchyard check on the imported config: %v\n%s", err, b)
	}
	p := env.StartConfig(t, out, addr, adminAddr, "")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("proxy log:\n%s", p.Log())
		}
	})

	// The Mycat user works on Mycat's port, with the old DSN.
	app, err := sql.Open("mysql", fmt.Sprintf("shop:Shop_app123@tcp(%s)/?timeout=5s", addr))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS shop", "CREATE TABLE IF NOT EXISTS shop.orders (id INT PRIMARY KEY)", "INSERT INTO shop.orders VALUES (1)"} {
		if _, err := app.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	adm, err := sql.Open("mysql", fmt.Sprintf("admin:%s@tcp(%s)/?timeout=5s", cfg.Admin.Password.Value(), adminAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if m := harness.MasterOf(t, adm); m != "server1" {
		t.Fatalf("master %q, want server1 (MHA's name for it)", m)
	}

	// A switchover calls master_ip_online_change as MHA's online change does.
	if _, err := adm.Exec("SWITCHOVER"); err != nil {
		t.Fatal(err)
	}
	if m := harness.MasterOf(t, adm); m != "server2" {
		t.Fatalf("switchover chose %q, want server2 (candidate_master=1; server3 is no_master=1)", m)
	}
	wantCall(t, calls, fmt.Sprintf("master_ip_online_change --ssh_user=root --command=start --orig_master_host=127.0.0.1 --orig_master_ip=127.0.0.1 --orig_master_port=%d --new_master_host=127.0.0.1 --new_master_ip=127.0.0.1 --new_master_port=%d", master.Port, r1.Port))
	harness.WaitFor(t, "server1 to replicate from server2", 30*time.Second, func() bool {
		return harness.Backend(t, adm, "server1")["replication"] == "io=Yes sql=Yes"
	})

	// A failover calls master_ip_failover with stopssh before, start after.
	if _, err := adm.Exec("FAILOVER TO server1"); err != nil {
		t.Fatal(err)
	}
	wantCall(t, calls, fmt.Sprintf("master_ip_failover --ssh_user=root --orig_master_host=127.0.0.1 --orig_master_ip=127.0.0.1 --orig_master_port=%d --command=stopssh", r1.Port))
	wantCall(t, calls, fmt.Sprintf("master_ip_failover --ssh_user=root --orig_master_host=127.0.0.1 --orig_master_ip=127.0.0.1 --orig_master_port=%d --command=start --new_master_host=127.0.0.1 --new_master_ip=127.0.0.1 --new_master_port=%d", r1.Port, master.Port))
	var n int
	if err := app.QueryRow("SELECT COUNT(*) FROM shop.orders").Scan(&n); err != nil || n != 1 {
		t.Fatalf("orders after the changes: %d, %v", n, err)
	}
	if _, err := app.Exec("INSERT INTO shop.orders VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "server2 to rejoin as a replica", 40*time.Second, func() bool {
		return harness.Backend(t, adm, "server2")["replication"] == "io=Yes sql=Yes"
	})
}

func wantCall(t *testing.T, path, call string) {
	t.Helper()
	harness.WaitFor(t, "the MHA script to be called", 15*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			if line == call {
				return true
			}
		}
		return false
	})
}

// leastPrivileges is what docs/migrating-from-mha-mycat.md tells to grant
// the monitor/failover account on MariaDB 10.11: this test runs a check,
// a switchover, a forced failover and a rejoin with exactly these.
const leastPrivileges = "READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, SLAVE MONITOR, BINLOG MONITOR, CONNECTION ADMIN, PROCESS, RELOAD"

func TestRunbookLeastPrivilegeAccount(t *testing.T) {
	for _, in := range env.Sandbox.Instances {
		db := env.InstanceDB(t, in.Name)
		conn, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"SET SESSION sql_log_bin = 0", "CREATE USER IF NOT EXISTS 'sy_least'@'%' IDENTIFIED BY 'least-pw'",
			"GRANT " + leastPrivileges + " ON *.* TO 'sy_least'@'%'"} {
			if _, err := conn.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("%s on %s: %v", q, in.Name, err)
			}
		}
		conn.Close()
	}
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", MonitorUser: "sy_least", MonitorPassword: "least-pw", Failover: "  cooldown: 1s\n"})
	if out, err := exec.Command(env.Binary, "check", "--config", p.ConfigPath).CombinedOutput(); err != nil {
		t.Fatalf("switchyard check with the least-privilege account: %v\n%s", err, out)
	}
	adm := p.Admin(t)
	old := harness.MasterOf(t, adm)
	for _, step := range []string{"SWITCHOVER", "FAILOVER TO " + old} {
		if _, err := adm.Exec(step); err != nil {
			t.Fatalf("%s with the least-privilege account: %v\n%s", step, err, p.Log())
		}
	}
	if m := harness.MasterOf(t, adm); m != old {
		t.Fatalf("master %s after switching back, want %s", m, old)
	}
	harness.WaitFor(t, "every replica to replicate again (the rejoin)", 40*time.Second, func() bool {
		for _, in := range env.Sandbox.Instances {
			if in.Name != old && harness.Backend(t, adm, in.Name)["replication"] != "io=Yes sql=Yes" {
				return false
			}
		}
		return true
	})
	db := p.Open(t, "", "")
	if _, err := db.Exec("CREATE DATABASE IF NOT EXISTS least"); err != nil {
		t.Fatal(err)
	}
}
