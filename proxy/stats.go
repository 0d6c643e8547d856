package proxy

import (
	"sync"
	"sync/atomic"
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

// digestTable is shared by every session: entries are found without a
// lock (sync.Map: written once per digest, read on every statement) and
// counted with atomics, so no statement waits for another.
type digestTable struct {
	m     sync.Map // digest → *digestEntry
	count atomic.Int64
	gen   atomic.Uint64 // bumped by reset: remembered entries are stale
}

// digestSlot is a statement's entry remembered by its session (a
// prepared statement's: its executes skip the table's lookup) until the
// table is reset.
type digestSlot struct {
	e   *digestEntry
	gen uint64
}

type digestEntry struct {
	digest              string
	count, rows         atomic.Uint64
	total, max          atomic.Int64 // nanoseconds
	toMaster, toReplica atomic.Uint64
}

func newDigestTable() *digestTable { return &digestTable{} }

func (t *digestTable) record(digest string, d time.Duration, rows uint64, toMaster bool) {
	t.entry(digest).add(d, rows, toMaster)
}

// recordAt is record through slot, which it fills or refreshes: a slot
// holding another digest's entry (or a stale one) is refilled.
func (t *digestTable) recordAt(slot *digestSlot, digest string, d time.Duration, rows uint64, toMaster bool) {
	if digest == "" {
		digest = otherDigest
	}
	// The generation is read before the lookup: a reset in between leaves
	// the slot stale, so the next statement looks the digest up again.
	// Comparing the digests costs little: a cached class's digest is the
	// very string its entry was made with.
	if g := t.gen.Load(); slot.e == nil || slot.gen != g || slot.e.digest != digest {
		slot.e, slot.gen = t.entry(digest), g
	}
	slot.e.add(d, rows, toMaster)
}

func (e *digestEntry) add(d time.Duration, rows uint64, toMaster bool) {
	e.count.Add(1)
	e.total.Add(int64(d))
	for m := e.max.Load(); int64(d) > m && !e.max.CompareAndSwap(m, int64(d)); m = e.max.Load() {
	}
	e.rows.Add(rows)
	if toMaster {
		e.toMaster.Add(1)
	} else {
		e.toReplica.Add(1)
	}
}

// entry returns the digest's entry, made on first use; past maxDigests
// new shapes count under otherDigest.
func (t *digestTable) entry(digest string) *digestEntry {
	if digest == "" {
		digest = otherDigest
	}
	if e, ok := t.m.Load(digest); ok {
		return e.(*digestEntry)
	}
	if t.count.Load() >= maxDigests {
		digest = otherDigest
		if e, ok := t.m.Load(digest); ok {
			return e.(*digestEntry)
		}
	}
	e, loaded := t.m.LoadOrStore(digest, &digestEntry{digest: digest})
	if !loaded {
		t.count.Add(1)
	}
	return e.(*digestEntry)
}

func (t *digestTable) snapshot() []DigestStat {
	var out []DigestStat
	t.m.Range(func(_, v any) bool {
		e := v.(*digestEntry)
		out = append(out, DigestStat{Digest: e.digest, Count: e.count.Load(), Total: time.Duration(e.total.Load()),
			Max: time.Duration(e.max.Load()), Rows: e.rows.Load(), ToMaster: e.toMaster.Load(), ToReplica: e.toReplica.Load()})
		return true
	})
	return out
}

func (t *digestTable) reset() {
	t.gen.Add(1)
	t.m.Clear()
	t.count.Store(0)
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
