package harness

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/sandbox"
)

// WriteFile writes a test's file or fails it.
func WriteFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// LocalizeImported rewrites the config `switchyard import` wrote at path
// for a test: where the .deb keeps state and log does not exist on a test
// machine, and the status page's port must be a free one (the only three
// lines changed). It returns the new text.
func LocalizeImported(t testing.TB, path, dir string, httpPort int) string {
	t.Helper()
	generated, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(
		"/var/lib/switchyard/state.json", filepath.Join(dir, "state.json"),
		"/var/log/switchyard/switchyard.log", filepath.Join(dir, "switchyard.log"),
		"listen: 127.0.0.1:9033", fmt.Sprintf("listen: 127.0.0.1:%d", httpPort)).Replace(string(generated))
	WriteFile(t, path, text, 0o600)
	return text
}

// WaitFor polls cond every 50 ms until it holds, or fails the test after
// limit naming what it waited for.
func WaitFor(t testing.TB, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", limit, what)
	return 0
}

// InstanceDB opens a monitor-account handle to a sandbox instance, closed
// when the test ends.
func (e *Env) InstanceDB(t testing.TB, name string) *sql.DB {
	t.Helper()
	for _, in := range e.Sandbox.Instances {
		if in.Name == name {
			db, err := in.DB()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}
	}
	t.Fatalf("no instance %s", name)
	return nil
}

// ServerName maps a sandbox server id back to its instance name.
func (e *Env) ServerName(id int) string {
	for _, in := range e.Sandbox.Instances {
		if in.ServerID == id { // a rebuilt server has a new id
			return in.Name
		}
	}
	return ""
}

// Writers insert unique ids through a proxy from several client
// connections (one each, kept for the whole run) into db.table
// (id BIGINT PRIMARY KEY, sid INT, ts DATETIME(6)): the id, the server
// that ran the insert, and when. Acknowledged ids are recorded.
type Writers struct {
	stop   atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	acked  []int64
	ackAt  []int64 // unix nanoseconds of each acknowledgement
	sentAt []int64 // and of when that write was sent
	failed atomic.Int64
	errs   sync.Map
}

// Pattern is how writers use connections, as applications do.
type Pattern int

const (
	// ConnPerWriter: each writer keeps one connection (a worker).
	ConnPerWriter Pattern = iota
	// SharedPool: all writers share one driver pool (db.Exec with
	// arguments: a prepared statement per write).
	SharedPool
	// ConnPerWrite: a new connection for every write (PHP, Lambda).
	ConnPerWrite
)

func (p Pattern) String() string {
	return [...]string{"connection per writer", "shared driver pool", "new connection per write"}[p]
}

// StartWriters creates db.table if needed and starts n writers, each
// with a connection of its own.
func StartWriters(t testing.TB, p *Proxy, n int, db, table string) *Writers {
	return StartWritersPattern(t, p, n, db, table, ConnPerWriter)
}

// StartWritersPattern is StartWriters with the writers using connections
// in the given pattern.
func StartWritersPattern(t testing.TB, p *Proxy, n int, db, table string, pattern Pattern) *Writers {
	t.Helper()
	setup, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
	defer setup.Close()
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS " + db,
		"CREATE TABLE IF NOT EXISTS " + db + "." + table + " (id BIGINT PRIMARY KEY, sid INT, ts DATETIME(6))"} {
		if _, err := setup.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	w := &Writers{}
	base := time.Now().UnixNano() / 1000 % 1_000_000_000 * 1000
	dsn := p.DSN("app", "app", db, "timeout=5s&readTimeout=60s")
	shared, _ := sql.Open("mysql", dsn)
	shared.SetMaxOpenConns(n)
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			h := shared
			switch pattern {
			case ConnPerWriter:
				h, _ = sql.Open("mysql", dsn)
				defer h.Close()
				h.SetMaxOpenConns(1)
			case ConnPerWrite:
				h, _ = sql.Open("mysql", dsn)
				defer h.Close()
				h.SetMaxIdleConns(-1) // every write logs in anew
			}
			for seq := int64(0); !w.stop.Load(); seq++ {
				id := base + int64(i)<<40 + seq
				sent := time.Now().UnixNano()
				if _, err := h.Exec("INSERT INTO "+table+" VALUES (?, @@server_id, NOW(6))", id); err != nil {
					w.failed.Add(1)
					w.errs.Store(err.Error(), true)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				w.mu.Lock()
				w.acked = append(w.acked, id)
				w.ackAt = append(w.ackAt, time.Now().UnixNano())
				w.sentAt = append(w.sentAt, sent)
				w.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { shared.Close() })
	return w
}

// FirstAckAfter is how long after at the first write sent after it was
// acknowledged (0 when none was): after a kill, the first new write.
func (w *Writers) FirstAckAfter(at time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	first := int64(0)
	for i, ns := range w.ackAt {
		if w.sentAt[i] > at.UnixNano() && (first == 0 || ns < first) {
			first = ns
		}
	}
	if first == 0 {
		return 0
	}
	return time.Duration(first - at.UnixNano())
}

// Acked returns how many writes were acknowledged so far.
func (w *Writers) Acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// WaitMore waits until n more writes than now are acknowledged (the
// writers are running, or resumed after a change).
func (w *Writers) WaitMore(t testing.TB, n int) {
	t.Helper()
	target := w.Acked() + n
	WaitFor(t, fmt.Sprintf("%d more acknowledged writes", n), 30*time.Second, func() bool { return w.Acked() >= target })
}

// Stop ends the writers and returns the acknowledged ids.
func (w *Writers) Stop() []int64 {
	w.stop.Store(true)
	w.wg.Wait()
	return w.acked
}

// Failed counts writes that got an error.
func (w *Writers) Failed() int64 { return w.failed.Load() }

// Errors lists the distinct errors writers saw.
func (w *Writers) Errors() []string {
	var out []string
	w.errs.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	return out
}

// Lost counts acknowledged ids missing from (or duplicated in) db.table on
// the named server, and returns the table's row count too.
func (e *Env) Lost(t testing.TB, server, db, table string, acked []int64) (lost, rows int) {
	t.Helper()
	h := e.InstanceDB(t, server)
	have := map[int64]int{}
	r, err := h.QueryContext(context.Background(), "SELECT id FROM "+db+"."+table)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var id int64
		_ = r.Scan(&id)
		have[id]++
	}
	r.Close()
	for _, id := range acked {
		if have[id] != 1 {
			lost++
		}
	}
	return lost, len(have)
}

// PinReplica returns a session in a read-only transaction on the server
// with the given id (new sessions are tried until one lands there): the
// statements that follow run there until COMMIT. Close it when done.
func PinReplica(t testing.TB, db *sql.DB, serverID int) *sql.Conn {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "START TRANSACTION READ ONLY"); err != nil {
			t.Fatal(err)
		}
		var id int
		if err := conn.QueryRowContext(ctx, "SELECT @@server_id").Scan(&id); err != nil {
			t.Fatal(err)
		}
		if id == serverID {
			return conn
		}
		// A session keeps the replica it drew: try with a new session.
		EndSession(conn)
	}
	t.Fatalf("no read-only transaction landed on server %d", serverID)
	return nil
}

// Scrape reads the proxy's /metrics with the Prometheus text parser (a
// failure to parse fails the test) into "name,label=value,…" → value;
// histograms give their sample count under "…,count".
func (p *Proxy) Scrape(t testing.TB) map[string]float64 {
	t.Helper()
	resp, err := p.HTTPGet("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			key := name
			for _, l := range m.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+",count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

// HTTPGet requests path on the proxy's HTTP listener with the admin
// account (the harness's proxies use admin/admin).
func (p *Proxy) HTTPGet(path string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+p.HTTPAddr+path, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("admin", "admin")
	return http.DefaultClient.Do(req)
}

// MainWithSandbox is TestMain for packages that start their own proxies:
// it sets *env, runs the tests and cleans up.
func MainWithSandbox(m *testing.M, replicas, seed int, env **Env) int {
	e, err := Setup(replicas, seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	defer e.Teardown()
	*env = e
	return m.Run()
}

// ServerIDOfNewSession opens a brand-new proxy session, reads
// @@server_id there and closes it (so the next call is a new session
// again): a session keeps the replica it drew, new ones draw again.
// Returns 0 on error.
func ServerIDOfNewSession(db *sql.DB) int {
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0
	}
	defer EndSession(conn)
	var id int
	if err := conn.QueryRowContext(ctx, "SELECT @@server_id").Scan(&id); err != nil {
		return 0
	}
	return id
}

// EndSession closes conn's proxy session instead of returning it to
// database/sql's pool, so the next db.Conn is a new session.
func EndSession(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// Backend returns one row of SHOW BACKENDS (the proxy's view of a server).
func Backend(t testing.TB, adm *sql.DB, name string) map[string]string {
	t.Helper()
	for _, r := range AdminRows(t, adm, "SHOW BACKENDS") {
		if r["name"] == name {
			return r
		}
	}
	t.Fatalf("SHOW BACKENDS has no %s", name)
	return nil
}

// Refuses reports whether nothing listens on addr any more (a killed
// server's port).
func Refuses(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// Running reports whether a statement containing text runs on db now
// (its PROCESSLIST), so a test can act while it is in flight.
func Running(t testing.TB, db *sql.DB, text string) bool {
	t.Helper()
	var n int
	err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE CONCAT('%', ?, '%') AND ID <> CONNECTION_ID()", text).Scan(&n)
	return err == nil && n > 0
}

// MasterOf returns the master the proxy routes writes to (SHOW STATUS).
func MasterOf(t testing.TB, adm *sql.DB) string {
	t.Helper()
	for _, r := range AdminRows(t, adm, "SHOW STATUS") {
		if r["variable"] == "master" {
			return r["value"]
		}
	}
	t.Fatal("SHOW STATUS has no master")
	return ""
}

// KillMaster SIGKILLs the master and waits until the proxy names another.
func (e *Env) KillMaster(t testing.TB, adm *sql.DB) (old, neu string, took time.Duration) {
	t.Helper()
	old = MasterOf(t, adm)
	if err := e.Sandbox.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took = WaitFor(t, "a new master after killing "+old, 20*time.Second, func() bool { return MasterOf(t, adm) != old })
	return old, MasterOf(t, adm), took
}

// RestartAsReplica restarts a killed former master the way it must come
// back (read-only, semi-sync replica role) and waits until the proxy
// reports it replicating again.
func (e *Env) RestartAsReplica(t testing.TB, adm *sql.DB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.Sandbox.StartAsReplica(ctx, name); err != nil {
		t.Fatal(err)
	}
	rebuilt := false
	defer func() {
		if t.Failed() {
			rs, _, err := backend.QueryReplicaStatus(ctx, e.InstanceDB(t, name), Flavor())
			t.Logf("%s replication: IO=%s SQL=%v %s %s (%v)", name, rs.IOState, rs.SQLRunning, rs.LastIOError, rs.LastSQLError, err)
		}
	}()
	WaitFor(t, name+" to rejoin as a replica", 60*time.Second, func() bool {
		b := Backend(t, adm, name)
		if b["role"] == "diverged" && !rebuilt {
			// MySQL has no semi-sync crash recovery (MariaDB's
			// --init-rpl-role=SLAVE): a master killed under load keeps the
			// transactions it wrote but no replica acknowledged (no client
			// got their OK), so it comes back diverged, and an operator
			// rebuilds it. MariaDB must rejoin on its own.
			if Flavor() != backend.MySQL {
				t.Fatalf("%s came back diverged: %s", name, b["last_error"])
			}
			t.Logf("%s came back diverged (%s): rebuilding it from the master, as an operator would", name, b["last_error"])
			master, err := e.instance(masterBeside(t, adm, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Sandbox.Rebuild(ctx, name, master); err != nil {
				t.Fatal(err)
			}
			rebuilt = true
		}
		return b["role"] == "replica" && b["state"] == "up" && b["lag_seconds"] != ""
	})
}

// masterBeside is the master of the cluster server belongs to.
func masterBeside(t testing.TB, adm *sql.DB, server string) string {
	cluster := Backend(t, adm, server)["cluster"]
	for _, r := range AdminRows(t, adm, "SHOW CLUSTERS") {
		if r["cluster"] == cluster {
			return r["master"]
		}
	}
	t.Fatalf("SHOW CLUSTERS has no cluster %q", cluster)
	return ""
}

func (e *Env) instance(name string) (sandbox.Instance, error) {
	for _, in := range e.Sandbox.Instances {
		if in.Name == name {
			return in, nil
		}
	}
	return sandbox.Instance{}, fmt.Errorf("no instance %s", name)
}
