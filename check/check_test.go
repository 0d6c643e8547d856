package check

import (
	"bytes"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/backend"
)

func TestReportVerdict(t *testing.T) {
	tests := []struct {
		findings []Finding
		verdict  string
	}{
		{nil, "verdict: OK — 0 warning(s)"},
		{[]Finding{{Severity: Warning, Backend: "r1", Problem: "lags"}}, "verdict: OK — 1 warning(s)"},
		{[]Finding{{Severity: Error, Backend: "r1", Problem: "read_only is OFF", Remedy: "SET GLOBAL read_only=1"}, {Severity: Warning, Problem: "x"}},
			"verdict: NOT OK — 1 error(s), 1 warning(s)"},
		{[]Finding{{Severity: Error, Backend: "db3", Cluster: "c2", Problem: "log_bin is OFF"}}, "verdict: NOT OK — 1 error(s), 0 warning(s)"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		Report{Findings: tt.findings}.Print(&b)
		out := b.String()
		if !strings.HasSuffix(strings.TrimSpace(out), tt.verdict) {
			t.Errorf("verdict line: %q", out)
		}
		if len(tt.findings) > 0 && tt.findings[0].Remedy != "" && !strings.Contains(out, " — "+tt.findings[0].Remedy) {
			t.Errorf("remedy missing: %q", out)
		}
		if len(tt.findings) > 0 && tt.findings[0].Cluster != "" && !strings.Contains(out, tt.findings[0].Cluster+"/"+tt.findings[0].Backend) {
			t.Errorf("cluster missing: %q", out)
		}
	}
}

func TestHasAnyLooksAtGlobalGrantsOnly(t *testing.T) {
	tests := []struct {
		grants []string
		privs  []string
		want   bool
	}{
		{[]string{"GRANT ALL PRIVILEGES ON *.* TO `x`@`%`"}, []string{"ALL PRIVILEGES ON *.*"}, true},
		{[]string{"GRANT ALL PRIVILEGES ON `db`.* TO `x`@`%`"}, []string{"ALL PRIVILEGES"}, false},
		{[]string{"GRANT SELECT, READ_ONLY ADMIN ON *.* TO `x`@`%`"}, []string{"READ_ONLY ADMIN"}, true},
		{[]string{"GRANT SELECT, INSERT ON *.* TO `x`@`%`"}, []string{"SUPER", "READ_ONLY ADMIN"}, false},
	}
	for _, tt := range tests {
		if got := hasAny(tt.grants, tt.privs...); got != tt.want {
			t.Errorf("hasAny(%v, %v) = %v", tt.grants, tt.privs, got)
		}
	}
}

func TestMissingPrivileges(t *testing.T) {
	tests := []struct {
		grants  []string
		missing string
	}{
		{[]string{"GRANT ALL PRIVILEGES ON *.* TO `m`@`%` WITH GRANT OPTION"}, ""},
		{[]string{"GRANT RELOAD, PROCESS, READ_ONLY ADMIN, CONNECTION ADMIN, SLAVE MONITOR, REPLICATION MASTER ADMIN, REPLICATION SLAVE ADMIN ON *.* TO `m`@`%`"}, ""},
		{[]string{"GRANT PROCESS, READ_ONLY ADMIN, CONNECTION ADMIN, SLAVE MONITOR, REPLICATION SLAVE ADMIN ON *.* TO `m`@`%`"}, "REPLICATION MASTER ADMIN, RELOAD"},
		{[]string{"GRANT SUPER ON *.* TO `m`@`%`"}, "READ_ONLY ADMIN, RELOAD, PROCESS"},
		{[]string{"GRANT ALL PRIVILEGES ON `shop`.* TO `m`@`%`"}, "READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, RELOAD, SLAVE MONITOR, CONNECTION ADMIN, PROCESS"},
	}
	for _, tt := range tests {
		if got := strings.Join(missingPrivileges(backend.MariaDB, tt.grants), ", "); got != tt.missing {
			t.Errorf("%v: missing %q, want %q", tt.grants, got, tt.missing)
		}
	}
}

// MySQL lists ALL PRIVILEGES as static privileges plus a line of dynamic
// ones (no spaces after the commas).
func TestMissingPrivilegesMySQL(t *testing.T) {
	tests := []struct {
		grants  []string
		missing string
	}{
		{[]string{"GRANT SELECT, INSERT, RELOAD, PROCESS, REPLICATION CLIENT ON *.* TO `m`@`%`",
			"GRANT CONNECTION_ADMIN,REPLICATION_SLAVE_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `m`@`%`"}, ""},
		{[]string{"GRANT RELOAD, PROCESS, REPLICATION CLIENT, SUPER ON *.* TO `m`@`%`"}, ""},
		{[]string{"GRANT SELECT ON *.* TO `m`@`%`", "GRANT REPLICATION_SLAVE_ADMIN ON *.* TO `m`@`%`"},
			"SYSTEM_VARIABLES_ADMIN, RELOAD, REPLICATION CLIENT, CONNECTION_ADMIN, PROCESS"},
	}
	for _, tt := range tests {
		if got := strings.Join(missingPrivileges(backend.MySQL, tt.grants), ", "); got != tt.missing {
			t.Errorf("%v: missing %q, want %q", tt.grants, got, tt.missing)
		}
	}
}
