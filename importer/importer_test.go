package importer

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/conf"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func td(parts ...string) string { return filepath.Join(append([]string{"testdata"}, parts...)...) }

// render imports, renders and parses the result as Switchyard would.
func render(t *testing.T, f Files) (*Plan, string, *conf.Config) {
	t.Helper()
	randomPassword = func() string { return "generated-admin-password" }
	p, err := Import(f)
	if err != nil {
		t.Fatal(err)
	}
	out := string(Render(p))
	cfg, err := conf.Parse([]byte(out), "switchyard.yaml")
	if err != nil {
		t.Fatalf("the import is not a valid config: %v\n%s", err, out)
	}
	return p, out, cfg
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := td("golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./importer -update)", err)
	}
	if string(want) != got {
		t.Fatalf("%s differs from the golden file (go test ./importer -update, then review the diff):\n%s", name, got)
	}
}

func TestMHAAndMycat(t *testing.T) {
	p, out, cfg := render(t, Files{MHA: []string{td("mha", "app1.cnf")}, MHADefault: td("mha", "masterha_default.cnf"),
		MycatSchema: td("mycat", "schema.xml"), MycatServer: td("mycat", "server.xml")})
	golden(t, "mha-mycat.yaml", out)

	if cfg.Listen != "0.0.0.0:8066" || cfg.Admin.Listen != "127.0.0.1:9066" {
		t.Errorf("listen %s, admin %s", cfg.Listen, cfg.Admin.Listen)
	}
	if len(cfg.Users) != 2 || cfg.Users[0].Name != "shop" || cfg.Users[0].Password.Value() != "Shop_app123" ||
		cfg.Users[0].BackendUser != "shop_rw" || cfg.Users[0].BackendPassword.Value() != "Shop_pass123" {
		t.Errorf("users: %+v", cfg.Users)
	}
	want := []struct {
		name, addr        string
		weight            int
		candidate, noMstr bool
	}{
		{"server1", "192.168.56.11:3306", 1, false, false},
		{"server2", "192.168.56.12:3306", 1, true, false},
		{"server3", "192.168.56.13:3306", 2, false, true},
	}
	if len(cfg.Backends) != len(want) {
		t.Fatalf("backends: %+v", cfg.Backends)
	}
	for i, w := range want {
		b := cfg.Backends[i]
		if b.Name != w.name || b.Addr() != w.addr || b.Weight != w.weight || b.Candidate != w.candidate || b.NoMaster != w.noMstr {
			t.Errorf("backend %d: %+v, want %+v", i, b, w)
		}
	}
	// app1.cnf's ping_interval overrides the global file's.
	if cfg.Monitor.User != "mha" || cfg.Monitor.Password.Value() != "Mha_pass123" || cfg.Monitor.Interval.D().Seconds() != 1 || cfg.Monitor.FailCount != 3 {
		t.Errorf("monitor: %+v", cfg.Monitor)
	}
	if cfg.Failover.ReplicationUser != "repl" || cfg.Failover.ReplicationPassword.Value() != "Repl_pass123" || !cfg.Failover.Enabled {
		t.Errorf("failover: %+v", cfg.Failover)
	}
	if cfg.Pool.MaxConnections != 1000 || cfg.Routing.MaxReplicaLag.D().Seconds() != 100 || !cfg.Routing.ReadWriteSplit {
		t.Errorf("pool %d, lag %v, split %v", cfg.Pool.MaxConnections, cfg.Routing.MaxReplicaLag, cfg.Routing.ReadWriteSplit)
	}
	for _, h := range []struct{ hook, script, command string }{
		{cfg.Hooks.PreFailover, "/usr/local/bin/master_ip_failover", "--command=stopssh"},
		{cfg.Hooks.PostFailover, "/usr/local/bin/master_ip_failover", "--command=start"},
		{cfg.Hooks.PostSwitchover, "/usr/local/bin/master_ip_online_change", "--command=start"},
	} {
		if !strings.HasPrefix(h.hook, h.script+" ") || !strings.Contains(h.hook, h.command) || !strings.Contains(h.hook, "--orig_master_host=$SWITCHYARD_OLD_MASTER_HOST") {
			t.Errorf("hook %q", h.hook)
		}
	}
	// What does not map is listed with a reason, at its line.
	skipped := map[string]string{}
	for _, s := range p.Skipped {
		skipped[s.Setting] = string(s.From)
	}
	for setting, from := range map[string]string{
		"ssh_user=root": "masterha_default.cnf:5", "shutdown_script=": "app1.cnf:9", "report_script=/usr/local/bin/send_report": "app1.cnf:8",
		"[server3] ignore_fail=1": "app1.cnf:25", "[server2] check_repl_delay=0": "app1.cnf:19", "minCon=10": "schema.xml:10",
		"heartbeat select user()": "schema.xml:12", "user report readOnly=true": "server.xml:23", "sequnceHandlerType=2": "server.xml:7",
		"schema shop sqlMaxLimit=100": "schema.xml:5",
	} {
		if skipped[setting] != from {
			t.Errorf("skipped %q at %q, want %q (all: %v)", setting, skipped[setting], from, skipped)
		}
	}
}

func TestMHAAlone(t *testing.T) {
	for _, v := range []string{"SWITCHYARD_APP_PASSWORD", "SWITCHYARD_MONITOR_PASSWORD", "SWITCHYARD_REPL_PASSWORD"} {
		t.Setenv(v, "x")
	}
	_, out, cfg := render(t, Files{MHA: []string{td("mha", "app1.cnf")}})
	if cfg.Listen != "0.0.0.0:3306" || len(cfg.Users) != 1 || cfg.Users[0].Name != "app" {
		t.Fatalf("listen %s users %+v", cfg.Listen, cfg.Users)
	}
	if !strings.Contains(out, "No application accounts in the sources") {
		t.Fatal("the placeholder user is not explained")
	}
	// Without the global file there is no monitor account: a placeholder.
	if cfg.Monitor.User != "switchyard" || !strings.Contains(out, "${SWITCHYARD_MONITOR_PASSWORD}") {
		t.Fatalf("monitor %+v", cfg.Monitor)
	}
}

func TestAmoeba(t *testing.T) {
	t.Setenv("SWITCHYARD_MONITOR_PASSWORD", "x")
	t.Setenv("SWITCHYARD_REPL_PASSWORD", "y")
	_, out, cfg := render(t, Files{AmoebaDBServers: td("amoeba", "dbServers.xml"), Amoeba: td("amoeba", "amoeba.xml")})
	golden(t, "amoeba.yaml", out)
	if cfg.Listen != "0.0.0.0:8066" || len(cfg.Users) != 1 || cfg.Users[0].Name != "shop" || cfg.Users[0].BackendUser != "amoeba_rw" {
		t.Fatalf("listen %s users %+v", cfg.Listen, cfg.Users)
	}
	weights := map[string]int{}
	for _, b := range cfg.Backends {
		weights[b.Name] = b.Weight
	}
	if len(weights) != 3 || weights["slave1"] != 1 || weights["slave2"] != 2 || cfg.Pool.MaxConnections != 500 {
		t.Fatalf("backends %+v pool %d", cfg.Backends, cfg.Pool.MaxConnections)
	}
}

func TestBadInputNamesFileAndLine(t *testing.T) {
	tests := []struct {
		name, file, content string
		files               func(path string) Files
		want                string
	}{
		{"unknown MHA parameter", "app1.cnf", "[server default]\nuser=mha\nping_intervall=3\n[server1]\nhostname=h\n",
			func(p string) Files { return Files{MHA: []string{p}} }, `app1.cnf:3: unknown MHA parameter "ping_intervall"`},
		{"not key=value", "app1.cnf", "[server default]\nuser mha\n", func(p string) Files { return Files{MHA: []string{p}} }, `app1.cnf:2: "user mha" is not key=value`},
		{"unclosed section", "app1.cnf", "[server1\nhostname=h\n", func(p string) Files { return Files{MHA: []string{p}} }, "app1.cnf:1: section header"},
		{"no hostname", "app1.cnf", "[server default]\n\n[server1]\nport=3306\n", func(p string) Files { return Files{MHA: []string{p}} }, "app1.cnf:3: [server1] has no hostname"},
		{"bad port", "app1.cnf", "[server1]\nhostname=h\nport=33o6\n", func(p string) Files { return Files{MHA: []string{p}} }, `app1.cnf:3: port="33o6" is not a port`},
		{"unknown section", "app1.cnf", "[binlog1]\nhostname=h\n", func(p string) Files { return Files{MHA: []string{p}} }, "app1.cnf:1: unknown section [binlog1]"},
		{"no servers", "app1.cnf", "[server default]\nuser=mha\n", func(p string) Files { return Files{MHA: []string{p}} }, "app1.cnf: no [serverN] section"},
		{"candidate and no_master", "app1.cnf", "[server1]\nhostname=h\ncandidate_master=1\nno_master=1\n", func(p string) Files { return Files{MHA: []string{p}} }, "app1.cnf:1: [server1] is both"},
		{"XML syntax", "schema.xml", "<schema>\n<dataHost name=\"a\">\n</schema>\n", func(p string) Files { return Files{MycatSchema: p} }, "schema.xml:3:"},
		{"not a schema", "schema.xml", "<server/>\n", func(p string) Files { return Files{MycatSchema: p} }, "schema.xml:1: <server> is not Mycat's"},
		{"oracle", "schema.xml", "<schema>\n<dataHost name=\"a\" dbType=\"oracle\">\n<writeHost host=\"m\" url=\"h:1\"/></dataHost>\n</schema>\n",
			func(p string) Files { return Files{MycatSchema: p} }, "schema.xml:2: dataHost a is dbType=oracle"},
		{"unknown dataHost", "schema.xml", "<schema>\n<dataHost name=\"a\"/>\n<dataHost name=\"b\"/>\n</schema>\n",
			func(p string) Files { return Files{MycatSchema: p, MycatDataHost: "c"} }, `schema.xml:1: no dataHost "c" (there are: a, b)`},
		{"galera", "schema.xml", "<schema>\n\n<dataHost name=\"a\" switchType=\"3\"><writeHost host=\"m\" url=\"h:1\"/></dataHost>\n</schema>\n",
			func(p string) Files { return Files{MycatSchema: p} }, "schema.xml:3: switchType=3"},
		{"bad url", "schema.xml", "<schema>\n<dataHost name=\"a\">\n<writeHost host=\"m\" url=\"h\"/></dataHost>\n</schema>\n",
			func(p string) Files { return Files{MycatSchema: p} }, `schema.xml:3: writeHost m: url="h": not host:port`},
		{"amoeba without address", "dbServers.xml", "<dbServers>\n<dbServer name=\"s\">\n</dbServer>\n</dbServers>\n",
			func(p string) Files { return Files{AmoebaDBServers: p} }, "dbServers.xml:2: dbServer s has no ipAddress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Import(tt.files(path))
			var ie *InputError
			if err == nil || !errors.As(err, &ie) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want an InputError starting %q", err, tt.want)
			}
		})
	}
}

func TestMissingOrLoneFiles(t *testing.T) {
	for _, f := range []Files{{}, {MHADefault: td("mha", "masterha_default.cnf")}, {MycatServer: td("mycat", "server.xml")},
		{Amoeba: td("amoeba", "amoeba.xml")}, {MHA: []string{td("mha", "nope.cnf")}}} {
		if _, err := Import(f); err == nil {
			t.Errorf("%+v: no error", f)
		}
	}
}

// TestFleet: a Mycat with two dataHosts and the two MHA configs of the
// same servers import as two clusters in one config: schemas mapped,
// users on the cluster of their first schema with its backend account,
// per-cluster differences as overrides, MHA's server1 … renamed per
// cluster, and what does not map (a renamed schema, a sharded table, a
// second cluster's different failover script) listed with why.
func TestFleet(t *testing.T) {
	p, out, cfg := render(t, Files{MHA: []string{td("mha", "app1.cnf"), td("fleet", "app2.cnf")}, MHADefault: td("mha", "masterha_default.cnf"),
		MycatSchema: td("fleet", "schema.xml"), MycatServer: td("fleet", "server.xml")})
	golden(t, "fleet.yaml", out)

	clusters := cfg.ClusterList()
	if len(clusters) != 2 || clusters[0].Name != "shop_host" || clusters[1].Name != "crm_host" {
		t.Fatalf("clusters: %+v", clusters)
	}
	if want := map[string]string{"shop": "shop_host", "crm": "crm_host"}; !reflect.DeepEqual(cfg.Schemas, want) {
		t.Errorf("schemas %v, want %v", cfg.Schemas, want)
	}
	shop, crm := clusters[0], clusters[1]
	names := func(c conf.Cluster) (out []string) {
		for _, b := range c.Backends {
			out = append(out, b.Name+"@"+b.Addr())
		}
		return out
	}
	if got := names(shop); !reflect.DeepEqual(got, []string{"shop_host-server1@192.168.56.11:3306", "shop_host-server2@192.168.56.12:3306", "shop_host-server3@192.168.56.13:3306"}) {
		t.Errorf("shop_host backends %v", got)
	}
	if got := names(crm); !reflect.DeepEqual(got, []string{"crm_host-server1@192.168.57.21:3306", "crm_host-server2@192.168.57.22:3306"}) {
		t.Errorf("crm_host backends %v", got)
	}
	// Each cluster's own settings: Mycat's maxCon and slaveThreshold, MHA's ping_interval.
	if shop.Pool.MaxConnections != 1000 || crm.Pool.MaxConnections != 300 || crm.Routing.MaxReplicaLag.D().Seconds() != 30 ||
		shop.Monitor.Interval.D().Seconds() != 1 || crm.Monitor.Interval.D().Seconds() != 3 || crm.Monitor.User != "mha" {
		t.Errorf("shop %+v %+v %+v; crm %+v %+v %+v", shop.Pool, shop.Routing, shop.Monitor, crm.Pool, crm.Routing, crm.Monitor)
	}
	users := map[string]conf.User{}
	for _, u := range cfg.Users {
		users[u.Name] = u
	}
	if u := users["shop"]; u.BackendUser != "shop_rw" || u.Cluster != "" {
		t.Errorf("shop: %+v", u)
	}
	if u := users["crm"]; u.BackendUser != "crm_rw" || u.BackendPassword.Value() != "Crm_pass123" || u.Cluster != "crm_host" {
		t.Errorf("crm: %+v", u)
	}
	if u := users["report"]; u.BackendUser != "crm_rw" || u.Cluster != "crm_host" {
		t.Errorf("report: %+v", u)
	}
	skipped := map[string]string{}
	for _, s := range p.Skipped {
		skipped[s.Setting] = string(s.From)
	}
	for setting, from := range map[string]string{
		"schema legacy → database legacy_db":                 "schema.xml:11",
		`table events (rule "mod-long" over dn_crm,dn_crm2)`: "schema.xml:9",
		"user report on cluster shop_host as shop_rw":        "server.xml:21",
		"cluster crm_host's pre_failover script":             "app2.cnf:6",
		"user report readOnly=true":                          "server.xml:22",
	} {
		if skipped[setting] != from {
			t.Errorf("skipped %q at %q, want %q (all: %v)", setting, skipped[setting], from, skipped)
		}
	}
}

// TestOneDataHostOfMany: --mycat-datahost imports one cluster as before;
// the other dataHost's schemas are listed as not imported.
func TestOneDataHostOfMany(t *testing.T) {
	t.Setenv("SWITCHYARD_MONITOR_PASSWORD", "x")
	t.Setenv("SWITCHYARD_REPL_PASSWORD", "y")
	p, _, cfg := render(t, Files{MycatSchema: td("fleet", "schema.xml"), MycatServer: td("fleet", "server.xml"), MycatDataHost: "crm_host"})
	if len(cfg.Clusters) != 0 || len(cfg.Backends) != 2 || cfg.Backends[0].Addr() != "192.168.57.21:3306" {
		t.Fatalf("clusters %+v backends %+v", cfg.Clusters, cfg.Backends)
	}
	found := false
	for _, s := range p.Skipped {
		found = found || s.Setting == "schema shop on dataHost shop_host"
	}
	if !found {
		t.Errorf("the other dataHost's schema is not listed: %+v", p.Skipped)
	}
}
