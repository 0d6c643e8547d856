package rules

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/router"
)

// Kind is what a statement does, as rules see it.
type Kind uint8

const (
	KindOther Kind = iota // session statements, transaction control …
	KindRead
	KindWrite
	KindDDL
)

// Statement is what rules look at.
type Statement struct {
	SQL    string
	Digest string
	User   string
	Schema string // the session's database
	Client netip.Addr
	Kind   Kind
	Tables []string // lower-case table names
}

// Action is what the matching rules want done; zero fields: nothing.
type Action struct {
	// Rules names the rules that matched, in order ("" when none).
	Rules    string
	Route    string // "master", "replica", a cluster name, or ""
	Block    string // non-empty: refuse the statement with this text
	CacheTTL time.Duration
	Timeout  time.Duration
	MaxLag   time.Duration
	Log      bool
	// hits are the counters of the rules that matched.
	hits []*Counters
}

// None reports whether no rule matched.
func (a Action) None() bool { return a.Rules == "" }

// Counters are one rule's statistics, updated by every session.
type Counters struct {
	Hits        atomic.Uint64
	LastHit     atomic.Int64 // unix nanoseconds
	CacheHits   atomic.Uint64
	CacheMisses atomic.Uint64
}

// Hit counts a use of the action by one statement: each matching rule's
// hits and last hit (called once the statement is known to run, or to be
// blocked).
func (a Action) Hit(now time.Time) {
	for _, c := range a.hits {
		c.Hits.Add(1)
		c.LastHit.Store(now.UnixNano())
	}
}

// CacheResult counts a cache lookup for the rules that asked for it.
func (a Action) CacheResult(hit bool) {
	for _, c := range a.hits {
		if hit {
			c.CacheHits.Add(1)
		} else {
			c.CacheMisses.Add(1)
		}
	}
}

// rule is one compiled rule.
type rule struct {
	spec conf.Rule
	// digest is spec's digest in the form statements carry.
	digest string
	regex  *regexp.Regexp
	// literal is a string every match of regex contains (lower-case when
	// fold: the expression ignores case there); "" when none is known.
	literal string
	fold    bool
	client  netip.Prefix
	kind    Kind
	tables  map[string]bool
	count   *Counters
}

// Set is the compiled rules, in order.
type Set struct {
	rules []rule
	// caches: some rule has a cache_ttl (writes must then invalidate).
	caches bool
	// byUser lists, for each user a rule names and each statement kind,
	// the rules that can match such a statement (in order); other lists
	// them for users no rule names. Match tests only those.
	byUser map[string]*[4][]int
	other  [4][]int
}

// Compile builds a Set; the rules were validated by conf (a rule that
// does not compile here is an error all the same). Counters of rules
// that keep their name in old carry over (a reload keeps the hits).
func Compile(specs []conf.Rule, old *Set) (*Set, error) {
	s := &Set{}
	for _, spec := range specs {
		r := rule{spec: spec, count: &Counters{}}
		if spec.Match.Digest != "" {
			r.digest = router.NormalizeDigest(spec.Match.Digest)
		}
		if old != nil {
			if prev := old.find(spec.Name); prev != nil {
				r.count = prev.count
			}
		}
		m := spec.Match
		if m.Regex != "" {
			re, err := regexp.Compile(m.Regex)
			if err != nil {
				return nil, fmt.Errorf("rule %s: %w", spec.Name, err)
			}
			r.regex = re
			r.literal, r.fold = requiredLiteral(m.Regex)
		}
		if m.Client != "" {
			p, err := netip.ParsePrefix(m.Client)
			if err != nil {
				a, err2 := netip.ParseAddr(m.Client)
				if err2 != nil {
					return nil, fmt.Errorf("rule %s: client %q is not a CIDR", spec.Name, m.Client)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			r.client = p.Masked()
		}
		r.kind = map[string]Kind{"read": KindRead, "write": KindWrite, "ddl": KindDDL}[m.Kind]
		if len(m.Tables) > 0 {
			r.tables = map[string]bool{}
			for _, t := range m.Tables {
				r.tables[strings.ToLower(t)] = true
			}
		}
		s.rules = append(s.rules, r)
		s.caches = s.caches || spec.CacheTTL > 0
	}
	s.index()
	return s, nil
}

// index builds byUser and other.
func (s *Set) index() {
	s.byUser = map[string]*[4][]int{}
	for _, r := range s.rules {
		if u := r.spec.Match.User; u != "" && s.byUser[u] == nil {
			s.byUser[u] = &[4][]int{}
		}
	}
	for i, r := range s.rules {
		for k := range 4 {
			if r.kind != KindOther && r.kind != Kind(k) {
				continue
			}
			if u := r.spec.Match.User; u != "" {
				s.byUser[u][k] = append(s.byUser[u][k], i)
				continue
			}
			s.other[k] = append(s.other[k], i)
			for _, lists := range s.byUser {
				lists[k] = append(lists[k], i)
			}
		}
	}
}

// Len is the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Caches reports whether some rule caches results.
func (s *Set) Caches() bool { return s != nil && s.caches }

func (s *Set) find(name string) *rule {
	for i := range s.rules {
		if s.rules[i].spec.Name == name {
			return &s.rules[i]
		}
	}
	return nil
}

// Match returns what the rules want done with st: the first matching
// rule's actions, and with continue the next matching rules' actions for
// what it left unset. The cheap conditions are tested before the regular
// expression.
func (s *Set) Match(st *Statement) Action {
	var a Action
	if s == nil {
		return a
	}
	candidates := &s.other
	if l := s.byUser[st.User]; l != nil {
		candidates = l
	}
	for _, i := range candidates[st.Kind%4] {
		r := &s.rules[i]
		if !r.matches(st) {
			continue
		}
		a.add(r)
		if !r.spec.Continue {
			break
		}
	}
	return a
}

func (r *rule) matches(st *Statement) bool {
	m := &r.spec.Match // user and kind: Set.index chose the candidates
	switch {
	case m.Schema != "" && !strings.EqualFold(m.Schema, st.Schema),
		r.digest != "" && r.digest != st.Digest,
		r.client.IsValid() && !(st.Client.IsValid() && r.client.Contains(st.Client.Unmap())):
		return false
	}
	if r.tables != nil && !anyIn(st.Tables, r.tables) {
		return false
	}
	if r.regex == nil {
		return true
	}
	// A literal every match contains, looked for first: a substring
	// search costs a fraction of running the expression.
	if r.literal != "" && !contains(st.SQL, r.literal, r.fold) {
		return false
	}
	return r.regex.MatchString(st.SQL)
}

func anyIn(list []string, set map[string]bool) bool {
	for _, t := range list {
		if set[t] {
			return true
		}
	}
	return false
}

// add merges a matching rule's actions: the first rule's win.
func (a *Action) add(r *rule) {
	sp := &r.spec
	if a.Rules == "" {
		a.Rules = sp.Name
	} else {
		a.Rules += "," + sp.Name
	}
	a.hits = append(a.hits, r.count)
	if a.Route == "" {
		a.Route = sp.Route
	}
	if a.Block == "" {
		a.Block = sp.Block
	}
	if a.CacheTTL == 0 {
		a.CacheTTL = sp.CacheTTL.D()
	}
	if a.Timeout == 0 {
		a.Timeout = sp.Timeout.D()
	}
	if a.MaxLag == 0 {
		a.MaxLag = sp.MaxLag.D()
	}
	a.Log = a.Log || sp.Log
}

// RuleInfo is one rule as SHOW RULES prints it.
type RuleInfo struct {
	Name, Match, Action        string
	Hits, CacheHits, CacheMiss uint64
	LastHit                    time.Time // zero: never
}

// Info lists the rules in order with their counters.
func (s *Set) Info() []RuleInfo {
	if s == nil {
		return nil
	}
	out := make([]RuleInfo, 0, len(s.rules))
	for _, r := range s.rules {
		info := RuleInfo{Name: r.spec.Name, Match: describeMatch(r.spec.Match), Action: describeAction(r.spec),
			Hits: r.count.Hits.Load(), CacheHits: r.count.CacheHits.Load(), CacheMiss: r.count.CacheMisses.Load()}
		if n := r.count.LastHit.Load(); n != 0 {
			info.LastHit = time.Unix(0, n)
		}
		out = append(out, info)
	}
	return out
}

func describeMatch(m conf.RuleMatch) string {
	var parts []string
	for _, f := range []struct{ k, v string }{{"user", m.User}, {"schema", m.Schema}, {"client", m.Client}, {"kind", m.Kind},
		{"digest", m.Digest}, {"regex", m.Regex}, {"tables", strings.Join(m.Tables, ",")}} {
		if f.v != "" {
			parts = append(parts, f.k+"="+f.v)
		}
	}
	if len(parts) == 0 {
		return "any statement"
	}
	return strings.Join(parts, " ")
}

func describeAction(r conf.Rule) string {
	var parts []string
	if r.Block != "" {
		parts = append(parts, "block: "+r.Block)
	}
	if r.Route != "" {
		parts = append(parts, "route="+r.Route)
	}
	for _, d := range []struct {
		k string
		v conf.Duration
	}{{"cache_ttl", r.CacheTTL}, {"timeout", r.Timeout}, {"max_lag", r.MaxLag}} {
		if d.v != 0 {
			parts = append(parts, d.k+"="+d.v.D().String())
		}
	}
	if r.Log {
		parts = append(parts, "log")
	}
	if r.Continue {
		parts = append(parts, "continue")
	}
	return strings.Join(parts, " ")
}
