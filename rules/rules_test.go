package rules

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/router"
)

func d(v time.Duration) conf.Duration { return conf.Duration(v) }

// issueRules are the three rules of the README's example, and two more.
var issueRules = []conf.Rule{
	{Name: "no-unbounded-delete", Match: conf.RuleMatch{Regex: `(?i)^\s*DELETE\s+FROM\s+\S+\s*$`}, Block: "unbounded DELETE is not allowed"},
	{Name: "reports-on-replicas", Match: conf.RuleMatch{User: "report", Kind: "read"}, Route: "replica", MaxLag: d(30 * time.Second)},
	{Name: "office-logged", Match: conf.RuleMatch{Client: "10.1.0.0/16"}, Log: true, Continue: true},
	{Name: "hot-lookup", Match: conf.RuleMatch{Digest: "SELECT `v` FROM `t` WHERE `id` = ?"}, CacheTTL: d(2 * time.Second)},
	{Name: "orders-timeout", Match: conf.RuleMatch{Tables: []string{"orders"}, Schema: "shop"}, Timeout: d(5 * time.Second)},
}

// hotDigest is the digest statements carry for the hot-lookup rule's.
var hotDigest = router.NormalizeDigest("SELECT `v` FROM `t` WHERE `id` = ?")

// TestMatch: statements × rules → the action, like router.Decide's table.
func TestMatch(t *testing.T) {
	set, err := Compile(issueRules, nil)
	if err != nil {
		t.Fatal(err)
	}
	office, elsewhere := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.168.1.9")
	tests := []struct {
		name string
		st   Statement
		want Action
	}{
		{"unbounded delete blocked", Statement{SQL: "delete from  t ", Kind: KindWrite}, Action{Rules: "no-unbounded-delete", Block: "unbounded DELETE is not allowed"}},
		{"bounded delete passes", Statement{SQL: "DELETE FROM t WHERE id = 1", Kind: KindWrite}, Action{}},
		{"report's read goes to a replica", Statement{SQL: "SELECT 1", User: "report", Kind: KindRead},
			Action{Rules: "reports-on-replicas", Route: "replica", MaxLag: 30 * time.Second}},
		{"report's write untouched", Statement{SQL: "UPDATE t SET v=1", User: "report", Kind: KindWrite}, Action{}},
		{"another user's read untouched", Statement{SQL: "SELECT 1", User: "app", Kind: KindRead}, Action{}},
		{"digest cached", Statement{Digest: hotDigest, Kind: KindRead}, Action{Rules: "hot-lookup", CacheTTL: 2 * time.Second}},
		{"from the office: logged, and the next rule still applies", Statement{Digest: hotDigest, Client: office, Kind: KindRead},
			Action{Rules: "office-logged,hot-lookup", CacheTTL: 2 * time.Second, Log: true}},
		{"office alone: logged", Statement{SQL: "SELECT 2", Client: office}, Action{Rules: "office-logged", Log: true}},
		{"elsewhere: not logged", Statement{SQL: "SELECT 2", Client: elsewhere}, Action{}},
		{"IPv4 in IPv6 clients match", Statement{SQL: "SELECT 2", Client: netip.MustParseAddr("::ffff:10.1.0.7")}, Action{Rules: "office-logged", Log: true}},
		{"table and schema", Statement{SQL: "SELECT * FROM orders", Schema: "SHOP", Tables: []string{"orders"}, Kind: KindRead},
			Action{Rules: "orders-timeout", Timeout: 5 * time.Second}},
		{"table in another schema", Statement{SQL: "SELECT * FROM orders", Schema: "crm", Tables: []string{"orders"}}, Action{}},
		{"first match wins", Statement{SQL: "DELETE FROM orders", Schema: "shop", Tables: []string{"orders"}, Kind: KindWrite},
			Action{Rules: "no-unbounded-delete", Block: "unbounded DELETE is not allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := set.Match(&tt.st)
			got.hits = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestCountersSurviveRecompile: a reload keeps each remaining rule's hits.
func TestCountersSurviveRecompile(t *testing.T) {
	set, _ := Compile(issueRules, nil)
	a := set.Match(&Statement{SQL: "DELETE FROM t", Kind: KindWrite})
	a.Hit(time.Now())
	a.Hit(time.Now())
	again, _ := Compile(issueRules[:2], set)
	info := again.Info()
	if len(info) != 2 || info[0].Hits != 2 || info[0].LastHit.IsZero() || info[1].Hits != 0 {
		t.Fatalf("after recompiling: %+v", info)
	}
}

func TestNilSetMatchesNothing(t *testing.T) {
	var s *Set
	if a := s.Match(&Statement{SQL: "SELECT 1"}); !a.None() {
		t.Fatalf("%+v", a)
	}
}

// FuzzMatch: any statement text and fields, against rules with every
// kind of condition: no panic, and a block never comes with a route or a
// cache (conf forbids it, the merge must not invent it).
func FuzzMatch(f *testing.F) {
	set, err := Compile(issueRules, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("DELETE FROM t", "report", "shop", "10.1.0.1", uint8(2), "orders")
	f.Add("SELECT `v` FROM `t` WHERE `id` = ?", "", "", "", uint8(1), "")
	f.Fuzz(func(t *testing.T, sql, user, schema, client string, kind uint8, table string) {
		addr, _ := netip.ParseAddr(client)
		a := set.Match(&Statement{SQL: sql, Digest: sql, User: user, Schema: schema, Client: addr, Kind: Kind(kind % 4), Tables: []string{table}})
		if a.Block != "" && (a.Route != "" || a.CacheTTL != 0) {
			t.Fatalf("a blocked statement routed or cached: %+v", a)
		}
	})
}

// BenchmarkMatch is what rules add to a statement: none configured, and
// 50 rules of every kind (the last ones regular expressions), none of
// which matches the statement (the worst case: every rule is tested).
func BenchmarkMatch(b *testing.B) {
	var fifty []conf.Rule
	for i := range 50 {
		r := conf.Rule{Name: fmt.Sprint("r", i), Log: true}
		switch i % 5 {
		case 0:
			r.Match.User = fmt.Sprint("user", i)
		case 1:
			r.Match.Digest = fmt.Sprintf("SELECT `c%d` FROM `t` WHERE `id` = ?", i)
		case 2:
			r.Match.Schema, r.Match.Kind = fmt.Sprint("db", i), "write"
		case 3:
			r.Match.Tables = []string{fmt.Sprint("table", i)}
		case 4:
			r.Match.Regex = fmt.Sprintf(`(?i)^\s*SELECT\s+secret%d\b`, i)
		}
		fifty = append(fifty, r)
	}
	st := Statement{SQL: "SELECT c FROM sbtest1 WHERE id=4211", Digest: "SELECT `c` FROM `sbtest1` WHERE `id` = ?", User: "sbtest",
		Schema: "sbtest", Client: netip.MustParseAddr("127.0.0.1"), Kind: KindRead, Tables: []string{"sbtest1"}}
	for _, bc := range []struct {
		name  string
		rules []conf.Rule
	}{{"none", nil}, {"fifty", fifty}} {
		set, err := Compile(bc.rules, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if a := set.Match(&st); !a.None() {
					b.Fatal("matched")
				}
			}
		})
	}
}

// TestRequiredLiteral: the literal looked for before running an
// expression is one every match contains; an expression without one
// (an alternation) is always run.
func TestRequiredLiteral(t *testing.T) {
	tests := []struct {
		expr, lit string
		fold      bool
	}{
		{`(?i)^\s*DELETE\s+FROM\s+\S+\s*$`, "delete", true},
		{`^SELECT .* FROM secret_table`, " FROM secret_table", false},
		{`orders|invoices`, "", false},
		{`(?i)^\s*select\s+(a|b)`, "select", true},
		{`(drop table)`, "drop table", false},
	}
	for _, tt := range tests {
		lit, fold := requiredLiteral(tt.expr)
		if lit != tt.lit || fold != tt.fold {
			t.Errorf("%s: %q %v, want %q %v", tt.expr, lit, fold, tt.lit, tt.fold)
		}
	}
	for _, c := range []struct {
		s, lit string
		fold   bool
		want   bool
	}{{"DeLeTe from t", "delete", true, true}, {"SELECT 1", "delete", true, false}, {"x drop table", "drop table", false, true},
		{"DROP TABLE", "drop table", false, false}, {"del", "delete", true, false}} {
		if got := contains(c.s, c.lit, c.fold); got != c.want {
			t.Errorf("contains(%q, %q, %v) = %v", c.s, c.lit, c.fold, got)
		}
	}
}
