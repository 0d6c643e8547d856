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

// QueryStats returns the digest table.
func (s *Server) QueryStats() []DigestStat { return s.digests.snapshot() }

// ResetQueryStats clears the digest table.
func (s *Server) ResetQueryStats() { s.digests.reset() }

// SessionInfo describes one live client session.
type SessionInfo struct {
	ID            uint32
	User, Client  string
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
}

// Sessions lists the live sessions. Fields owned by a session's goroutine
// are read through atomics, so the list is a consistent-enough snapshot.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		list = append(list, sess)
	}
	s.mu.Unlock()
	out := make([]SessionInfo, 0, len(list))
	for _, sess := range list {
		info := SessionInfo{ID: sess.id, User: sess.user.Name, Client: sess.raw.RemoteAddr().String(),
			Age: time.Since(sess.started), InTransaction: sess.inTx.Load()}
		if p := sess.lastStmt.Load(); p != nil {
			info.LastStatement = *p
		}
		if p := sess.lastBackend.Load(); p != nil {
			info.Backend = *p
		}
		if p := sess.dbName.Load(); p != nil {
			info.DB = *p
		}
		info.BackendConns = int(sess.heldConns.Load())
		if p := sess.heldBecause.Load(); p != nil {
			info.HeldBecause = *p
		}
		out = append(out, info)
	}
	return out
}
