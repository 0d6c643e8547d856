package operator_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/test/harness"
)

// Under a Type=notify unit, systemd learns that the proxy serves (READY=1
// once the listeners accept), reloads (RELOADING=1, READY=1) and stops
// (STOPPING=1): read from a socket standing in for systemd's.
func TestSystemdNotifications(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := l.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	next := func(want string) {
		t.Helper()
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("systemd was told %q, want %q", s, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("systemd was not told %q", want)
		}
	}
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Environ: []string{"NOTIFY_SOCKET=" + sock}})
	next("READY=1")
	// READY=1 means serving: a client logs in at once.
	var one int
	if err := p.Open(t, "", "").QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Fatalf("READY=1 sent but the proxy does not serve: %v", err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next("RELOADING=1")
	next("READY=1")
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	next("STOPPING=1")
}

// logrotate renames the file and sends SIGUSR1: the proxy writes a new file
// at the configured path, and SIGHUP still reloads the config.
func TestLogFileReopenedOnSIGUSR1(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "switchyard.log")
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", LogFile: path})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "a new log file", 10*time.Second, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), "log file reopened")
	})
	if err := syscall.Kill(p.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the reload logged in the new file", 10*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), "config reloaded")
	})
	old, _ := os.ReadFile(path + ".1")
	if !strings.Contains(string(old), "switchyard started") || strings.Contains(string(old), "config reloaded") {
		t.Fatalf("the rotated file should hold the start and nothing after the reopen:\n%s", old)
	}
}
