package admin

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/failover"
)

// Sources are what the admin port reports on and steers. cmd wires them;
// admin imports neither proxy nor cmd.
type Sources struct {
	Version string
	Started time.Time
	Cluster *backend.Cluster
	Engine  *failover.Engine
	// Sessions lists client sessions (proxy).
	Sessions func() []SessionInfo
	// Counters returns named counters for SHOW STATUS (proxy, engine).
	Counters func() map[string]uint64
	// QueryStats returns the digest table; ResetQueryStats clears it.
	QueryStats      func() []QueryStat
	ResetQueryStats func()
	// TxOutcomes says what became of the transactions that lost their
	// connection in a topology epoch: replayed, aborted (proxy).
	TxOutcomes func(epoch uint64) (replayed, aborted int)
	// Kill interrupts a session's running statement (query) or ends the
	// session (proxy).
	Kill func(session uint32, query bool) error
	// Config renders the running config without secrets.
	Config func() string
	// Reload re-reads the config file; an error keeps the old one.
	Reload func() error
	// Drain waits for statements running on a backend to finish.
	Drain func(ctx context.Context, backend string) error
	// Coordination describes coordination state; ok false when lost.
	Coordination func() (state string, ok bool)
	// Members lists the Switchyard instances sharing the cluster.
	Members func() []Member
}

// Member is one row of SHOW CLUSTER.
type Member struct {
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Master  string `json:"master"`
	Epoch   uint64 `json:"epoch"`
	Leader  bool   `json:"leader"`
	Updated string `json:"updated"`
}

// SessionInfo is one row of SHOW SESSIONS.
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
	BackendConns   int
	HeldBecause    string
	BackendThreads string
}

// QueryStat is one row of SHOW QUERY STATS.
type QueryStat struct {
	Digest              string
	Count               uint64
	Total, Max          time.Duration
	Rows                uint64
	ToMaster, ToReplica uint64
}

// Server is the admin SQL listener.
type Server struct {
	src   Sources
	log   *zap.Logger
	ms    *server.Server
	auth  *adminAuth
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[*server.Conn]struct{}
}

// New prepares the admin server with its own account.
func New(src Sources, user, password string, log *zap.Logger) (*Server, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	auth := &adminAuth{user: user, password: password, log: log}
	ms := server.NewServer("5.5.5-10.11.0-switchyard-admin", mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, key, nil)
	return &Server{src: src, log: log, ms: ms, auth: auth, conns: map[*server.Conn]struct{}{}}, nil
}

// Listen binds the admin address.
func (s *Server) Listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listen on %s: %w", addr, err)
	}
	s.l = l
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Serve accepts admin clients until Close.
func (s *Server) Serve() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

// Close stops the listener and the sessions.
func (s *Server) Close() {
	if s.l != nil {
		s.l.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		if c.Conn != nil {
			_ = c.Conn.Conn.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) handle(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	h := &handler{srv: s}
	c, err := s.ms.NewCustomizedConn(nc, s.auth, h)
	if err != nil {
		s.log.Info("admin login failed", zap.String("client", nc.RemoteAddr().String()), zap.String("reason", err.Error()))
		nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("admin session panic", zap.Any("panic", r), zap.Stack("stack"))
		}
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		if c.Conn != nil { // HandleCommand drops it on COM_QUIT and errors
			c.Close()
		}
	}()
	for !c.Closed() {
		if err := c.HandleCommand(); err != nil {
			return
		}
	}
}

// adminAuth accepts exactly one account. Any other user name fails like a
// wrong password (1045), so application accounts cannot probe the port.
type adminAuth struct {
	user, password string
	log            *zap.Logger
}

var impossible = string(mysql.RandomBuf(32))

func (a *adminAuth) GetCredential(username string) (server.Credential, bool, error) {
	pw := impossible
	if username == a.user {
		pw = a.password
	}
	return server.Credential{Passwords: []string{pw}, AuthPluginName: mysql.AUTH_NATIVE_PASSWORD}, true, nil
}

func (a *adminAuth) OnAuthSuccess(*server.Conn) error { return nil }

func (a *adminAuth) OnAuthFailure(c *server.Conn, err error) {
	a.log.Info("admin authentication failed", zap.String("user", c.GetUser()), zap.String("client", c.RemoteAddr().String()))
}

type handler struct {
	server.EmptyHandler
	srv *Server
}

func (h *handler) UseDB(string) error { return nil }

func (h *handler) HandleQuery(q string) (*mysql.Result, error) {
	res, err := h.srv.run(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(q), ";")))
	if err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) {
			return nil, me
		}
		return nil, mysql.NewError(mysql.ER_UNKNOWN_ERROR, err.Error())
	}
	return res, nil
}

// command is one admin statement: a pattern and what it does.
type command struct {
	pattern *regexp.Regexp
	usage   string
	help    string
	run     func(s *Server, args []string) (*mysql.Result, error)
}

var commands []command

func cmd(pattern, usage, help string, run func(s *Server, args []string) (*mysql.Result, error)) {
	commands = append(commands, command{regexp.MustCompile(`(?is)^` + pattern + `$`), usage, help, run})
}

func (s *Server) run(q string) (*mysql.Result, error) {
	for _, c := range commands {
		if m := c.pattern.FindStringSubmatch(q); m != nil {
			return c.run(s, m[1:])
		}
	}
	return nil, mysql.NewError(mysql.ER_SYNTAX_ERROR, fmt.Sprintf("Unknown admin command %q: type HELP for the list", shorten(q)))
}

func shorten(q string) string {
	if len(q) > 60 {
		return q[:60] + "…"
	}
	return q
}

func table(names []string, rows [][]any) (*mysql.Result, error) {
	if rows == nil {
		rows = [][]any{}
	}
	rs, err := mysql.BuildSimpleTextResultset(names, rows)
	if err != nil {
		return nil, err
	}
	return mysql.NewResult(rs), nil
}

func ok() (*mysql.Result, error) { return mysql.NewResultReserveResultset(0), nil }

func init() {
	cmd(`(?:SHOW\s+)?HELP`, "HELP (or SHOW HELP)", "this list", func(s *Server, _ []string) (*mysql.Result, error) {
		var rows [][]any
		for _, c := range commands {
			if c.usage != "" {
				rows = append(rows, []any{c.usage, c.help})
			}
		}
		return table([]string{"command", "description"}, rows)
	})
	// What the mysql/mariadb CLI sends on its own.
	cmd(`select\s+@@version_comment(\s+limit\s+1)?`, "", "", func(s *Server, _ []string) (*mysql.Result, error) {
		return table([]string{"@@version_comment"}, [][]any{{"Switchyard admin " + s.src.Version}})
	})
	cmd(`(set|use)\s.*`, "", "", func(*Server, []string) (*mysql.Result, error) { return ok() })
	cmd(`select\s+database\(\)`, "", "", func(*Server, []string) (*mysql.Result, error) {
		return table([]string{"DATABASE()"}, [][]any{{nil}})
	})
	cmd(`SHOW\s+VERSION`, "SHOW VERSION", "Switchyard version", func(s *Server, _ []string) (*mysql.Result, error) {
		return table([]string{"version"}, [][]any{{s.src.Version}})
	})
	cmd(`SHOW\s+BACKENDS`, "SHOW BACKENDS", "servers: role, state, lag, replication threads, GTID, read_only, pool, routed queries, last error",
		func(s *Server, _ []string) (*mysql.Result, error) { return s.showBackends() })
	cmd(`SHOW\s+FAILOVERS`, "SHOW FAILOVERS", "failover and switchover history with step durations",
		func(s *Server, _ []string) (*mysql.Result, error) { return s.showFailovers() })
	cmd(`SHOW\s+SESSIONS`, "SHOW SESSIONS", "client sessions", func(s *Server, _ []string) (*mysql.Result, error) {
		return s.showSessions()
	})
	cmd(`SHOW\s+QUERY\s+STATS`, "SHOW QUERY STATS", "per statement digest: count, time, rows, route",
		func(s *Server, _ []string) (*mysql.Result, error) { return s.showQueryStats() })
	cmd(`RESET\s+QUERY\s+STATS`, "RESET QUERY STATS", "clear the digest table", func(s *Server, _ []string) (*mysql.Result, error) {
		if s.src.ResetQueryStats != nil {
			s.src.ResetQueryStats()
		}
		return ok()
	})
	cmd(`SHOW\s+CLUSTER`, "SHOW CLUSTER", "Switchyard instances sharing the cluster: leader, epoch each applied", func(s *Server, _ []string) (*mysql.Result, error) {
		var rows [][]any
		if s.src.Members != nil {
			for _, m := range s.src.Members() {
				rows = append(rows, []any{m.ID, m.Addr, boolInt(m.Leader), m.Master, m.Epoch, m.Updated})
			}
		}
		return table([]string{"instance", "admin_address", "leader", "master", "applied_epoch", "updated"}, rows)
	})
	cmd(`SHOW\s+STATUS`, "SHOW STATUS", "uptime, connections, queries, errors, failovers", func(s *Server, _ []string) (*mysql.Result, error) {
		return s.showStatus()
	})
	cmd(`SHOW\s+CONFIG`, "SHOW CONFIG", "the running configuration (secrets hidden)", func(s *Server, _ []string) (*mysql.Result, error) {
		cfg := ""
		if s.src.Config != nil {
			cfg = s.src.Config()
		}
		return table([]string{"config"}, [][]any{{cfg}})
	})
	// The name may be quoted or not: TO 'db2' or TO db2.
	cmd(`SWITCHOVER(?:\s+TO\s+(?:'([^']+)'|([^\s';]+)))?`, "SWITCHOVER [TO 'name']", "planned master change without loss",
		func(s *Server, args []string) (*mysql.Result, error) { return s.change("switchover", args[0]+args[1]) })
	cmd(`FAILOVER(?:\s+TO\s+(?:'([^']+)'|([^\s';]+)))?`, "FAILOVER [TO 'name']", "forced failover (skips the cooldown and the confirmation)",
		func(s *Server, args []string) (*mysql.Result, error) { return s.change("failover", args[0]+args[1]) })
	cmd(`SET\s+BACKEND\s+'([^']+)'\s+(OFFLINE|ONLINE)`, "SET BACKEND 'name' OFFLINE|ONLINE", "drain a server (no new statements, running ones finish) or put it back",
		func(s *Server, args []string) (*mysql.Result, error) {
			return s.setOffline(args[0], strings.EqualFold(args[1], "OFFLINE"))
		})
	cmd(`KILL(\s+QUERY|\s+CONNECTION)?\s+(\d+)`, "KILL [QUERY] session_id", "interrupt a client session's running statement (QUERY) or end the session",
		func(s *Server, args []string) (*mysql.Result, error) {
			id, err := strconv.ParseUint(args[1], 10, 32)
			if err != nil || s.src.Kill == nil {
				return nil, mysql.NewError(mysql.ER_NO_SUCH_THREAD, "Unknown thread id: "+args[1])
			}
			if err := s.src.Kill(uint32(id), strings.EqualFold(strings.TrimSpace(args[0]), "QUERY")); err != nil {
				return nil, mysql.NewError(mysql.ER_NO_SUCH_THREAD, fmt.Sprintf("Unknown thread id: %d (%v)", id, err))
			}
			return ok()
		})
	cmd(`RELOAD\s+CONFIG`, "RELOAD CONFIG", "re-read the config file (users, weights, lag limits, backends)", func(s *Server, _ []string) (*mysql.Result, error) {
		if s.src.Reload == nil {
			return nil, errors.New("reload is not available")
		}
		if err := s.src.Reload(); err != nil {
			return nil, fmt.Errorf("config rejected, the running one is kept: %w", err)
		}
		return ok()
	})
	// Keep (set|use) from shadowing SET BACKEND: move it last.
	for i, c := range commands {
		if strings.HasPrefix(c.pattern.String(), `(?is)^(set|use)`) {
			commands = append(append(commands[:i:i], commands[i+1:]...), c)
			break
		}
	}
}

func (s *Server) showBackends() (*mysql.Result, error) {
	var rows [][]any
	for _, b := range s.src.backends(s.src.Cluster.Topology()) {
		var lag any
		if b.LagSeconds != nil {
			lag = *b.LagSeconds
		}
		rows = append(rows, []any{b.Name, b.Address, b.Role, b.State, lag, b.Replication, b.GTID, boolInt(b.ReadOnly),
			b.PoolOpen, b.PoolIdle, b.Routed, b.Weight, b.LastError})
	}
	return table([]string{"name", "address", "role", "state", "lag_seconds", "replication", "gtid_position", "read_only",
		"pool_open", "pool_idle", "queries_routed", "weight", "last_error"}, rows)
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Server) showFailovers() (*mysql.Result, error) {
	var rows [][]any
	for _, f := range s.src.failovers() {
		var steps []string
		for _, st := range f.Steps {
			x := fmt.Sprintf("%s=%s", st.Name, fromMS(st.DurationMS))
			if st.Error != "" {
				x += "(" + st.Error + ")"
			}
			steps = append(steps, x)
		}
		rows = append(rows, []any{f.Started.Format(time.RFC3339Nano), f.Kind, f.OldMaster, f.NewMaster,
			fromMS(f.DurationMS).String(), f.Epoch, boolInt(f.Succeeded), f.Drained, f.Replayed, f.Aborted,
			f.Reason, f.Positions, strings.Join(steps, " "), f.Error})
	}
	return table([]string{"started", "kind", "old_master", "new_master", "duration", "epoch", "succeeded",
		"transactions_drained", "transactions_replayed", "transactions_aborted", "reason", "gtid_positions", "steps", "error"}, rows)
}

// fromMS turns milliseconds (µs precision) back into a duration.
func fromMS(ms float64) time.Duration { return time.Duration(ms*1000) * time.Microsecond }

func (s *Server) showSessions() (*mysql.Result, error) {
	var rows [][]any
	for _, x := range s.src.sessions() {
		rows = append(rows, []any{x.ID, x.User, x.Client, x.DB, boolInt(x.InTransaction), x.Backend,
			(time.Duration(x.AgeMS) * time.Millisecond).String(), x.BackendConns, x.BackendThreads, x.HeldBecause, x.LastStatement})
	}
	return table([]string{"id", "user", "client", "db", "in_transaction", "backend", "age", "backend_conns", "backend_threads",
		"held_because", "last_statement_digest"}, rows)
}

func (s *Server) showQueryStats() (*mysql.Result, error) {
	var rows [][]any
	if s.src.QueryStats != nil {
		list := s.src.QueryStats()
		sort.Slice(list, func(i, j int) bool { return list[i].Total > list[j].Total })
		for _, q := range list {
			avg := time.Duration(0)
			if q.Count > 0 {
				avg = q.Total / time.Duration(q.Count)
			}
			rows = append(rows, []any{q.Digest, q.Count, q.Total.Microseconds(), avg.Microseconds(), q.Max.Microseconds(), q.Rows, q.ToMaster, q.ToReplica})
		}
	}
	return table([]string{"digest", "count", "total_us", "avg_us", "max_us", "rows", "to_master", "to_replica"}, rows)
}

func (s *Server) showStatus() (*mysql.Result, error) {
	t := s.src.Cluster.Topology()
	rows := [][]any{
		{"uptime_seconds", fmt.Sprint(int64(time.Since(s.src.Started).Seconds()))},
		{"master", t.Master},
		{"epoch", fmt.Sprint(t.Epoch)},
		{"holding_writes", fmt.Sprint(boolInt(t.Holding))},
	}
	if s.src.Coordination != nil {
		state, _ := s.src.Coordination()
		rows = append(rows, []any{"coordination", state})
	}
	if s.src.Counters != nil {
		c := s.src.Counters()
		keys := make([]string, 0, len(c))
		for k := range c {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rows = append(rows, []any{k, fmt.Sprint(c[k])})
		}
	}
	if s.src.Engine != nil {
		n := 0
		for _, r := range s.src.Engine.History() {
			if r.Error == "" {
				n++
			}
		}
		rows = append(rows, []any{"topology_changes", fmt.Sprint(n)})
	}
	return table([]string{"variable", "value"}, rows)
}

func (s *Server) change(kind, to string) (*mysql.Result, error) {
	if s.src.Engine == nil {
		return nil, errors.New("failover engine not running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var rec *failover.Record
	var err error
	if kind == "switchover" {
		rec, err = s.src.Engine.Switchover(ctx, to)
	} else {
		rec, err = s.src.Engine.Failover(ctx, to, "forced by the operator", true)
	}
	if err != nil {
		return nil, fmt.Errorf("%s failed: %w", kind, err)
	}
	return table([]string{"kind", "old_master", "new_master", "duration", "epoch"},
		[][]any{{rec.Kind, rec.OldMaster, rec.NewMaster, rec.Duration.Round(time.Microsecond).String(), rec.Epoch}})
}

func (s *Server) setOffline(name string, offline bool) (*mysql.Result, error) {
	if err := s.src.Cluster.SetOffline(name, offline); err != nil {
		return nil, err
	}
	if offline && s.src.Drain != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.src.Drain(ctx, name); err != nil {
			return nil, fmt.Errorf("%s is offline but statements are still running on it: %w", name, err)
		}
	}
	return ok()
}
