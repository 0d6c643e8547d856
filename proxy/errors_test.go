package proxy

import (
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
)

// Errors the proxy makes carry codes the client's server family has.
func TestErrorsForFlavor(t *testing.T) {
	lost := errBackendLost("master", errClientWrite)
	timeout := &mysql.MyError{Code: erStatementTimeout, State: "70100", Message: "Query execution was interrupted (query_timeout of 1s exceeded)"}
	deadlock := errTxAborted("the master changed")
	tests := []struct {
		err    *mysql.MyError
		flavor backend.Flavor
		code   uint16
		state  string
	}{
		{lost, backend.MariaDB, 1927, "70100"},
		{lost, backend.MySQL, mysql.ER_NET_READ_ERROR, "70100"},
		{timeout, backend.MariaDB, 1969, "70100"},
		{timeout, backend.MySQL, 3024, "HY000"},
		{deadlock, backend.MariaDB, 1213, "40001"},
		{deadlock, backend.MySQL, 1213, "40001"},
	}
	for _, tt := range tests {
		got := forFlavor(tt.err, tt.flavor)
		if got.Code != tt.code || got.State != tt.state || got.Message != tt.err.Message {
			t.Errorf("%d on %s: %d %s %q", tt.err.Code, tt.flavor, got.Code, got.State, got.Message)
		}
	}
}
