package backend

import (
	"strings"
	"testing"
)

const (
	u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	u2 = "4e11fa47-71ca-11e1-9e33-c80aa9429562"
)

func mustPos(t *testing.T, s string) Position {
	t.Helper()
	p, err := ParsePosition(s)
	if err != nil {
		t.Fatalf("ParsePosition(%q): %v", s, err)
	}
	return p
}

// MySQL GTID sets: parsing normalises as the server prints them.
func TestParseGTIDSet(t *testing.T) {
	tests := []struct{ in, out string }{
		{"", ""},
		{u1 + ":1-5", u1 + ":1-5"},
		{u1 + ":1-3:4-5", u1 + ":1-5"},                         // adjacent intervals merge
		{u1 + ":7:1-5", u1 + ":1-5:7"},                         // sorted
		{u1 + ":1-5:3-9", u1 + ":1-9"},                         // overlapping
		{u2 + ":1-3,\n" + u1 + ":1", u1 + ":1," + u2 + ":1-3"}, // newlines as in SHOW REPLICA STATUS
		{strings.ToUpper(u1) + ":2", u1 + ":2"},                // case-insensitive uuid
		{u1 + ":1-5:tag1:1-3", u1 + ":1-5," + u1 + ":tag1:1-3"},
		{"0-1-42,1-2-7", "0-1-42,1-2-7"}, // MariaDB
	}
	for _, tt := range tests {
		if got := mustPos(t, tt.in).String(); got != tt.out {
			t.Errorf("%q: %q, want %q", tt.in, got, tt.out)
		}
	}
	for _, bad := range []string{u1 + ":0", u1 + ":5-3", "nouuid:1-3", u1 + ":x", u1 + ":", "0-1", "a-b-c"} {
		if _, err := ParsePosition(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Covers is GTID_SUBSET(q, p); Union, Total and Errant (GTID_SUBTRACT).
func TestGTIDSetArithmetic(t *testing.T) {
	tests := []struct {
		p, q      string
		covers    bool
		union     string
		errantOfQ string // what q has that p lacks
		totalP    uint64
	}{
		{u1 + ":1-10", u1 + ":1-5", true, u1 + ":1-10", "", 10},
		{u1 + ":1-5", u1 + ":1-10", false, u1 + ":1-10", u1 + ":6-10", 5},
		{u1 + ":1-5:8-10", u1 + ":6-7", false, u1 + ":1-10", u1 + ":6-7", 8},
		{u1 + ":1-10", u1 + ":1-10," + u2 + ":1", false, u1 + ":1-10," + u2 + ":1", u2 + ":1", 10},
		{u1 + ":1-10," + u2 + ":1-3", u2 + ":2", true, u1 + ":1-10," + u2 + ":1-3", "", 13},
		{"", u1 + ":1", false, u1 + ":1", u1 + ":1", 0},
		{"0-1-10,1-2-5", "0-1-9", true, "0-1-10,1-2-5", "", 15},
		{"0-1-10", "0-1-12,1-1-1", false, "0-1-12,1-1-1", "0-1-11..12", 10},
	}
	for _, tt := range tests {
		p, q := mustPos(t, tt.p), mustPos(t, tt.q)
		if got := p.Covers(q); got != tt.covers {
			t.Errorf("%s covers %s: %v", tt.p, tt.q, got)
		}
		if got := p.Union(q).String(); got != tt.union {
			t.Errorf("%s ∪ %s = %s, want %s", tt.p, tt.q, got, tt.union)
		}
		if got := strings.Join(q.Errant(p), "; "); (tt.errantOfQ == "") != (got == "") || !strings.Contains(got, tt.errantOfQ) {
			t.Errorf("errant of %s against %s: %q, want %q", tt.q, tt.p, got, tt.errantOfQ)
		}
		if got := p.Total(); got != tt.totalP {
			t.Errorf("total of %s: %d, want %d", tt.p, got, tt.totalP)
		}
	}
}

// What OWN_GTID session tracking reports for a commit, and MariaDB's
// last_gtid, both parse to the one GTID a replica must have.
func TestParseGTIDBothFlavours(t *testing.T) {
	tests := []struct {
		in      string
		want    GTID
		inSet   string
		notInIt string
	}{
		{"0-1-42", GTID{Domain: 0, Server: 1, Seq: 42}, "0-1-42", "0-1-41"},
		{u1 + ":42", GTID{Source: u1, Seq: 42}, u1 + ":1-42", u1 + ":1-41"},
		{u1 + ":40-42", GTID{Source: u1, Seq: 42}, u1 + ":1-42", u1 + ":1-40"},
		{u1 + ":tag1:7", GTID{Source: u1 + ":tag1", Seq: 7}, u1 + ":tag1:1-7", u1 + ":1-7"},
	}
	for _, tt := range tests {
		g, err := ParseGTID(tt.in)
		if err != nil || g != tt.want {
			t.Errorf("ParseGTID(%q) = %+v, %v", tt.in, g, err)
			continue
		}
		if !mustPos(t, tt.inSet).Contains(g) || mustPos(t, tt.notInIt).Contains(g) {
			t.Errorf("%s: Contains wrong for %s / %s", tt.in, tt.inSet, tt.notInIt)
		}
	}
	if _, err := ParseGTID(u1 + ":1," + u2 + ":1"); err == nil {
		t.Error("a set of two sources is not one GTID")
	}
}
