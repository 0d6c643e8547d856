package importer

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// InputError is a problem in a source file, with where it is.
type InputError struct {
	File string
	Line int // 0 when the whole file is concerned
	Msg  string
}

func (e *InputError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// origin is where a setting came from ("app1.cnf:12").
type origin string

func at(file string, line int) origin { return origin(fmt.Sprintf("%s:%d", file, line)) }

// value is a setting with its origin ("" origin: a Switchyard default or
// a placeholder, explained by why).
type value struct {
	v    string
	from origin
	why  string
}

func (v value) set() bool { return v.v != "" }

// Plan is the switchyard.yaml an import produces, before rendering.
type Plan struct {
	Listen, AdminListen, HTTPListen value
	Users                           []User
	// Clusters: one per MHA application config, Mycat dataHost or Amoeba
	// server set (a Mycat dataHost joins the MHA cluster holding the same
	// servers). One cluster renders as today's top-level backends.
	Clusters []*Cluster
	// Schemas maps Mycat's logical schemas to clusters (rendered only
	// with several clusters).
	Schemas []Schema
	// Hooks are shared by every cluster: the first cluster's MHA scripts
	// (finish notes any other cluster's that differ).
	PreFailover, PostFailover, PostSwitchover value
	// Skipped lists source settings that do not map, with why.
	Skipped []Skipped
	// Sources are the files read, for the header.
	Sources []string
}

// Cluster is one master–replica cluster and the settings its source gave.
type Cluster struct {
	Name string
	From []string // the source that defined it ("app1.cnf", "dataHost shop_host")

	Backends                     []Backend
	MonitorUser, MonitorPassword value
	MonitorInterval              value
	MonitorFailCount             value
	ReplUser, ReplPassword       value
	FailoverEnabled              value // "true" / "false"
	PreFailover, PostFailover    value
	PostSwitchover               value
	ReadWriteSplit               value // "true" / "false"
	MaxReplicaLag                value
	PoolMaxConnections           value
	// BackendUser and BackendPassword are the account the old proxy used
	// on this cluster's servers for every application user.
	BackendUser, BackendPassword value
}

// Schema is a database served by one cluster.
type Schema struct {
	Name, Cluster string
	From          origin
}

// User is an application account.
type User struct {
	Name, Password string
	From           origin
	Note           string
	// Cluster is where the user's sessions start ("": the first).
	Cluster string
}

// Backend is one server.
type Backend struct {
	Name      string
	Host      string
	Port      int
	Weight    int
	Candidate bool
	NoMaster  bool
	From      []origin
	Notes     []string
}

// Addr is host:port.
func (b *Backend) Addr() string { return fmt.Sprintf("%s:%d", b.Host, b.Port) }

// Skipped is a source setting that Switchyard does not take, and why.
type Skipped struct {
	From    origin
	Setting string
	Why     string
}

func (p *Plan) skip(from origin, setting, why string) {
	p.Skipped = append(p.Skipped, Skipped{From: from, Setting: setting, Why: why})
}

// backend returns the backend at host:port and its cluster, or nils.
func (p *Plan) backend(host string, port int) (*Cluster, *Backend) {
	for _, c := range p.Clusters {
		if b := c.backend(host, port); b != nil {
			return c, b
		}
	}
	return nil, nil
}

// backend returns the cluster's backend at host:port, or nil.
func (c *Cluster) backend(host string, port int) *Backend {
	for i := range c.Backends {
		if strings.EqualFold(c.Backends[i].Host, host) && c.Backends[i].Port == port {
			return &c.Backends[i]
		}
	}
	return nil
}

// newCluster adds an empty cluster.
func (p *Plan) newCluster(name, from string) *Cluster {
	c := &Cluster{Name: name, From: []string{from}}
	p.Clusters = append(p.Clusters, c)
	return c
}

// cluster returns the cluster named name, or nil.
func (p *Plan) cluster(name string) *Cluster {
	for _, c := range p.Clusters {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// finish settles what depends on every source: backend names unique
// across clusters (MHA calls every cluster's servers server1, server2 …:
// a cluster with a name another also has gets all its names prefixed
// with its own), and the shared hooks.
func (p *Plan) finish() {
	seen := map[string]int{}
	for _, c := range p.Clusters {
		for _, b := range c.Backends {
			seen[b.Name]++
		}
	}
	for _, c := range p.Clusters {
		if !slices.ContainsFunc(c.Backends, func(b Backend) bool { return seen[b.Name] > 1 }) {
			continue
		}
		for i := range c.Backends {
			b := &c.Backends[i]
			b.Notes = append(b.Notes, "was "+b.Name+": backend names are unique across clusters")
			b.Name = c.Name + "-" + b.Name
		}
	}
	p.shareHooks()
	p.sortSkipped()
}

// shareHooks takes the first cluster's MHA scripts as the hooks; another
// cluster's different scripts are listed as not carried over.
func (p *Plan) shareHooks() {
	var from *Cluster
	for _, c := range p.Clusters {
		hooks := []value{c.PreFailover, c.PostFailover, c.PostSwitchover}
		if !hooks[0].set() && !hooks[1].set() && !hooks[2].set() {
			continue
		}
		if from == nil {
			from = c
			p.PreFailover, p.PostFailover, p.PostSwitchover = hooks[0], hooks[1], hooks[2]
			continue
		}
		for i, mine := range []value{p.PreFailover, p.PostFailover, p.PostSwitchover} {
			if hooks[i].set() && hooks[i].v != mine.v {
				p.skip(hooks[i].from, "cluster "+c.Name+"'s "+[]string{"pre_failover", "post_failover", "post_switchover"}[i]+" script",
					"hooks are shared by every cluster (each call gets SWITCHYARD_CLUSTER): "+from.Name+"'s script runs; make one script for all")
			}
		}
	}
}

// sortSkipped orders the skipped settings by file and line.
func (p *Plan) sortSkipped() {
	sort.SliceStable(p.Skipped, func(i, j int) bool { return lessOrigin(p.Skipped[i].From, p.Skipped[j].From) })
}

func lessOrigin(a, b origin) bool {
	fa, la := splitOrigin(a)
	fb, lb := splitOrigin(b)
	if fa != fb {
		return fa < fb
	}
	return la < lb
}

func splitOrigin(o origin) (string, int) {
	s := string(o)
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, 0
	}
	var n int
	fmt.Sscan(s[i+1:], &n)
	return s[:i], n
}
