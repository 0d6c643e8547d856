package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// QueryLog writes one JSON line per statement that a rule marks with log
// or that took at least the slow query time: when, who, from where, the
// digest (literals folded: no data in the log), where it ran, which
// rule, how long, how many rows, and the error. Sessions write to it
// concurrently; each line is written whole.
type QueryLog struct {
	mu sync.Mutex
	w  *bufio.Writer
	c  io.Closer // nil: not ours to close (stdout)
}

// NewQueryLog writes lines to w; closer, when set, is closed by Close.
func NewQueryLog(w io.Writer, closer io.Closer) *QueryLog {
	return &QueryLog{w: bufio.NewWriterSize(w, 64<<10), c: closer}
}

// QueryLogEntry is one line of the query log.
type QueryLogEntry struct {
	Time     time.Time `json:"time"`
	User     string    `json:"user"`
	Client   string    `json:"client"`
	Database string    `json:"database,omitempty"`
	Digest   string    `json:"digest"`
	Cluster  string    `json:"cluster,omitempty"`
	Target   string    `json:"target,omitempty"` // the server, "cache", or "" when blocked
	Rule     string    `json:"rule,omitempty"`
	Slow     bool      `json:"slow,omitempty"`
	Micros   int64     `json:"duration_us"`
	Rows     uint64    `json:"rows"`
	Error    string    `json:"error,omitempty"`
}

// Write adds one line and flushes it: a line is in the file once the
// statement's reply is sent.
func (q *QueryLog) Write(e *QueryLogEntry) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	_, _ = q.w.Write(append(b, '\n'))
	_ = q.w.Flush()
}

// Close flushes and closes the destination.
func (q *QueryLog) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	_ = q.w.Flush()
	if q.c != nil {
		return q.c.Close()
	}
	return nil
}

// logQuery writes a statement to the query log when a rule asks for it
// or it was slow (target "": a statement a rule blocked).
func (s *session) logQuery(c *command, cluster, target string, r *reply, took time.Duration) {
	set := s.cmd.set
	if set.QueryLog == nil {
		return
	}
	slow := set.SlowQuery > 0 && took >= set.SlowQuery && target != ""
	if !c.act.Log && !slow {
		return
	}
	e := newQueryLogEntry(c, &s.login, s.state.db)
	e.Cluster, e.Target, e.Slow, e.Micros, e.Rows = cluster, target, slow, took.Microseconds(), r.rows
	if r.serverErr != nil {
		e.Error = r.serverErr.Error()
	}
	set.QueryLog.Write(e)
}

func newQueryLogEntry(c *command, l *login, db string) *QueryLogEntry {
	digest := c.class.Digest
	if digest == "" {
		digest = "(too long to normalize)"
	}
	return &QueryLogEntry{Time: time.Now(), User: l.user.Name, Client: l.client.String(), Database: db, Digest: digest, Rule: c.act.Rules}
}
