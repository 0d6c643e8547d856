// Package monitoring_test checks what deploy/ ships for Prometheus and
// Grafana: the alert rules pass promtool's check and their unit tests,
// every dashboard query is valid PromQL, and every Switchyard metric the
// rules and the dashboard name is one a running proxy exports.
package monitoring_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/test/harness"
)

var (
	env   *harness.Env
	proxy *harness.Proxy
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, 2, 18, harness.ProxyOptions{LogLevel: "info"}, &env, &proxy))
}

func deploy(parts ...string) string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(f), "..", "..", "deploy"}, parts...)...)
}

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("promtool", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s (Debian package prometheus, installed by make deps): %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAlertRules(t *testing.T) {
	out := promtool(t, "check", "rules", deploy("prometheus", "switchyard-alerts.yml"))
	if !strings.Contains(out, "SUCCESS: 13 rules found") {
		t.Fatalf("promtool check rules:\n%s", out)
	}
	promtool(t, "test", "rules", deploy("prometheus", "switchyard-alerts.test.yml"))
}

// dashboardQueries returns every PromQL expression of the dashboard, with
// Grafana's variables replaced by values Prometheus accepts.
func dashboardQueries(t *testing.T) []string {
	data, err := os.ReadFile(deploy("grafana", "switchyard-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$job", "switchyard", "$instance", ".*", "$cluster", ".*")
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, vars.Replace(tg.Expr))
		}
	}
	for _, a := range dash.Annotations.List {
		exprs = append(exprs, vars.Replace(a.Expr))
	}
	if len(exprs) < 20 {
		t.Fatalf("only %d queries in the dashboard", len(exprs))
	}
	return exprs
}

// Every dashboard query parses: promtool checks them as recording rules.
func TestDashboardQueriesAreValidPromQL(t *testing.T) {
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range dashboardQueries(t) {
		q, _ := json.Marshal(e)
		fmt.Fprintf(&b, "      - record: dashboard_query_%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", path)
}

// Every switchyard_* metric named by the rules or the dashboard exists in
// a real scrape of a proxy that served a little traffic.
func TestNamedMetricsExist(t *testing.T) {
	db := proxy.Open(t, "", "")
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS mon", "SELECT 1"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	families := map[string]bool{}
	for key := range proxy.Scrape(t) {
		families[strings.SplitN(key, ",", 2)[0]] = true
	}
	rules, err := os.ReadFile(deploy("prometheus", "switchyard-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(rules) + strings.Join(dashboardQueries(t), "\n")
	name := regexp.MustCompile(`\b(switchyard_[a-z_]+|process_[a-z_]+)`)
	var missing []string
	seen := map[string]bool{}
	for _, m := range name.FindAllString(text, -1) {
		m = strings.TrimSuffix(m, "_bucket")
		if seen[m] {
			continue
		}
		seen[m] = true
		if !families[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("named but not exported: %v", missing)
	}
	if len(seen) < 15 {
		t.Fatalf("only %d metric names found: %v", len(seen), seen)
	}
}
