package proxy

import (
	"sync"
	"time"
)

// maxDigests bounds the digest table; further shapes are counted under
// otherDigest so memory stays bounded whatever the workload.
const (
	maxDigests  = 5000
	otherDigest = "(other statements)"
)

// DigestStat is one row of the query digest table (like ProxySQL's
// stats_mysql_query_digest).
type DigestStat struct {
	Digest              string
	Count               uint64
	Total, Max          time.Duration
	Rows                uint64
	ToMaster, ToReplica uint64
}

type digestTable struct {
	mu sync.Mutex
	m  map[string]*DigestStat
}

func newDigestTable() *digestTable { return &digestTable{m: map[string]*DigestStat{}} }

func (t *digestTable) record(digest string, d time.Duration, rows uint64, toMaster bool) {
	if digest == "" {
		digest = otherDigest
	}
	t.mu.Lock()
	e := t.m[digest]
	if e == nil {
		if len(t.m) >= maxDigests {
			digest = otherDigest
			e = t.m[digest]
		}
		if e == nil {
			e = &DigestStat{Digest: digest}
			t.m[digest] = e
		}
	}
	e.Count++
	e.Total += d
	if d > e.Max {
		e.Max = d
	}
	e.Rows += rows
	if toMaster {
		e.ToMaster++
	} else {
		e.ToReplica++
	}
	t.mu.Unlock()
}

func (t *digestTable) snapshot() []DigestStat {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]DigestStat, 0, len(t.m))
	for _, e := range t.m {
		out = append(out, *e)
	}
	return out
}

func (t *digestTable) reset() {
	t.mu.Lock()
	t.m = map[string]*DigestStat{}
	t.mu.Unlock()
}

// TxOutcome counts what became of the transactions that lost their
// connection in one topology epoch (after a failover or switchover).
type TxOutcome struct {
	Replayed, Aborted int
}

// epochKey is one cluster's topology epoch.
type epochKey struct {
	cluster string
	epoch   uint64
}

// maxEpochsKept bounds the per-epoch outcome table.
const maxEpochsKept = 100

// noteTxOutcome records a transaction replayed (or aborted) in a
// cluster's epoch.
func (s *Server) noteTxOutcome(cluster string, epoch uint64, replayed bool) {
	s.outcomesMu.Lock()
	defer s.outcomesMu.Unlock()
	if s.outcomes == nil {
		s.outcomes = map[epochKey]*TxOutcome{}
	}
	k := epochKey{cluster, epoch}
	o := s.outcomes[k]
	if o == nil {
		if len(s.outcomes) >= maxEpochsKept {
			oldest := k
			for e := range s.outcomes {
				if oldest.epoch == 0 || e.epoch < oldest.epoch {
					oldest = e
				}
			}
			delete(s.outcomes, oldest)
		}
		o = &TxOutcome{}
		s.outcomes[k] = o
	}
	if replayed {
		o.Replayed++
	} else {
		o.Aborted++
	}
}

// TxOutcomes returns what became of transactions that lost their
// connection in a cluster's epoch.
func (s *Server) TxOutcomes(cluster string, epoch uint64) TxOutcome {
	s.outcomesMu.Lock()
	defer s.outcomesMu.Unlock()
	if o := s.outcomes[epochKey{cluster, epoch}]; o != nil {
		return *o
	}
	return TxOutcome{}
}

// QueryStats returns the digest table.
func (s *Server) QueryStats() []DigestStat { return s.digests.snapshot() }

// ResetQueryStats clears the digest table.
func (s *Server) ResetQueryStats() { s.digests.reset() }

// SessionInfo describes one live client session.
type SessionInfo struct {
	ID            uint32
	User, Client  string
	Cluster       string // the cluster the session sits on
	DB            string
	InTransaction bool
	Backend       string
	Age           time.Duration
	LastStatement string
	// BackendConns is how many backend connections the session holds now;
	// HeldBecause says why it keeps them between statements ("" when it
	// gives them back: multiplexing).
	BackendConns int
	HeldBecause  string
	// BackendThreads are the server thread ids of those connections
	// ("master:31 replica1:57"), as PROCESSLIST shows them.
	BackendThreads string
}

// Sessions lists the live sessions. Fields owned by a session's goroutine
// are read through atomics, so the list is a consistent-enough snapshot.
func (s *Server) Sessions() []SessionInfo {
	var list []*session
	s.eachSession(func(sess *session) { list = append(list, sess) })
	out := make([]SessionInfo, 0, len(list))
	for _, sess := range list {
		in := &sess.info
		info := SessionInfo{ID: sess.id, User: in.userName(), Cluster: loadString(&in.cluster), Client: sess.client.raw.RemoteAddr().String(),
			Age: time.Since(in.started), InTransaction: in.inTx.Load(), BackendConns: int(in.heldConns.Load()),
			LastStatement: loadString(&in.lastStmt), Backend: loadString(&in.lastBackend), DB: loadString(&in.db),
			HeldBecause: loadString(&in.heldBecause), BackendThreads: loadString(&in.threads)}
		out = append(out, info)
	}
	return out
}
