// Package proxy_test drives the switchyard binary over a real MariaDB
// sandbox with real clients (go-sql-driver, go-mysql, the mariadb CLI).
package proxy_test

import (
	"database/sql"
	"fmt"
	"os"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var (
	env   *harness.Env
	proxy *harness.Proxy // shared proxy with the default config
)

func TestMain(m *testing.M) {
	var err error
	env, err = harness.Setup(2, 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
	proxy, err = env.StartProxyErr(harness.ProxyOptions{Extra: "handshake_timeout: 1s\nmax_allowed_packet: 32MiB\n"})
	if err != nil {
		env.Teardown()
		fmt.Fprintln(os.Stderr, "start proxy:", err)
		os.Exit(1)
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, "---- proxy log (tail) ----")
		log := proxy.Log()
		if len(log) > 20000 {
			log = log[len(log)-20000:]
		}
		fmt.Fprintln(os.Stderr, log)
	}
	proxy.Stop()
	env.Teardown()
	os.Exit(code)
}

// mustExec runs statements and fails the test on error.
func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

type harnessProxyOptions = harness.ProxyOptions
