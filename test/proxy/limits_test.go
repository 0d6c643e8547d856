package proxy_test

import (
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

// TestConnectionLimitUnderConcurrentLogins: with max_client_connections
// 20, 80 clients logging in at the same moment: at most 20 get in (the
// limit counts connections from accept, not from the end of the
// handshake), the others get 1040 at once, and the slots come back.
func TestConnectionLimitUnderConcurrentLogins(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info", Extra: "max_client_connections: 20\n"})
	const clients = 80
	var wg sync.WaitGroup
	release := make(chan struct{})
	results := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := sql.Open("mysql", p.DSN("app", "app", "", "timeout=10s"))
			if err != nil {
				results <- err
				return
			}
			defer db.Close()
			c, err := db.Conn(t.Context())
			if err == nil {
				var one int
				err = c.QueryRowContext(t.Context(), "SELECT 1").Scan(&one)
				defer c.Close()
			}
			results <- err
			<-release // hold the connection until every client has tried
		}()
	}
	in, refused := 0, 0
	for range clients {
		err := <-results
		var me *mysql.MySQLError
		switch {
		case err == nil:
			in++
		case errors.As(err, &me) && me.Number == 1040:
			refused++
		default:
			t.Errorf("a client got %v, want success or 1040", err)
		}
	}
	close(release)
	wg.Wait()
	t.Logf("%d logged in and ran a statement, %d refused with 1040", in, refused)
	if in > 20 || in == 0 || in+refused != clients {
		t.Fatalf("%d in, %d refused: the limit of 20 did not hold", in, refused)
	}
	db := p.Open(t, "", "")
	harness.WaitFor(t, "the slots to come back", 10*time.Second, func() bool { return db.Ping() == nil })
}

// TestAcceptResumesAfterFdExhaustion: the proxy runs out of file
// descriptors under a wave of connections (EMFILE on accept); once they
// are back it accepts again by itself, counted and logged, and the
// process never stopped.
func TestAcceptResumesAfterFdExhaustion(t *testing.T) {
	p := env.StartProxy(t, harness.ProxyOptions{LogLevel: "info"})
	// The admin connection is opened first: the admin port cannot accept
	// either while descriptors are out.
	adm := p.Admin(t)
	acceptErrors := func() int {
		for _, r := range harness.AdminRows(t, adm, "SHOW STATUS") {
			if r["variable"] == "accept_errors" {
				n, _ := strconv.Atoi(r["value"])
				return n
			}
		}
		return 0
	}
	if n := acceptErrors(); n != 0 {
		t.Fatalf("%d accept errors before the test", n)
	}
	pid := strconv.Itoa(p.Pid())
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	limit := len(fds) + 8
	if out, err := exec.Command("prlimit", "--pid", pid, fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v %s", err, out)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			_ = exec.Command("prlimit", "--pid", pid, "--nofile=65536:65536").Run()
		}
	}
	defer restore()
	var wave []net.Conn
	for range 60 {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err == nil {
			wave = append(wave, c)
		}
	}
	harness.WaitFor(t, "accept errors to be counted", 10*time.Second, func() bool { return acceptErrors() > 0 })
	for _, c := range wave {
		c.Close()
	}
	restore()
	db := p.Open(t, "", "timeout=2s")
	took := harness.WaitFor(t, "a new client to log in", 20*time.Second, func() bool {
		var one int
		return db.QueryRow("SELECT 1").Scan(&one) == nil
	})
	t.Logf("a new client logged in %s after file descriptors came back", took.Round(time.Millisecond))
	if !p.Running() {
		t.Fatal("the proxy exited")
	}
	if !strings.Contains(p.Log(), "cannot accept client connections; retrying") {
		t.Error("the accept failures were not logged")
	}
}
