package conf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const minimal = `listen: 127.0.0.1:3307
users:
  - name: app
    password: secret
backends:
  - name: db1
    host: 127.0.0.1
    port: 3306
  - name: db2
    host: 127.0.0.1
    port: 3308
    weight: 3
admin:
  password: adminpw
monitor:
  user: mon
  password: monpw
failover:
  replication_user: repl
  replication_password: replpw
`

func TestParseMinimalAppliesDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Users[0].Auth != "mysql_native_password" || c.Users[0].BackendUser != "app" || c.Users[0].BackendPassword.Value() != "secret" {
		t.Errorf("user defaults not applied: %+v", c.Users[0])
	}
	if c.Backends[0].Weight != 1 || c.Backends[1].Weight != 3 {
		t.Errorf("weights: %d %d", c.Backends[0].Weight, c.Backends[1].Weight)
	}
	if c.Monitor.Interval.D() != 500*time.Millisecond || c.Failover.HoldTimeout.D() != 10*time.Second ||
		c.Failover.Cooldown.D() != 10*time.Minute || c.Routing.Consistency != "session" || c.Admin.Listen != "127.0.0.1:6033" {
		t.Errorf("defaults wrong: %+v %+v %+v", c.Monitor, c.Failover, c.Routing)
	}
	if c.MaxAllowedPacket != 64<<20 {
		t.Errorf("max_allowed_packet %d", c.MaxAllowedPacket)
	}
}

func TestValidationNamesFieldAndLine(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		want string // substring, including file:line
	}{
		{"bad port", func(s string) string { return strings.Replace(s, "port: 3308", "port: 70000", 1) }, "x.yaml:11: backends[1].port"},
		{"duplicate backend", func(s string) string { return strings.Replace(s, "name: db2", "name: db1", 1) }, "x.yaml:9: backends[1].name: duplicate backend name"},
		{"unknown key", func(s string) string { return strings.Replace(s, "listen: 127", "lisen: 127", 1) }, "line 1: unknown key lisen"},
		{"bad duration", func(s string) string { return s + "pool:\n  connect_timeout: soon\n" }, `line 22: "soon" is not a duration`},
		{"bad consistency", func(s string) string { return s + "routing:\n  consistency: strong\n" }, "x.yaml:22: routing.consistency"},
		{"no monitor user", func(s string) string { return strings.Replace(s, "  user: mon\n", "", 1) }, "x.yaml:16: monitor.user: is required"},
		{"missing user name", func(s string) string { return strings.Replace(s, "- name: app", "- auth: mysql_native_password", 1) }, "x.yaml:3: users[0].name: is required"},
		{"bad auth", func(s string) string {
			return strings.Replace(s, "password: secret", "password: secret\n    auth: md5", 1)
		}, "x.yaml:5: users[0].auth"},
		{"all no_master", func(s string) string {
			return strings.Replace(strings.Replace(s, "port: 3306", "port: 3306\n    no_master: true", 1), "weight: 3", "weight: 3\n    no_master: true", 1)
		}, "every backend is no_master"},
		{"admin without password", func(s string) string { return strings.Replace(s, "  password: adminpw\n", "  user: admin\n", 1) }, "admin.password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.edit(minimal)), "x.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSecretFromEnvironmentAndNeverPrinted(t *testing.T) {
	t.Setenv("SY_TEST_PW", "s3cr3t-value")
	c, err := Parse([]byte(strings.Replace(minimal, "password: secret", "password: ${SY_TEST_PW}", 1)), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Users[0].Password.Value() != "s3cr3t-value" {
		t.Fatalf("env not resolved: %q", c.Users[0].Password.Value())
	}
	out, _ := yaml.Marshal(c)
	printed := fmt.Sprintf("%v %+v %s", c.Users[0], c, out)
	if strings.Contains(printed, "s3cr3t-value") || strings.Contains(printed, "adminpw") {
		t.Fatalf("password leaked: %s", printed)
	}
	if !strings.Contains(string(out), "${SY_TEST_PW}") {
		t.Errorf("reference should be shown: %s", out)
	}
	_, err = Parse([]byte(strings.Replace(minimal, "password: secret", "password: ${SY_UNSET_VAR_X}", 1)), "x.yaml")
	if err == nil || !strings.Contains(err.Error(), "SY_UNSET_VAR_X is not set") {
		t.Fatalf("missing env var: %v", err)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "64KiB": 64 << 10, "16MiB": 16 << 20, "1G": 1 << 30, " 2 MiB ": 2 << 20} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("%q: got %d, %v want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "ten", "5XB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The shipped example must load as is: it is the documentation of defaults.
func TestExampleConfigLoads(t *testing.T) {
	t.Setenv("SWITCHYARD_APP_PASSWORD", "x")
	t.Setenv("SWITCHYARD_ADMIN_PASSWORD", "y")
	t.Setenv("SWITCHYARD_MONITOR_PASSWORD", "z")
	t.Setenv("SWITCHYARD_REPL_PASSWORD", "w")
	t.Setenv("SWITCHYARD_APP_BACKEND_PASSWORD", "v")
	matches, _ := filepath.Glob("*.yaml")
	if len(matches) == 0 {
		t.Fatal("no example config in conf/")
	}
	for _, m := range matches {
		if _, err := Load(m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	if _, err := os.Stat("switchyard.example.yaml"); err != nil {
		t.Error(err)
	}
}

// Secure defaults: the admin port listens on loopback only.
func TestAdminDefaultsToLoopback(t *testing.T) {
	d := Defaults()
	if d.Admin.Listen != "127.0.0.1:6033" || d.LoadDataLocal {
		t.Fatalf("admin %q, load_data_local %v", d.Admin.Listen, d.LoadDataLocal)
	}
}

const twoClusters = `listen: 127.0.0.1:3307
users:
  - name: app
    password: secret
  - name: crm
    password: secret
    cluster: c2
    max_connections: 50
admin:
  password: adminpw
monitor:
  user: mon
  password: monpw
  interval: 1s
failover:
  replication_user: repl
  replication_password: replpw
  cooldown: 5m
routing:
  max_replica_lag: 10s
schemas:
  shop: c1
  crm: c2
clusters:
  - name: c1
    backends:
      - {name: db1, host: 127.0.0.1, port: 3306}
      - {name: db2, host: 127.0.0.1, port: 3307}
  - name: c2
    backends:
      - {name: db3, host: 127.0.0.1, port: 3316}
      - {name: db4, host: 127.0.0.1, port: 3317}
    monitor:
      interval: 250ms
    failover:
      enabled: false
    routing:
      max_replica_lag: 2s
    pool:
      max_connections: 20
`

// TestClustersMergeOverTopLevel: a cluster's keys override the top-level
// ones, everything else is inherited; top-level backends are cluster
// "default".
func TestClustersMergeOverTopLevel(t *testing.T) {
	c, err := Parse([]byte(twoClusters), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	list := c.ClusterList()
	if len(list) != 2 || list[0].Name != "c1" || c.DefaultCluster() != "c1" {
		t.Fatalf("clusters: %+v", list)
	}
	c1, c2 := list[0], list[1]
	if c1.Monitor.Interval.D() != time.Second || c2.Monitor.Interval.D() != 250*time.Millisecond || c2.Monitor.User != "mon" {
		t.Errorf("monitor: c1 %+v c2 %+v", c1.Monitor, c2.Monitor)
	}
	if !c1.Failover.Enabled || c2.Failover.Enabled || c2.Failover.Cooldown.D() != 5*time.Minute || c2.Failover.ReplicationUser != "repl" {
		t.Errorf("failover: c1 %+v c2 %+v", c1.Failover, c2.Failover)
	}
	if c1.Routing.MaxReplicaLag.D() != 10*time.Second || c2.Routing.MaxReplicaLag.D() != 2*time.Second || c2.Routing.Consistency != "session" {
		t.Errorf("routing: c1 %+v c2 %+v", c1.Routing, c2.Routing)
	}
	if c1.Pool.MaxConnections != 512 || c2.Pool.MaxConnections != 20 || c2.Pool.MaxIdle != 64 {
		t.Errorf("pool: c1 %+v c2 %+v", c1.Pool, c2.Pool)
	}
	if c.Users[1].Cluster != "c2" || c.Users[1].MaxConnections != 50 || c.Schemas["crm"] != "c2" {
		t.Errorf("users/schemas: %+v %v", c.Users, c.Schemas)
	}
	one, err := Parse([]byte(minimal), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l := one.ClusterList(); len(l) != 1 || l[0].Name != "default" || len(l[0].Backends) != 2 || l[0].Monitor.User != "mon" {
		t.Fatalf("a config without clusters: %+v", l)
	}
}

// TestClusterValidation: clusters are checked like the top level, and
// names, schemas and users must agree.
func TestClusterValidation(t *testing.T) {
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"unknown override key", "      interval: 250ms", "      intervall: 250ms", "clusters[1].monitor: unknown key intervall"},
		{"backend name used in two clusters", "{name: db3,", "{name: db1,", "duplicate backend name \"db1\""},
		{"address used in two clusters", "port: 3316}", "port: 3306}", "address 127.0.0.1:3306 is used by another backend"},
		{"schema of no cluster", "crm: c2\nclusters", "crm: c9\nclusters", "schemas.crm: cluster \"c9\" is not defined"},
		{"user of no cluster", "cluster: c2", "cluster: c7", "users[1].cluster: cluster \"c7\" is not defined"},
		{"duplicate cluster", "- name: c2", "- name: c1", "duplicate cluster \"c1\""},
		{"backends and clusters", "clusters:\n", "backends:\n  - {name: x, host: h}\nclusters:\n", "use either backends"},
		{"a cluster without a monitor account", "  user: mon\n", "", "clusters[0].monitor.user: is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(twoClusters, tc.from) {
				t.Fatalf("fixture lacks %q", tc.from)
			}
			_, err := Parse([]byte(strings.Replace(twoClusters, tc.from, tc.to, 1)), "x.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRuleValidation: every mistake in a rule is refused with the rule's
// place in the file.
func TestRuleValidation(t *testing.T) {
	good := "rules:\n  - name: a\n    match: {user: report, kind: read, client: 10.0.0.0/8, regex: '^SELECT'}\n    route: c2\n    max_lag: 5s\n"
	if _, err := Parse([]byte(twoClusters+good), "x.yaml"); err != nil {
		t.Fatalf("a good rule: %v", err)
	}
	for _, tc := range []struct{ name, rules, want string }{
		{"duplicate name", "rules:\n  - {name: a, log: true}\n  - {name: a, log: true}\n", `rules[1].name: duplicate rule "a"`},
		{"no name", "rules:\n  - {log: true}\n", "rules[0].name: is required"},
		{"bad regex", "rules:\n  - {name: a, match: {regex: '(unclosed'}, log: true}\n", "rules[0]: match.regex"},
		{"bad client", "rules:\n  - {name: a, match: {client: 10.0.0/8}, log: true}\n", "is not a CIDR"},
		{"bad kind", "rules:\n  - {name: a, match: {kind: select}, log: true}\n", `match.kind: "select"`},
		{"unknown route", "rules:\n  - {name: a, route: c9}\n", `route: "c9"`},
		{"no action", "rules:\n  - {name: a, match: {user: x}}\n", "the rule does nothing"},
		{"block and cache", "rules:\n  - {name: a, block: no, cache_ttl: 2s}\n", "cannot also route or cache"},
		{"unknown key", "rules:\n  - {name: a, cache: 2s}\n", "unknown key cache"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(twoClusters+tc.rules), "x.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
