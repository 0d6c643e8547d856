package proxy

import (
	"strings"
	"testing"
	"time"
)

// A remembered digest entry (a prepared statement's, a session's slot)
// counts where record would, follows the table across RESET QUERY STATS,
// and is not used for another digest.
func TestDigestSlotFollowsReset(t *testing.T) {
	tab := newDigestTable()
	var slot digestSlot
	count := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, d := range tab.snapshot() {
			out[d.Digest] = d.Count
		}
		return out
	}
	steps := []struct {
		name  string
		do    func()
		wants map[string]uint64
	}{
		{"through the slot and the table alike", func() {
			tab.recordAt(&slot, "SELECT ?", time.Millisecond, 1, true)
			tab.recordAt(&slot, "SELECT ?", time.Millisecond, 1, false)
			tab.record("SELECT ?", time.Millisecond, 1, true)
		}, map[string]uint64{"SELECT ?": 3}},
		{"after a reset the slot counts in the new table", func() {
			tab.reset()
			tab.recordAt(&slot, "SELECT ?", time.Millisecond, 1, true)
		}, map[string]uint64{"SELECT ?": 1}},
		{"no digest counts as other statements", func() {
			var other digestSlot
			tab.recordAt(&other, "", time.Millisecond, 0, true)
			tab.record("", time.Millisecond, 0, true)
		}, map[string]uint64{"SELECT ?": 1, otherDigest: 2}},
		{"a slot shared by two digests counts each under its own", func() {
			// A session's slots are direct-mapped: two shapes can take
			// turns in one.
			tab.recordAt(&slot, "UPDATE t SET a = ?", time.Millisecond, 1, true)
			tab.recordAt(&slot, "SELECT ?", time.Millisecond, 1, true)
			tab.recordAt(&slot, "UPDATE t SET a = ?", time.Millisecond, 1, true)
		}, map[string]uint64{"SELECT ?": 2, "UPDATE t SET a = ?": 2, otherDigest: 2}},
		{"a digest equal to the slot's, in other memory, counts there", func() {
			tab.recordAt(&slot, strings.Clone("UPDATE t SET a = ?"), time.Millisecond, 1, true)
		}, map[string]uint64{"SELECT ?": 2, "UPDATE t SET a = ?": 3, otherDigest: 2}},
	}
	for _, st := range steps {
		st.do()
		got := count()
		if len(got) != len(st.wants) {
			t.Fatalf("%s: table %v, want %v", st.name, got, st.wants)
		}
		for d, n := range st.wants {
			if got[d] != n {
				t.Fatalf("%s: table %v, want %v", st.name, got, st.wants)
			}
		}
	}
}
