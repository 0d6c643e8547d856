package importer

import (
	"fmt"
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
	Backends                        []Backend
	MonitorUser, MonitorPassword    value
	MonitorInterval                 value
	MonitorFailCount                value
	ReplUser, ReplPassword          value
	FailoverEnabled                 value // "true" / "false"
	PreFailover, PostFailover       value
	PostSwitchover                  value
	ReadWriteSplit                  value // "true" / "false"
	MaxReplicaLag                   value
	PoolMaxConnections              value
	// BackendUser and BackendPassword are the account the old proxy used
	// on the servers for every application user.
	BackendUser, BackendPassword value
	// Skipped lists source settings that do not map, with why.
	Skipped []Skipped
	// Sources are the files read, for the header.
	Sources []string
}

// User is an application account.
type User struct {
	Name, Password string
	From           origin
	Note           string
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

// backend returns the backend at host:port, or nil.
func (p *Plan) backend(host string, port int) *Backend {
	for i := range p.Backends {
		if strings.EqualFold(p.Backends[i].Host, host) && p.Backends[i].Port == port {
			return &p.Backends[i]
		}
	}
	return nil
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
