package sandbox

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
)

// The sandbox against the real servers, MariaDB and MySQL: up, idempotent
// up, replication, read_only for the application account, status, a
// rebuilt replica, down.
func TestSandboxLifecycle(t *testing.T) {
	flavors := []struct {
		flavor backend.Flavor
		// settings reads semi-sync on the master, GTID mode, binlog format.
		settings string
		want     string
	}{
		{backend.MariaDB, "SELECT @@rpl_semi_sync_master_enabled, @@gtid_strict_mode, @@binlog_format", "1 1 ROW"},
		{backend.MySQL, "SELECT @@rpl_semi_sync_source_enabled, @@gtid_mode, @@binlog_format", "1 ON ROW"},
	}
	for _, tc := range flavors {
		t.Run(string(tc.flavor), func(t *testing.T) { testLifecycle(t, tc.flavor, tc.settings, tc.want) })
	}
}

func testLifecycle(t *testing.T, flavor backend.Flavor, settingsSQL, wantSettings string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	port, err := FreeBasePort(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "sb")
	s, err := Up(ctx, Options{Dir: dir, BasePort: port, Replicas: 1, Flavor: flavor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Down(dir, true, nil) })

	pids := map[string]int{}
	for _, in := range s.Instances {
		pid, err := readPid(in)
		if err != nil {
			t.Fatal(err)
		}
		pids[in.Name] = pid
	}
	// Idempotent: a second up keeps the same servers.
	if _, err := Up(ctx, Options{Dir: dir, BasePort: port, Replicas: 1, Flavor: flavor}); err != nil {
		t.Fatal(err)
	}
	for _, in := range s.Instances {
		if pid, _ := readPid(in); pid != pids[in.Name] {
			t.Errorf("%s restarted by a second up (%d -> %d)", in.Name, pids[in.Name], pid)
		}
	}
	// A different shape in the same dir is refused, not silently merged.
	if _, err := Up(ctx, Options{Dir: dir, BasePort: port, Replicas: 2, Flavor: flavor}); err == nil {
		t.Error("up with another replica count accepted")
	}

	master, _ := sql.Open("mysql", "app:app@tcp("+s.Master().Addr()+")/")
	defer master.Close()
	for _, q := range []string{"CREATE DATABASE sbt", "CREATE TABLE sbt.t (id INT PRIMARY KEY)", "INSERT INTO sbt.t VALUES (1)"} {
		if _, err := master.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	replica, _ := sql.Open("mysql", "app:app@tcp("+s.ReplicaInstances()[0].Addr()+")/")
	defer replica.Close()
	waitReplicated := func(what string) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var n int
			if err := replica.QueryRow("SELECT COUNT(*) FROM sbt.t").Scan(&n); err == nil && n == 1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("row not replicated %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReplicated("")
	// The application account cannot write through read_only (fencing relies on it).
	_, err = replica.Exec("INSERT INTO sbt.t VALUES (2)")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1290 {
		t.Fatalf("write on read-only replica: %v", err)
	}
	var semisync, gtid, format string
	if err := master.QueryRow(settingsSQL).Scan(&semisync, &gtid, &format); err != nil {
		t.Fatal(err)
	}
	if got := semisync + " " + gtid + " " + format; got != wantSettings {
		t.Errorf("%s: %s, want %s", settingsSQL, got, wantSettings)
	}
	var version string
	if err := master.QueryRow("SELECT VERSION()").Scan(&version); err != nil || backend.FlavorFromVersion(version) != flavor {
		t.Fatalf("version %q (%v), want a %s server", version, err, flavor)
	}

	// Rebuild, as an operator rebuilds a diverged server: empty datadir,
	// new server id, everything replicated again from the master.
	old := s.ReplicaInstances()[0]
	if err := s.Rebuild(ctx, old.Name, s.Master()); err != nil {
		t.Fatal(err)
	}
	if s.ReplicaInstances()[0].ServerID == old.ServerID {
		t.Error("rebuilt replica kept its server id")
	}
	waitReplicated("after the rebuild")

	st := s.Status(ctx)
	if st[0].Role() != "master" || !strings.HasPrefix(st[1].Role(), "replica of :") || !st[1].Replica.IORunning {
		t.Fatalf("roles: %s / %s", st[0].Role(), st[1].Role())
	}
	cfg, err := conf.Load(s.ConfigPath())
	if err != nil {
		t.Fatal("generated config does not load:", err)
	}
	if cfg.Listen != s.ProxyAddr() || cfg.Admin.Listen != s.AdminAddr() || len(cfg.Backends) != 2 {
		t.Errorf("generated config: listen %s admin %s backends %d", cfg.Listen, cfg.Admin.Listen, len(cfg.Backends))
	}

	if err := Down(dir, false, nil); err != nil {
		t.Fatal(err)
	}
	for name, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) still running after down", name, pid)
		}
	}
}
