package router

import (
	"errors"
	"reflect"
	"testing"
)

// TestClusterPick: a statement goes to the cluster of the databases it
// names, else to the session's home cluster; two clusters is an error.
func TestClusterPick(t *testing.T) {
	m := ClusterMap{Schemas: map[string]string{"shop": "c1", "crm": "c2"}, Users: map[string]string{"report": "c2"}, Default: "c1"}
	c := NewClassifier(0)
	tests := []struct {
		sql, db, user string
		want          string
		cross         []string
	}{
		{"SELECT * FROM orders", "shop", "app", "c1", nil},
		{"SELECT * FROM orders", "crm", "app", "c2", nil},
		{"SELECT * FROM crm.contacts", "shop", "app", "c2", nil},
		{"INSERT INTO crm.contacts VALUES (1)", "", "app", "c2", nil},
		{"SELECT 1", "", "report", "c2", nil},
		{"SELECT 1", "", "app", "c1", nil},
		{"SELECT 1", "crm", "app", "c2", nil},
		{"USE crm", "shop", "app", "c2", nil},
		{"CREATE DATABASE crm", "", "app", "c2", nil},
		{"DROP DATABASE IF EXISTS crm", "shop", "app", "c2", nil},
		{"CREATE TABLE crm.t (id INT)", "shop", "app", "c2", nil},
		{"SELECT * FROM information_schema.tables", "crm", "app", "c2", nil},
		{"SELECT * FROM unknown_db.t", "crm", "app", "c2", nil},
		{"WITH x AS (SELECT * FROM crm.t) SELECT * FROM x", "shop", "app", "c2", nil},
		{"SELECT * FROM shop.orders o JOIN crm.contacts c ON o.id = c.id", "", "app", "", []string{"c1", "c2"}},
		{"SELECT * FROM orders JOIN crm.contacts", "shop", "app", "", []string{"c1", "c2"}},
		{"INSERT INTO shop.a SELECT * FROM crm.b", "", "app", "", []string{"c1", "c2"}},
		{"SELECT * FROM orders; SELECT * FROM crm.t", "shop", "app", "", []string{"c1", "c2"}},
		{"SELECT 1; SELECT * FROM crm.t", "shop", "app", "c2", nil},
		{"not sql at all", "crm", "app", "c2", nil},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			got, err := m.Pick(new(c.Classify(tt.sql, false)), m.Home(tt.db, tt.user))
			var cross *CrossClusterError
			switch {
			case tt.cross != nil:
				if !errors.As(err, &cross) || !reflect.DeepEqual(cross.Clusters, tt.cross) {
					t.Fatalf("got %q, %v; want an error naming %v", got, err, tt.cross)
				}
			case err != nil || got != tt.want:
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestClusterPickOneCluster: without a schemas map everything stays home.
func TestClusterPickOneCluster(t *testing.T) {
	m := ClusterMap{Default: "default"}
	c := NewClassifier(0)
	if got, err := m.Pick(new(c.Classify("SELECT * FROM a.t JOIN b.u", false)), m.Home("a", "app")); err != nil || got != "default" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestDatabaseOn: a connection on another cluster does not select a
// database mapped elsewhere (it does not exist there); unmapped databases
// are selected everywhere.
func TestDatabaseOn(t *testing.T) {
	m := ClusterMap{Schemas: map[string]string{"shop": "c1", "crm": "c2"}, Default: "c1"}
	tests := []struct{ db, cluster, want string }{
		{"shop", "c1", "shop"},
		{"shop", "c2", ""},
		{"CRM", "c1", ""},
		{"CRM", "c2", "CRM"},
		{"test", "c2", "test"},
		{"", "c1", ""},
	}
	for _, tt := range tests {
		if got := m.DatabaseOn(tt.db, tt.cluster); got != tt.want {
			t.Errorf("DatabaseOn(%q, %q) = %q, want %q", tt.db, tt.cluster, got, tt.want)
		}
	}
}

// BenchmarkClusterPick is what routing to a cluster adds to a statement
// (the classification is cached and shared with the read/write split):
// Home + Pick for one cluster and for a schemas map of two.
func BenchmarkClusterPick(b *testing.B) {
	c := NewClassifier(1000)
	class := c.Classify("SELECT c FROM sbtest1 WHERE id = 42", false)
	qualified := c.Classify("SELECT c FROM crm.contacts WHERE id = 42", false)
	for _, bc := range []struct {
		name  string
		m     ClusterMap
		class Class
	}{
		{"one-cluster", ClusterMap{Default: "default"}, class},
		{"two-clusters", ClusterMap{Schemas: map[string]string{"shop": "c1", "crm": "c2"}, Default: "c1"}, class},
		{"two-clusters-qualified", ClusterMap{Schemas: map[string]string{"shop": "c1", "crm": "c2"}, Default: "c1"}, qualified},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.m.Pick(&bc.class, bc.m.Home("shop", "app")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
