package router

import (
	"fmt"
	"sort"
	"strings"
)

// ClusterMap says which cluster serves which database (Mycat's schema →
// dataHost) and where each user starts. It is plain data built from the
// config; Pick is a pure function of it.
type ClusterMap struct {
	// Schemas maps a lower-case database name to its cluster.
	Schemas map[string]string
	// Users maps a user to its default cluster.
	Users map[string]string
	// Default is the cluster of anything not mapped otherwise.
	Default string
}

// CrossClusterError is a statement or transaction that would touch
// databases of two clusters: it runs nowhere.
type CrossClusterError struct {
	Clusters []string // sorted
	// InTransaction: the session's open transaction runs on the first.
	InTransaction bool
}

func (e *CrossClusterError) Error() string {
	if e.InTransaction {
		return fmt.Sprintf("the open transaction runs on cluster %s; this statement belongs to cluster %s: "+
			"a transaction cannot span two clusters", e.Clusters[0], e.Clusters[1])
	}
	return fmt.Sprintf("the statement names databases of clusters %s: a statement cannot span two clusters",
		strings.Join(e.Clusters, " and "))
}

// Home is the cluster a session sits on: its current database's, else
// the user's default.
func (m ClusterMap) Home(db, user string) string {
	if c, ok := m.Schemas[strings.ToLower(db)]; ok && db != "" {
		return c
	}
	if c, ok := m.Users[user]; ok && c != "" {
		return c
	}
	return m.Default
}

// DatabaseOn is the session database db as seen on cluster: db itself,
// or "" when db is mapped to another cluster (a session in db1 running a
// statement qualified with db2's tables on db2's cluster, where db1 does
// not exist: the connection there selects no database).
func (m ClusterMap) DatabaseOn(db, cluster string) string {
	if c, ok := m.Schemas[strings.ToLower(db)]; ok && c != cluster {
		return ""
	}
	return db
}

// Pick returns the cluster a statement runs on: the cluster of the
// databases it names (qualified tables, USE, CREATE/DROP DATABASE), or
// home (the session's cluster) for unqualified names and statements that
// name none. Databases not in the map (information_schema, mysql …) exist
// on every cluster and decide nothing. Two clusters is an error.
func (m ClusterMap) Pick(c *Class, home string) (string, error) {
	if len(m.Schemas) == 0 {
		return home, nil // one cluster: nothing to look up
	}
	picked := ""
	for _, db := range c.Schemas {
		cl, ok := m.Schemas[db]
		switch {
		case !ok:
		case picked == "":
			picked = cl
		case picked != cl:
			names := []string{picked, cl}
			sort.Strings(names)
			return "", &CrossClusterError{Clusters: names}
		}
	}
	if picked == "" {
		return home, nil
	}
	if c.Unqualified && picked != home {
		names := []string{home, picked}
		sort.Strings(names)
		return "", &CrossClusterError{Clusters: names}
	}
	return picked, nil
}
