package conf

import (
	"strings"
	"testing"
	"time"
)

const runtimeBase = `# Switchyard for the shop.
listen: 127.0.0.1:3307
users:
  # the application
  - name: app
    password: app
  - name: old
    password: old
    backend_user: app
    backend_password: app
backends:
  - {name: db1, host: 127.0.0.1, port: 3306}   # the master
  - name: db2
    host: 127.0.0.1
    port: 3307
monitor: {user: mon, password: mon}
failover: {replication_user: r, replication_password: r}
admin: {user: admin, password: admin}
`

// TestApplyRuntime: the runtime layer written into a config file: users
// added with a hash and dropped, the rules replaced, a weight and an
// offline flag set; every other line, comments included, stays.
func TestApplyRuntime(t *testing.T) {
	rules := []Rule{{Name: "hot", Match: RuleMatch{Digest: "SELECT 1"}, CacheTTL: Duration(2 * time.Second)}}
	r := Runtime{Version: 3, Users: []RuntimeUser{{Name: "report", PasswordHash: NativePasswordHash("s3cret"), BackendUser: "app", BackendSecret: "app", MaxConnections: 5}},
		DroppedUsers: []string{"old"}, Rules: &rules, Weights: map[string]int{"db2": 4}, Offline: map[string]bool{"db1": false, "db2": true}}
	out, err := ApplyRuntime([]byte(runtimeBase), r)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{"# Switchyard for the shop.", "# the application", "# the master", "added at runtime"} {
		if !strings.Contains(text, want) {
			t.Errorf("lost %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "s3cret") {
		t.Fatalf("the password is in the file:\n%s", text)
	}
	cfg, err := Parse(out, "x.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(cfg.Users) != 2 || cfg.Users[1].Name != "report" || cfg.Users[1].PasswordHash != NativePasswordHash("s3cret") || cfg.Users[1].MaxConnections != 5 {
		t.Errorf("users %+v", cfg.Users)
	}
	if len(cfg.Rules) != 1 || cfg.Rules[0].CacheTTL.D() != 2*time.Second {
		t.Errorf("rules %+v", cfg.Rules)
	}
	if b := cfg.Backends; b[1].Weight != 4 || !b[1].Offline || b[0].Offline {
		t.Errorf("backends %+v", b)
	}
	// Written again with nothing new, it is the same config.
	again, err := ApplyRuntime(out, Runtime{})
	if err != nil || string(again) != text {
		t.Fatalf("an empty layer changed the file: %v", err)
	}
}

func TestRuntimeRoundTrip(t *testing.T) {
	rules := []Rule{{Name: "b", Block: "no"}}
	r := Runtime{Version: 7, Users: []RuntimeUser{{Name: "u", PasswordHash: NativePasswordHash("x"), BackendUser: "app", BackendSecret: "${APP_PW}"}},
		Rules: &rules, Weights: map[string]int{"db2": 2}}
	b, err := MarshalRuntime(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalRuntime(b)
	if err != nil || back.Version != 7 || back.Users[0].BackendSecret != "${APP_PW}" || (*back.Rules)[0].Block != "no" || back.Weights["db2"] != 2 {
		t.Fatalf("%+v %v", back, err)
	}
}

func TestPasswordHashValidation(t *testing.T) {
	// MySQL's PASSWORD('password'), as mysql.user stores it.
	if got := NativePasswordHash("password"); got != "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19" || !ValidPasswordHash(got) {
		t.Fatalf("hash %s", got)
	}
	for _, tc := range []struct{ user, want string }{
		{"  - {name: h, password_hash: 'nothex', backend_user: app, backend_password: app}", "is not a mysql_native_password hash"},
		{"  - {name: h, password_hash: '" + NativePasswordHash("x") + "'}", "backend_password: is required with password_hash"},
		{"  - {name: h, password: p, password_hash: '" + NativePasswordHash("x") + "', backend_user: a, backend_password: a}", "not both"},
	} {
		text := strings.Replace(runtimeBase, "users:\n", "users:\n"+tc.user+"\n", 1)
		if _, err := Parse([]byte(text), "x.yaml"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.user, err, tc.want)
		}
	}
}
