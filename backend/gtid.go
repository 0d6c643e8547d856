package backend

import (
	"fmt"
	"strconv"
	"strings"
)

// GTID is one MariaDB global transaction id: domain-server-sequence.
type GTID struct {
	Domain, Server uint32
	Seq            uint64
}

func (g GTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq) }

// ParseGTID parses "0-1-42".
func ParseGTID(s string) (GTID, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
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

// Position is a MariaDB GTID position: the last GTID per replication
// domain, as in @@gtid_slave_pos ("0-1-42,1-2-7").
type Position map[uint32]GTID

// ParsePosition parses a comma-separated position; "" is empty.
func ParsePosition(s string) (Position, error) {
	p := Position{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		g, err := ParseGTID(part)
		if err != nil {
			return nil, err
		}
		p[g.Domain] = g
	}
	return p, nil
}

// Contains reports whether the position includes g: same domain with a
// sequence number at least as high (sequence numbers grow per domain;
// gtid_strict_mode keeps them so).
func (p Position) Contains(g GTID) bool {
	have, ok := p[g.Domain]
	return ok && have.Seq >= g.Seq
}

// Covers reports whether p includes every domain of q at least as far.
func (p Position) Covers(q Position) bool {
	for _, g := range q {
		if !p.Contains(g) {
			return false
		}
	}
	return true
}

// String formats the position with domains in ascending order.
func (p Position) String() string {
	keys := make([]int, 0, len(p))
	for d := range p {
		keys = append(keys, int(d))
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	parts := make([]string, 0, len(keys))
	for _, d := range keys {
		parts = append(parts, p[uint32(d)].String())
	}
	return strings.Join(parts, ",")
}
