package proxy

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// The log copies statements into one arena that grows while a transaction
// runs: every entry must still read as its statement afterwards, and the
// memory is kept for the next transaction only when it is small.
func TestTransactionLogArena(t *testing.T) {
	cases := []struct {
		name     string
		stmts    int
		stmtSize int
		wantKept bool
	}{
		{"a small transaction keeps its memory", 20, 100, true},
		{"a large one gives it back", 40, 1000, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tx := transaction{kept: true}
			var want [][]byte
			for i := 0; i < tc.stmts; i++ {
				payload := append([]byte{mysql.COM_QUERY}, fmt.Sprintf("INSERT INTO t VALUES (%d, '%s')", i, bytes.Repeat([]byte{'x'}, tc.stmtSize))...)
				want = append(want, bytes.Clone(payload))
				tx.record(&command{payload: payload}, &reply{sum: &replySum{}}, 1<<20)
				clear(payload) // the client's buffer is reused: the log has its own copy
			}
			if tx.unreplayable != "" || len(tx.log) != tc.stmts {
				t.Fatalf("logged %d of %d statements (%q)", len(tx.log), tc.stmts, tx.unreplayable)
			}
			for i, e := range tx.log {
				if !bytes.Equal(e.cmd, want[i]) {
					t.Fatalf("entry %d reads %.40q, want %.40q", i, e.cmd, want[i])
				}
			}
			tx.end()
			if kept := cap(tx.arena) > 0; kept != tc.wantKept {
				t.Errorf("arena kept after the transaction: %v, want %v (cap %d)", kept, tc.wantKept, cap(tx.arena))
			}
			if len(tx.log) != 0 || len(tx.arena) != 0 || tx.size != 0 {
				t.Errorf("after end: %d entries, %d arena bytes, size %d; want none", len(tx.log), len(tx.arena), tx.size)
			}
			if tc.wantKept && tx.log[:1][0].cmd != nil {
				t.Error("a finished transaction's entry still points at its statement")
			}
		})
	}
}

// A replayed statement's reply is compared with the client's by checksum:
// the same packets give the same sum, and any difference a client could
// see (a byte, the order, where one packet ends, a packet more) another.
func TestReplySumTellsRepliesApart(t *testing.T) {
	sum := func(packets ...string) uint64 {
		r := reply{sum: &replySum{}}
		for _, p := range packets {
			r.check([]byte(p))
		}
		return r.sum.Sum64()
	}
	base := sum("\x01", "def column", "row 1", "row 2", "\xfe")
	tests := []struct {
		name string
		got  uint64
		same bool
	}{
		{"the same packets", sum("\x01", "def column", "row 1", "row 2", "\xfe"), true},
		{"one byte changed", sum("\x01", "def column", "row 1", "row 3", "\xfe"), false},
		{"rows in another order", sum("\x01", "def column", "row 2", "row 1", "\xfe"), false},
		{"a packet boundary moved", sum("\x01", "def column", "row 1r", "ow 2", "\xfe"), false},
		{"an empty packet more", sum("\x01", "def column", "row 1", "row 2", "", "\xfe"), false},
		{"a row fewer", sum("\x01", "def column", "row 1", "\xfe"), false},
	}
	for _, tt := range tests {
		if (tt.got == base) != tt.same {
			t.Errorf("%s: sum %x, first reply %x, want same=%v", tt.name, tt.got, base, tt.same)
		}
	}
	var a, b reply
	a.sum, b.sum = &replySum{}, &replySum{}
	a.checkValues(1, 0)
	b.checkValues(0, 1)
	if a.sum.Sum64() == b.sum.Sum64() {
		t.Error("OK packets with affected rows and insert id swapped sum the same")
	}
}
