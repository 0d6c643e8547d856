package backend

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Global transaction ids in both flavours. MariaDB names a transaction
// domain-server-sequence ("0-1-42") and a server's position is the last
// GTID per domain ("0-1-42,1-2-7"). MySQL names it source_uuid:number
// ("3e11fa47-…:42", "uuid:tag:42" with a tag) and a server's position is
// a set of intervals per source ("uuid:1-5:7-9,uuid2:1-3"), compared as
// GTID_SUBSET and GTID_SUBTRACT define. Everything above this file uses
// GTID and Position only; which flavour a value is follows from its text.

// GTID is one global transaction id.
type GTID struct {
	Domain, Server uint32 // MariaDB
	Source         string // MySQL: server uuid, or uuid:tag
	Seq            uint64
}

// IsZero reports whether g is unset.
func (g GTID) IsZero() bool { return g == GTID{} }

func (g GTID) String() string {
	if g.Source != "" {
		return fmt.Sprintf("%s:%d", g.Source, g.Seq)
	}
	return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq)
}

// ParseGTID parses "0-1-42" (MariaDB) or "uuid:42" / "uuid:tag:42"
// (MySQL). A MySQL set naming one source ("uuid:40-42", what OWN_GTID
// tracking reports for a commit) gives its last transaction.
func ParseGTID(s string) (GTID, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, ":") {
		p, err := ParsePosition(s)
		if err != nil || len(p.sets) != 1 {
			return GTID{}, fmt.Errorf("bad GTID %q", s)
		}
		for src, ivs := range p.sets {
			return GTID{Source: src, Seq: ivs[len(ivs)-1].last}, nil
		}
	}
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return GTID{}, fmt.Errorf("bad GTID %q", s)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	sv, err2 := strconv.ParseUint(parts[1], 10, 32)
	seq, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return GTID{}, fmt.Errorf("bad GTID %q", s)
	}
	return GTID{Domain: uint32(d), Server: uint32(sv), Seq: seq}, nil
}

// interval is a closed range of transaction numbers of one source.
type interval struct{ first, last uint64 }

// Position is what a server holds: the last GTID per domain (MariaDB), or
// a GTID set (MySQL). The zero value is empty.
type Position struct {
	domains map[uint32]GTID       // MariaDB
	sets    map[string][]interval // MySQL: sorted, disjoint, non-adjacent
}

// ParsePosition parses @@gtid_slave_pos/@@gtid_current_pos ("0-1-42,1-2-7")
// or @@gtid_executed ("uuid:1-5:7,uuid2:1-3", newlines allowed); "" is
// empty.
func ParsePosition(s string) (Position, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, ":") {
		return parseGTIDSet(s)
	}
	var p Position
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		g, err := ParseGTID(part)
		if err != nil {
			return Position{}, err
		}
		p.setDomain(g)
	}
	return p, nil
}

func parseGTIDSet(s string) (Position, error) {
	var p Position
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		uuid := strings.ToLower(strings.TrimSpace(parts[0]))
		if len(uuid) != 36 || len(parts) < 2 {
			return Position{}, fmt.Errorf("bad GTID set entry %q", entry)
		}
		source := uuid
		intervals := 0 // of the current source: a tag needs some after it
		for _, part := range parts[1:] {
			part = strings.TrimSpace(part)
			if part == "" || part[0] < '0' || part[0] > '9' {
				// A tag: the intervals after it belong to uuid:tag.
				if part == "" || (source != uuid && intervals == 0) {
					return Position{}, fmt.Errorf("bad GTID set entry %q", entry)
				}
				source, intervals = uuid+":"+strings.ToLower(part), 0
				continue
			}
			intervals++
			first, last, found := strings.Cut(part, "-")
			a, err1 := strconv.ParseUint(first, 10, 64)
			b := a
			var err2 error
			if found {
				b, err2 = strconv.ParseUint(last, 10, 64)
			}
			if err1 != nil || err2 != nil || a == 0 || b < a {
				return Position{}, fmt.Errorf("bad GTID interval %q in %q", part, entry)
			}
			p.add(source, interval{a, b})
		}
		if intervals == 0 {
			return Position{}, fmt.Errorf("bad GTID set entry %q: no transaction numbers", entry)
		}
	}
	return p, nil
}

func (p *Position) setDomain(g GTID) {
	if p.domains == nil {
		p.domains = map[uint32]GTID{}
	}
	p.domains[g.Domain] = g
}

// add merges an interval into a MySQL set, keeping it normalised.
func (p *Position) add(source string, iv interval) {
	if p.sets == nil {
		p.sets = map[string][]interval{}
	}
	ivs := append(p.sets[source], iv)
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].first < ivs[j].first })
	out := ivs[:0]
	for _, x := range ivs {
		if n := len(out); n > 0 && x.first <= out[n-1].last+1 {
			if x.last > out[n-1].last {
				out[n-1].last = x.last
			}
			continue
		}
		out = append(out, x)
	}
	p.sets[source] = out
}

// IsMySQL reports whether p is a MySQL GTID set (false when empty).
func (p Position) IsMySQL() bool { return len(p.sets) > 0 }

// Empty reports whether p holds nothing.
func (p Position) Empty() bool { return len(p.domains) == 0 && len(p.sets) == 0 }

// Contains reports whether the position includes g. MariaDB: same domain
// with a sequence number at least as high (gtid_strict_mode keeps them
// growing). MySQL: g's number lies in one of its source's intervals.
func (p Position) Contains(g GTID) bool {
	if g.Source != "" {
		for _, iv := range p.sets[g.Source] {
			if g.Seq >= iv.first && g.Seq <= iv.last {
				return true
			}
		}
		return false
	}
	have, ok := p.domains[g.Domain]
	return ok && have.Seq >= g.Seq
}

// Covers reports whether p includes everything q does (MySQL:
// GTID_SUBSET(q, p)).
func (p Position) Covers(q Position) bool {
	for _, g := range q.domains {
		if !p.Contains(g) {
			return false
		}
	}
	for src, ivs := range q.sets {
		for _, iv := range ivs {
			if !coveredBy(iv, p.sets[src]) {
				return false
			}
		}
	}
	return true
}

func coveredBy(iv interval, ivs []interval) bool {
	for _, x := range ivs {
		if iv.first >= x.first && iv.last <= x.last {
			return true
		}
	}
	return false
}

// Union is what p and q hold together: per domain the furthest GTID
// (MariaDB), the set union (MySQL).
func (p Position) Union(q Position) Position {
	var out Position
	for _, x := range []Position{p, q} {
		for d, g := range x.domains {
			if have, ok := out.domains[d]; !ok || g.Seq > have.Seq {
				out.setDomain(g)
			}
		}
		for src, ivs := range x.sets {
			for _, iv := range ivs {
				out.add(src, iv)
			}
		}
	}
	return out
}

// Total orders positions for ranking: MariaDB, the sum of sequence numbers
// over domains; MySQL, the number of transactions in the set.
func (p Position) Total() uint64 {
	var n uint64
	for _, g := range p.domains {
		n += g.Seq
	}
	for _, ivs := range p.sets {
		for _, iv := range ivs {
			n += iv.last - iv.first + 1
		}
	}
	return n
}

// Errant returns what p holds that master does not, formatted for an
// operator; empty means a server at p can follow master. MariaDB: per
// domain, GTIDs beyond the master's or on another server at the same
// number. MySQL: GTID_SUBTRACT(p, master).
func (p Position) Errant(master Position) []string {
	var out []string
	for d, g := range p.domains {
		m, ok := master.domains[d]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s (domain %d unknown to the master)", g, d))
		case g.Seq > m.Seq:
			out = append(out, fmt.Sprintf("%d-%d-%d..%d (master stops at %s)", d, g.Server, m.Seq+1, g.Seq, m))
		case g.Seq == m.Seq && g.Server != m.Server:
			out = append(out, fmt.Sprintf("%s conflicts with the master's %s", g, m))
		}
	}
	if extra := p.subtract(master); !extra.Empty() {
		out = append(out, extra.String()+" (not on the master)")
	}
	sort.Strings(out)
	return out
}

// subtract is GTID_SUBTRACT(p, q) for MySQL sets.
func (p Position) subtract(q Position) Position {
	var out Position
	for src, ivs := range p.sets {
		for _, iv := range ivs {
			rest := []interval{iv}
			for _, cut := range q.sets[src] {
				var next []interval
				for _, r := range rest {
					if cut.last < r.first || cut.first > r.last {
						next = append(next, r)
						continue
					}
					if cut.first > r.first {
						next = append(next, interval{r.first, cut.first - 1})
					}
					if cut.last < r.last {
						next = append(next, interval{cut.last + 1, r.last})
					}
				}
				rest = next
			}
			for _, r := range rest {
				out.add(src, r)
			}
		}
	}
	return out
}

// String formats the position as the server does: MariaDB domains in
// ascending order; MySQL sources in ascending order with their intervals.
func (p Position) String() string {
	var parts []string
	domains := make([]uint32, 0, len(p.domains))
	for d := range p.domains {
		domains = append(domains, d)
	}
	sort.Slice(domains, func(i, j int) bool { return domains[i] < domains[j] })
	for _, d := range domains {
		parts = append(parts, p.domains[d].String())
	}
	sources := make([]string, 0, len(p.sets))
	for src := range p.sets {
		sources = append(sources, src)
	}
	sort.Strings(sources)
	for _, src := range sources {
		var b strings.Builder
		b.WriteString(src)
		for _, iv := range p.sets[src] {
			if iv.first == iv.last {
				fmt.Fprintf(&b, ":%d", iv.first)
			} else {
				fmt.Fprintf(&b, ":%d-%d", iv.first, iv.last)
			}
		}
		parts = append(parts, b.String())
	}
	return strings.Join(parts, ",")
}
