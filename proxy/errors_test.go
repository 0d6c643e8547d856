package proxy

import (
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
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

// TestMatchesNativeHash: a client's mysql_native_password answer checked
// against the stored hash, never the password.
func TestMatchesNativeHash(t *testing.T) {
	salt := []byte("01234567890123456789")
	hash := conf.NativePasswordHash("s3cret")
	for _, tc := range []struct {
		name   string
		answer []byte
		want   bool
	}{
		{"right password", mysql.CalcNativePassword(salt, []byte("s3cret")), true},
		{"wrong password", mysql.CalcNativePassword(salt, []byte("s3cret!")), false},
		{"another salt", mysql.CalcNativePassword([]byte("98765432109876543210"), []byte("s3cret")), false},
		{"empty answer", nil, false},
		{"short answer", []byte{1, 2, 3}, false},
	} {
		if got := matchesNativeHash(tc.answer, salt, hash); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
	if err := checkSaltField(); err != nil {
		t.Fatal(err)
	}
}
