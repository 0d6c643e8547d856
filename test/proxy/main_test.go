// Package proxy_test drives the switchyard binary over a real MariaDB
// sandbox with real clients (go-sql-driver, go-mysql, the mariadb CLI).
package proxy_test

import (
	"database/sql"
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
	os.Exit(harness.Main(m, 2, 1, harness.ProxyOptions{Extra: "handshake_timeout: 1s\nmax_allowed_packet: 32MiB\n"}, &env, &proxy))
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

var harnessWaitFor = harness.WaitFor
