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
// Switchyard). The session orchestrates (fromCache, and calls around
// each statement in runOn); cacheUse owns the rest.

// maxCachedReply bounds one cached reply (bigger ones are relayed, not kept).
const maxCachedReply = 1 << 20

// cacheUse is a session's use of the shared result cache: the tables
// its open transaction wrote (invalidated again when it ends).
type cacheUse struct {
	c        *cache.Cache // nil: no cache
	txWrites txWrites
}

// cacheFill is a read that will fill the cache if it succeeds.
type cacheFill struct {
	key    string
	ticket cache.Ticket
	done   bool
}

// cacheFacts is what of the session decides whether a read's result
// depends on the session.
type cacheFacts struct {
	inTx, tempTables bool
	readsOnMaster    string
}

// fromCache answers c from the cache when a rule asks for caching and
// the statement may be cached; on a miss it prepares c to fill it.
// served says the client got its answer (err: writing it failed).
func (s *session) fromCache(c *command, v *clusterView) (served bool, err error) {
	facts := cacheFacts{inTx: s.tx.open() || s.state.autocommitOff(), tempTables: v.route.HasTempTables(),
		readsOnMaster: s.state.readsOnMaster()}
	if why := uncacheable(c, facts); why != "" {
		return false, nil
	}
	key := cacheKey(c, v.b.Name, s.login.user.BackendUser, s.state.tagFor(false), s.login.caps)
	start := time.Now()
	res, ok := s.rc.c.Get(key, start)
	c.act.CacheResult(ok)
	if !ok {
		c.fill = &cacheFill{key: key, ticket: s.rc.c.Begin(v.b.Name, c.class.Tables)}
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
func uncacheable(c *command, f cacheFacts) string {
	cl := c.class
	switch {
	case !c.runs() || c.reply != replyResult || len(c.payload) >= mysql.MaxPayloadLen:
		return "not a statement"
	case cl.Kind != router.KindRead || cl.Pin || cl.Hint == router.HintMaster:
		return "not a plain read"
	case f.inTx:
		return "in a transaction"
	case f.readsOnMaster != "":
		return f.readsOnMaster
	case f.tempTables:
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
func cacheKey(c *command, cluster, backendUser, stateTag string, caps uint32) string {
	var b strings.Builder
	b.Grow(len(c.payload) + 128)
	b.WriteString(cluster)
	b.WriteByte(0)
	b.WriteString(backendUser)
	b.WriteByte(0)
	b.WriteString(stateTag)
	b.WriteByte(0)
	b.WriteString(hex.EncodeToString([]byte{byte(caps), byte(caps >> 8), byte(caps >> 16), byte(caps >> 24)}))
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

// finish stores what a filling read relayed, when it may: a complete OK
// result, read on the master or on a replica that has every write to its
// tables the cache knows of (a write whose GTID is unknown counts as
// missing on replicas for as long as replication may lag).
func (u *cacheUse) finish(c *command, p placement, r *reply, data []byte, captured bool, lag time.Duration) {
	f := c.fill
	if f == nil || f.done {
		return
	}
	f.done = true
	ok := captured && r.ok && r.serverErr == nil && !r.cursor && p.target != "" &&
		replicaHas(p.view.b.topology(), p.target, u.c.LastWrites(f.ticket), lag)
	if !ok {
		u.c.Abandon(f.ticket)
		return
	}
	u.c.Put(f.ticket, f.key, cache.Result{Data: data, Rows: r.rows}, c.act.CacheTTL, time.Now())
}

// abandon ends a fill that did not finish (the read failed).
func (u *cacheUse) abandon(c *command) {
	if f := c.fill; f != nil && !f.done {
		f.done = true
		u.c.Abandon(f.ticket)
	}
}

// replicaHas: target has applied every write in writes (the master
// always has).
func replicaHas(topo *backend.Topology, target string, writes []cache.Write, lag time.Duration) bool {
	if target == topo.Master || len(writes) == 0 {
		return true
	}
	st := topo.Server(target)
	if st == nil {
		return false
	}
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

// invalidate drops what a write is about to make stale (before it is
// sent) or made stale (after its reply, with its GTID); inside a
// transaction the tables are remembered for its end. Nothing happens
// when no rule caches and nothing is cached.
func (u *cacheUse) invalidate(c *command, cluster, gtid string, after, inTx, rulesCache bool) {
	if u.c == nil || !c.runs() {
		return
	}
	tables, all, writes := writeTables(c.class)
	if !writes || (u.c.Idle() && !rulesCache) {
		return
	}
	if all {
		tables = nil
	}
	u.c.Invalidate(cluster, tables, gtid, time.Now())
	if after && inTx {
		u.txWrites.add(cluster, tables, all)
	}
}

// txEnded invalidates, with the commit's GTID, the tables the ended
// transaction wrote: a reader that ran between its writes and its
// commit saw the old rows.
func (u *cacheUse) txEnded(gtid string, txOpen bool) {
	w := &u.txWrites
	if w.cluster == "" || txOpen {
		return
	}
	tables := w.tables
	if w.all {
		tables = nil
	}
	u.c.Invalidate(w.cluster, tables, gtid, time.Now())
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
