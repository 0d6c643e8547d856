package proxy

import (
	"encoding/hex"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/rules"
)

// The result cache, as sessions use it: a read a rule marks with
// cache_ttl is answered from the cache when it can be, else runs and
// fills it; every write invalidates what it makes stale (see package
// cache for why a result is never older than the last write through
// Switchyard).

// maxCachedReply bounds one cached reply (bigger ones are relayed, not kept).
const maxCachedReply = 1 << 20

// cacheFill is a read that will fill the cache if it succeeds.
type cacheFill struct {
	key    string
	ticket cache.Ticket
	done   bool
}

// fromCache answers c from the cache when a rule asks for caching and
// the statement may be cached; on a miss it prepares c to fill it.
// served says the client got its answer (err: writing it failed).
func (s *session) fromCache(c *command, v *clusterView) (served bool, err error) {
	if why := s.uncacheable(c, v); why != "" {
		return false, nil
	}
	key := s.cacheKey(c, v)
	start := time.Now()
	res, ok := s.srv.cache.Get(key, start)
	c.act.CacheResult(ok)
	if !ok {
		c.fill = &cacheFill{key: key, ticket: s.srv.cache.Begin(v.b.Name, c.class.Tables)}
		return false, nil
	}
	if _, err := s.client.out.Write(res.Data); err != nil {
		return true, errClientWrite
	}
	took := time.Since(start)
	s.srv.digests.record(c.class.Digest, took, res.Rows, false)
	if s.srv.observe != nil {
		s.srv.observe(v.b.Name, c.class.Kind.String(), false, true, took)
	}
	s.logQuery(c, v.b.Name, "cache", &reply{rows: res.Rows, ok: true}, took)
	return true, nil
}

// uncacheable says why c's result cannot come from (or go to) the cache:
// it is not a plain read, or its answer depends on the session.
// Read-your-writes needs no exception: a cached result already has every
// write through Switchyard to its tables (package cache), the session's
// own included.
func (s *session) uncacheable(c *command, v *clusterView) string {
	cl := c.class
	switch {
	case !c.runs() || c.reply != replyResult || len(c.payload) >= mysql.MaxPayloadLen:
		return "not a statement"
	case cl.Kind != router.KindRead || cl.Pin || cl.Hint == router.HintMaster:
		return "not a plain read"
	case s.tx.open() || s.state.autocommitOff():
		return "in a transaction"
	case s.state.readsOnMaster() != "":
		return s.state.readsOnMaster()
	case v.route.HasTempTables():
		return "the session has temporary tables"
	case c.stmt != nil && c.payload[0] == mysql.COM_STMT_EXECUTE && len(c.payload) > 5 && c.payload[5]&0x07 != 0:
		return "a cursor"
	}
	return ""
}

// cacheKey identifies a result: the cluster, the backend account (its
// privileges), the session state that shapes results (database,
// character set, sql_mode, time zone … as replayed), the capabilities
// that shape the packets, and the statement with its parameters.
func (s *session) cacheKey(c *command, v *clusterView) string {
	var b strings.Builder
	b.Grow(len(c.payload) + 128)
	b.WriteString(v.b.Name)
	b.WriteByte(0)
	b.WriteString(s.login.user.BackendUser)
	b.WriteByte(0)
	b.WriteString(s.state.tagFor(false))
	b.WriteByte(0)
	b.WriteString(hex.EncodeToString([]byte{byte(s.login.caps), byte(s.login.caps >> 8), byte(s.login.caps >> 16), byte(s.login.caps >> 24)}))
	b.WriteByte(0)
	if c.stmt != nil {
		b.Write(c.stmt.query)
		b.WriteByte(0)
		b.Write(c.stmt.executeKey(c.payload))
	} else {
		b.Write(c.payload[1:])
	}
	return b.String()
}

// finishFill stores what a filling read relayed, when it may: a complete
// OK result, read on the master or on a replica that has every write to
// its tables the cache knows of.
func (s *session) finishFill(c *command, p placement, r *reply, data []byte, captured bool) {
	f := c.fill
	if f == nil || f.done {
		return
	}
	f.done = true
	ok := captured && r.ok && r.serverErr == nil && !r.cursor && p.target != "" &&
		s.replicaHasWrites(p, s.srv.cache.LastWrites(f.ticket))
	if !ok {
		s.srv.cache.Abandon(f.ticket)
		return
	}
	s.srv.cache.Put(f.ticket, f.key, cache.Result{Data: data, Rows: r.rows}, c.act.CacheTTL, time.Now())
}

// abandonFill ends a fill that did not finish (the read failed).
func (s *session) abandonFill(c *command) {
	if f := c.fill; f != nil && !f.done {
		f.done = true
		s.srv.cache.Abandon(f.ticket)
	}
}

// replicaHasWrites: the server that answered has applied every write in
// writes (the master always has). A write whose GTID is unknown counts
// as missing on replicas for as long as replication may lag.
func (s *session) replicaHasWrites(p placement, writes []cache.Write) bool {
	topo := p.view.b.topology()
	if p.target == topo.Master || len(writes) == 0 {
		return true
	}
	st := topo.Server(p.target)
	if st == nil {
		return false
	}
	lag := s.cmd.set.cluster(p.view.b.Name).Policy.MaxLag
	for _, w := range writes {
		if w.GTID == "" {
			if time.Since(w.At) < lag {
				return false
			}
			continue
		}
		g, err := backend.ParseGTID(w.GTID)
		if err != nil || !st.Applied.Contains(g) {
			return false
		}
	}
	return true
}

// writeTables are the tables a statement may change, for invalidation;
// all says it may change any (a DDL or CALL naming none, SQL the parser
// could not read): the whole cluster is invalidated.
func writeTables(cl router.Class) (tables []string, all bool, writes bool) {
	switch {
	case cl.Kind != router.KindWrite:
		return nil, false, false
	case len(cl.Tables) > 0 && (cl.DML || cl.DDL):
		return cl.Tables, false, true
	}
	return nil, true, true
}

// invalidateFor drops what a write is about to make stale (before it is
// sent) or made stale (after its reply, with its GTID); inside a
// transaction the tables are remembered for its end. Nothing happens
// when no rule caches and nothing is cached.
func (s *session) invalidateFor(c *command, v *clusterView, gtid string, after bool) {
	ca := s.srv.cache
	if ca == nil || !c.runs() {
		return
	}
	tables, all, writes := writeTables(c.class)
	if !writes || (ca.Idle() && !s.cmd.set.Rules.Caches()) {
		return
	}
	if all {
		tables = nil
	}
	ca.Invalidate(v.b.Name, tables, gtid, time.Now())
	if after && s.tx.open() {
		s.txWrites.add(v.b.Name, tables, all)
	}
}

// invalidateAtTxEnd invalidates, with the commit's GTID, the tables the
// ended transaction wrote: a reader that ran between its writes and its
// commit saw the old rows.
func (s *session) invalidateAtTxEnd(gtid string) {
	w := &s.txWrites
	if w.cluster == "" || s.tx.open() {
		return
	}
	tables := w.tables
	if w.all {
		tables = nil
	}
	s.srv.cache.Invalidate(w.cluster, tables, gtid, time.Now())
	*w = txWrites{tables: w.tables[:0]}
}

// txWrites are the tables written by the open transaction.
type txWrites struct {
	cluster string
	tables  []string
	all     bool
}

func (w *txWrites) add(cluster string, tables []string, all bool) {
	w.cluster = cluster
	w.all = w.all || all
	for _, t := range tables {
		if !containsString(w.tables, t) {
			w.tables = append(w.tables, t)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cacheVerdict says, for EXPLAIN ROUTE, whether a rule's cache would
// answer the statement (for a session without state of its own).
func (s *Server) cacheVerdict(cl router.Class, act rules.Action) string {
	switch {
	case s.cache == nil:
		return "no cache"
	case cl.Kind != router.KindRead || cl.Pin:
		return "not cached: not a plain read"
	}
	return "cached for " + act.CacheTTL.String() + " by rule " + act.Rules + " (outside transactions and read-your-writes waits)"
}
