// Package packaging_test builds the .deb (make deb), installs it on this
// machine with apt, checks what it installed, verifies the systemd unit,
// runs the proxy as the unit's user against a sandbox, and purges it.
// It changes the machine (a package, a system user) and undoes it; it
// refuses to run over a switchyard package it did not install.
package packaging_test

import (
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/sandbox"
	"github.com/switchyard/switchyard/test/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithSandbox(m, 1, 16, &env))
}

func repoRoot() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(f), "..", "..")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDebInstallsAndRunsUnderItsUnit(t *testing.T) {
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "switchyard").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatal("a switchyard package is already installed on this machine: this test installs and purges its own; remove it first")
	}
	build := exec.Command("bash", "scripts/deb.sh")
	build.Dir = repoRoot()
	out, err := build.Output()
	if err != nil {
		t.Fatalf("make deb: %v", err)
	}
	deb := filepath.Join(repoRoot(), strings.TrimSpace(string(out)))
	t.Cleanup(func() {
		if out, err := exec.Command("apt-get", "purge", "-y", "switchyard").CombinedOutput(); err != nil {
			t.Errorf("purge: %v\n%s", err, out)
		}
	})
	run(t, "apt-get", "install", "-y", deb)

	t.Run("files", func(t *testing.T) { checkFiles(t) })
	t.Run("unit verifies", func(t *testing.T) {
		// systemd-analyze exits 0 and prints nothing for a clean unit.
		if out := run(t, "systemd-analyze", "verify", "/lib/systemd/system/switchyard.service"); strings.TrimSpace(out) != "" {
			t.Fatalf("systemd-analyze verify:\n%s", out)
		}
	})
	t.Run("runs as its user", func(t *testing.T) { runAsUnitUser(t) })
	t.Run("conffile kept on reinstall", func(t *testing.T) {
		const mark = "# edited by the operator\n"
		path := "/etc/switchyard/switchyard.yaml"
		b, _ := os.ReadFile(path)
		if err := os.WriteFile(path, append([]byte(mark), b...), 0o640); err != nil {
			t.Fatal(err)
		}
		run(t, "apt-get", "install", "-y", "--reinstall", "-o", "Dpkg::Options::=--force-confold", deb)
		b, _ = os.ReadFile(path)
		if !strings.HasPrefix(string(b), mark) {
			t.Fatal("reinstalling replaced the operator's config")
		}
	})
}

// checkFiles: what the package installed, with owners and modes that keep
// the passwords in the config away from other users.
func checkFiles(t *testing.T) {
	want := []struct {
		path  string
		mode  fs.FileMode
		owner string // user:group
	}{
		{"/usr/bin/switchyard", 0o755, "root:root"},
		{"/lib/systemd/system/switchyard.service", 0o644, "root:root"},
		{"/etc/logrotate.d/switchyard", 0o644, "root:root"},
		{"/etc/switchyard", 0o750 | fs.ModeDir, "root:switchyard"},
		{"/etc/switchyard/switchyard.yaml", 0o640, "root:switchyard"},
		{"/etc/default/switchyard", 0o640, "root:switchyard"},
		{"/var/lib/switchyard", 0o750 | fs.ModeDir, "switchyard:switchyard"},
		{"/var/log/switchyard", 0o750 | fs.ModeDir, "switchyard:switchyard"},
		{"/usr/share/doc/switchyard/README.md", 0o644, "root:root"},
		{"/usr/share/doc/switchyard/copyright", 0o644, "root:root"},
		{"/usr/share/doc/switchyard/NOTICE", 0o644, "root:root"},
	}
	for _, w := range want {
		fi, err := os.Stat(w.path)
		if err != nil {
			t.Errorf("%s: %v", w.path, err)
			continue
		}
		if fi.Mode() != w.mode {
			t.Errorf("%s: mode %v, want %v", w.path, fi.Mode(), w.mode)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := strings.TrimSpace(run(t, "stat", "-c", "%U:%G", w.path)); got != w.owner {
			t.Errorf("%s: owner %s (uid %d), want %s", w.path, got, st.Uid, w.owner)
		}
	}
	if c, err := os.ReadFile("/usr/share/doc/switchyard/copyright"); err != nil || !strings.Contains(string(c), "License: Apache-2.0") {
		t.Errorf("the copyright file does not name the license: %q %v", c, err)
	}
	if shell := strings.TrimSpace(run(t, "getent", "passwd", "switchyard")); !strings.HasSuffix(shell, "/usr/sbin/nologin") {
		t.Errorf("the switchyard user can log in: %s", shell)
	}
	conffiles := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "switchyard")
	for _, f := range []string{"/etc/switchyard/switchyard.yaml", "/etc/default/switchyard", "/etc/logrotate.d/switchyard"} {
		if !strings.Contains(conffiles, f) {
			t.Errorf("%s is not a conffile:\n%s", f, conffiles)
		}
	}
	if out := run(t, "/usr/bin/switchyard", "version"); !strings.HasPrefix(out, "switchyard 0.1.0+") {
		t.Errorf("switchyard version: %q", out)
	}
	// The unit's command line is the one the next subtest runs.
	unit, _ := os.ReadFile("/lib/systemd/system/switchyard.service")
	for _, line := range []string{"Type=notify", "User=switchyard", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ExecStart=/usr/bin/switchyard run --config /etc/switchyard/switchyard.yaml", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(unit), line) {
			t.Errorf("unit lacks %q", line)
		}
	}
}

// runAsUnitUser points the installed config at the sandbox, with the
// passwords in /etc/default/switchyard as the unit passes them, and runs
// the unit's command as its user: it reads its config, writes its log
// and state where the package made room, and serves.
func runAsUnitUser(t *testing.T) {
	master := env.Sandbox.Instances[0]
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
users:
  - name: app
    password: ${SWITCHYARD_APP_PASSWORD}
backends:
  - name: %s
    host: 127.0.0.1
    port: %d
monitor:
  user: %s
  password: ${SWITCHYARD_MONITOR_PASSWORD}
failover:
  replication_user: %s
  replication_password: ${SWITCHYARD_REPL_PASSWORD}
  state_file: /var/lib/switchyard/state.json
admin:
  listen: 127.0.0.1:%d
  user: admin
  password: ${SWITCHYARD_ADMIN_PASSWORD}
log:
  file: /var/log/switchyard/switchyard.log
`, freePort(t), master.Name, master.Port, sandbox.MonitorUser, sandbox.ReplUser, freePort(t))
	for _, r := range env.Sandbox.ReplicaInstances() {
		cfg = strings.Replace(cfg, "monitor:", fmt.Sprintf("  - name: %s\n    host: 127.0.0.1\n    port: %d\nmonitor:", r.Name, r.Port), 1)
	}
	if err := os.WriteFile("/etc/switchyard/switchyard.yaml", []byte(cfg), 0o640); err != nil {
		t.Fatal(err)
	}
	secrets := fmt.Sprintf("SWITCHYARD_APP_PASSWORD=app\nSWITCHYARD_MONITOR_PASSWORD=%s\nSWITCHYARD_REPL_PASSWORD=%s\nSWITCHYARD_ADMIN_PASSWORD="+adminSecret+"\n",
		sandbox.MonitorPassword, sandbox.ReplPassword)
	if err := os.WriteFile("/etc/default/switchyard", []byte(secrets), 0o640); err != nil {
		t.Fatal(err)
	}
	listen := strings.Fields(strings.SplitN(cfg, "\n", 2)[0])[1]

	u, err := user.Lookup("switchyard")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command("/usr/bin/switchyard", "run", "--config", "/etc/switchyard/switchyard.yaml", "--drain-timeout", "5s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Env = append(os.Environ(), strings.Split(strings.TrimSpace(secrets), "\n")...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() { // when the test failed before stopping it
		if !stopped {
			_ = cmd.Process.Kill()
		}
	}()
	db, _ := sql.Open("mysql", "app:app@tcp("+listen+")/?timeout=2s")
	defer db.Close()
	var one int
	took := harness.WaitFor(t, "the packaged proxy to serve", 30*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("switchyard exited: %v\n%s", err, out.String())
		default:
		}
		return db.QueryRow("SELECT 1").Scan(&one) == nil
	})
	t.Logf("serving %v after start", took)
	log, err := os.ReadFile("/var/log/switchyard/switchyard.log")
	if err != nil || !strings.Contains(string(log), "switchyard started") {
		t.Fatalf("no log in /var/log/switchyard: %v\n%s", err, out.String())
	}
	if strings.Contains(string(log), adminSecret) {
		t.Fatal("a password reached the log")
	}
	if owner := strings.TrimSpace(run(t, "stat", "-c", "%U", "/var/log/switchyard/switchyard.log")); owner != "switchyard" {
		t.Fatalf("log file owned by %s", owner)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	stopping := time.Now()
	select {
	case err := <-done:
		stopped = true
		t.Logf("stopped %v after SIGTERM", time.Since(stopping))
		if err != nil {
			t.Fatalf("switchyard did not stop cleanly: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("switchyard did not stop")
	}
}

// adminSecret is a password the log must never show.
const adminSecret = "Adm1n-s3cret-never-logged"

func freePort(t *testing.T) int {
	t.Helper()
	ports, err := harness.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}
