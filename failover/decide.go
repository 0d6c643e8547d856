package failover

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/switchyard/switchyard/backend"
)

// Replica is what the engine knows about one replica when it decides.
type Replica struct {
	Name string
	// Order is the position in the config (ties go to the earlier one).
	Order     int
	Candidate bool
	NoMaster  bool
	Reachable bool
	// IOConnected: its IO thread is connected (Slave_IO_Running = Yes);
	// SourceID is the server id of the server it receives from (0 until
	// known): Confirm only counts a replica connected to the master in
	// question.
	IOConnected bool
	SourceID    uint32
	// Received is what the IO thread fetched (Gtid_IO_Pos); Applied is
	// @@gtid_slave_pos; Current is @@gtid_current_pos.
	Received backend.Position
	Applied  backend.Position
	Current  backend.Position
}

// Verdict is the outcome of confirming a suspected master failure.
type Verdict struct {
	Dead bool
	// Reason is a sentence for the log and SHOW FAILOVERS.
	Reason string
}

// Confirm decides whether the master (server id masterID, 0 when never
// seen), which the proxy cannot reach, is really gone: if any reachable
// replica's IO thread is still connected to it, the master is alive and
// only our path to it is broken — no failover. Identities are compared,
// not addresses: the proxy may reach the master by another path than the
// replicas do. A replica known to receive from another server says
// nothing about this one. With no reachable replica there is nobody to
// promote either.
func Confirm(replicas []Replica, masterID uint32) Verdict {
	reachable := 0
	for _, r := range replicas {
		if !r.Reachable {
			continue
		}
		reachable++
		if r.IOConnected && (masterID == 0 || r.SourceID == 0 || r.SourceID == masterID) {
			return Verdict{Dead: false, Reason: fmt.Sprintf("replica %s still receives from the master: only the proxy's path to it is broken", r.Name)}
		}
	}
	if reachable == 0 {
		return Verdict{Dead: false, Reason: "no replica is reachable: nothing can confirm the failure or be promoted"}
	}
	return Verdict{Dead: true, Reason: fmt.Sprintf("master unreachable and none of %d reachable replica(s) receives from it", reachable)}
}

// known is what a replica holds: received or applied, whichever is ahead
// (the relay log can hold more than is applied).
func known(r Replica) backend.Position {
	return r.Current.Union(r.Applied).Union(r.Received)
}

// errNoCandidate: no replica can be promoted.
var errNoCandidate = errors.New("no eligible replica to promote")

// largeBacklog is an apply backlog (transactions received, not applied)
// that makes a replica a worse candidate than an equally advanced one
// without it, whatever its candidate flag: the apply step would wait for
// it (as MHA's check_repl_delay passes over a candidate_master with more
// than 100 MB of relay log). Seconds of backlog are thousands of
// transactions under load; a few hundred apply in well under a second.
const largeBacklog = 1000

// backlog is what a replica received and has not applied.
func backlog(r Replica) uint64 {
	k, c := known(r).Total(), r.Current.Union(r.Applied).Total()
	if c >= k {
		return 0
	}
	return k - c
}

// PickCandidate chooses the replica to promote: among reachable replicas
// not marked no_master, the most advanced one (it holds every transaction
// the dead master acknowledged under semi-sync). Ties go to a replica
// without a large apply backlog, then to one flagged candidate, then to
// the one that applied more (the shorter apply step), then to config
// order. A preferred candidate that is
// behind is not waited for: the most advanced replica wins, so nothing
// that was acknowledged has to be copied between replicas first.
func PickCandidate(replicas []Replica, want string) (Replica, string, error) {
	var pool []Replica
	var skipped []string
	for _, r := range replicas {
		switch {
		case !r.Reachable:
			skipped = append(skipped, r.Name+" (unreachable)")
		case r.NoMaster:
			skipped = append(skipped, r.Name+" (no_master)")
		case want != "" && r.Name != want:
		default:
			pool = append(pool, r)
		}
	}
	if len(pool) == 0 {
		if want != "" {
			return Replica{}, "", fmt.Errorf("%s cannot be promoted: not a reachable replica eligible for master: %w", want, errNoCandidate)
		}
		return Replica{}, "", fmt.Errorf("%w (%s)", errNoCandidate, strings.Join(skipped, ", "))
	}
	sort.SliceStable(pool, func(i, j int) bool {
		a, b := known(pool[i]), known(pool[j])
		if ta, tb := a.Total(), b.Total(); ta != tb {
			return ta > tb
		}
		if la, lb := backlog(pool[i]) > largeBacklog, backlog(pool[j]) > largeBacklog; la != lb {
			return lb
		}
		if pool[i].Candidate != pool[j].Candidate {
			return pool[i].Candidate
		}
		// Less left to apply: the new master takes writes sooner.
		if ca, cb := pool[i].Current.Total(), pool[j].Current.Total(); ca != cb {
			return ca > cb
		}
		return pool[i].Order < pool[j].Order
	})
	best := pool[0]
	reason := fmt.Sprintf("%s is the most advanced eligible replica at %s", best.Name, known(best))
	if want != "" {
		reason = fmt.Sprintf("%s requested by the operator, at %s", best.Name, known(best))
	}
	// Anyone ahead of the pick (only possible with want set, or with
	// no_master servers) is reported: their extra transactions are lost
	// for them to keep replicating.
	for _, r := range replicas {
		if r.Reachable && r.Name != best.Name && !known(best).Covers(known(r)) {
			reason += fmt.Sprintf("; %s is ahead (%s) and will need attention", r.Name, known(r))
		}
	}
	return best, reason, nil
}

// Errant returns the GTIDs a server holds that the master does not,
// formatted for the operator; empty means the server can follow the
// master.
func Errant(server, master backend.Position) []string { return server.Errant(master) }

// positions formats what each reachable replica holds, for the record.
func positions(rs []Replica) string {
	var parts []string
	for _, r := range rs {
		if r.Reachable {
			parts = append(parts, fmt.Sprintf("%s=%s", r.Name, known(r)))
		}
	}
	return strings.Join(parts, " ")
}
