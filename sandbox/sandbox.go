package sandbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/backend"
)

// Accounts the sandbox creates on every server (same on all, created
// without binlogging so no server starts with GTIDs of its own).
const (
	MonitorUser     = "switchyard" // ALL PRIVILEGES: monitor and failover
	MonitorPassword = "switchyard"
	ReplUser        = "repl" // REPLICATION SLAVE only
	ReplPassword    = "repl"
	AppUser         = "app" // application account: data and schema rights, nothing that bypasses read_only
	AppPassword     = "app"
	AdminUser       = "admin" // Switchyard admin port
	AdminPassword   = "admin"
)

// Options describe a topology. Zero values take defaults.
type Options struct {
	Dir      string
	BasePort int // master on BasePort, replicas on BasePort+1..N
	Replicas int // per cluster
	// Clusters: 0 or 1 is one cluster ("master", "replica1" …); N > 1
	// makes clusters c1…cN, cluster k's master on BasePort+10(k-1) and
	// its replicas on the next ports ("c1-master", "c1-replica1" …), and
	// databases db1…dbN each on its cluster.
	Clusters int
	// Flavor is the server software: MariaDB from Debian (the default) or
	// Oracle MySQL from a Debian sid chroot (scripts/mysql-chroot.sh).
	Flavor backend.Flavor
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Placement puts named instances on their own address inside a
	// network namespace the caller made (partition tests). Others listen
	// on 127.0.0.1.
	Placement map[string]Placement
}

// Placement is where an instance listens.
type Placement struct {
	Netns string // run mariadbd with "ip netns exec NETNS"
	Host  string // bind address, reachable from the root namespace
}

// Instance is one server of the topology.
type Instance struct {
	Flavor   backend.Flavor `json:"flavor,omitempty"`  // empty: MariaDB
	Cluster  string         `json:"cluster,omitempty"` // empty: the one cluster
	Name     string         `json:"name"`
	Port     int            `json:"port"`
	ServerID int            `json:"server_id"`
	Dir      string         `json:"dir"`
	Host     string         `json:"host"`
	Netns    string         `json:"netns,omitempty"`
}

// HostOrLoopback returns the bind address.
func (i Instance) HostOrLoopback() string {
	if i.Host == "" {
		return "127.0.0.1"
	}
	return i.Host
}

// Socket is the instance's unix socket path.
func (i Instance) Socket() string { return filepath.Join(i.Dir, i.fileBase()+".sock") }

// PidFile is where the server writes its pid.
func (i Instance) PidFile() string { return filepath.Join(i.Dir, i.fileBase()+".pid") }

func (i Instance) fileBase() string {
	if i.Flavor == backend.MySQL {
		return "mysqld"
	}
	return "mariadb"
}

// Addr returns host:port.
func (i Instance) Addr() string { return net.JoinHostPort(i.HostOrLoopback(), fmt.Sprint(i.Port)) }

// DSN is a go-sql-driver DSN for the monitor account.
func (i Instance) DSN() string {
	return fmt.Sprintf("%s:%s@tcp(%s)/?timeout=5s&readTimeout=30s&writeTimeout=30s", MonitorUser, MonitorPassword, i.Addr())
}

// Sandbox is a running (or stopped) topology rooted at Dir.
type Sandbox struct {
	Dir       string         `json:"dir"`
	BasePort  int            `json:"base_port"`
	Flavor    backend.Flavor `json:"flavor,omitempty"` // empty: MariaDB
	Instances []Instance     `json:"instances"`
	opts      Options
	server    server
}

// Master returns the instance configured as the initial master.
func (s *Sandbox) Master() Instance { return s.Instances[0] }

// ReplicaInstances returns the initial replicas (of the first cluster).
func (s *Sandbox) ReplicaInstances() []Instance {
	return s.ClusterInstances(s.Instances[0].Cluster)[1:]
}

// ClusterNames lists the clusters ("" alone for a one-cluster sandbox).
func (s *Sandbox) ClusterNames() []string {
	var out []string
	for _, in := range s.Instances {
		if len(out) == 0 || out[len(out)-1] != in.Cluster {
			out = append(out, in.Cluster)
		}
	}
	return out
}

// ClusterInstances returns a cluster's instances, its initial master
// first.
func (s *Sandbox) ClusterInstances(cluster string) []Instance {
	var out []Instance
	for _, in := range s.Instances {
		if in.Cluster == cluster {
			out = append(out, in)
		}
	}
	return out
}

// ProxyAddr is the proxy listener written into the generated config.
func (s *Sandbox) ProxyAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.BasePort+100) }

// AdminAddr is the admin listener written into the generated config.
func (s *Sandbox) AdminAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.BasePort+101) }

// HTTPAddr is the metrics listener written into the generated config.
func (s *Sandbox) HTTPAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.BasePort+102) }

// ConfigPath is the generated Switchyard config.
func (s *Sandbox) ConfigPath() string { return filepath.Join(s.Dir, "switchyard.yaml") }

func (o *Options) fill() error {
	if o.Dir == "" {
		o.Dir = "./sandbox"
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	if o.BasePort == 0 {
		o.BasePort = 13306
	}
	if o.Replicas < 0 || o.Replicas > 9 {
		return fmt.Errorf("replicas must be between 0 and 9, got %d", o.Replicas)
	}
	if o.Clusters < 0 || o.Clusters > 9 {
		return fmt.Errorf("clusters must be between 1 and 9, got %d", o.Clusters)
	}
	if o.BasePort < 1024 || o.BasePort+102 > 65535 {
		return fmt.Errorf("base port %d out of range (1024..65433)", o.BasePort)
	}
	if o.Flavor == "" {
		o.Flavor = backend.MariaDB
	}
	if o.Flavor != backend.MariaDB && o.Flavor != backend.MySQL {
		return fmt.Errorf("flavor %q: use mariadb or mysql", o.Flavor)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

func findBinary(name string, fallbacks ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, f := range fallbacks {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return ""
}

// Up creates (if needed) and starts the topology, sets up replication on
// fresh servers and writes the Switchyard config. It is idempotent: on a
// running sandbox it only checks that every server answers.
func Up(ctx context.Context, opts Options) (*Sandbox, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if prev, err := Open(opts.Dir); err == nil && (prev.BasePort != opts.BasePort || len(prev.Instances) != (opts.Replicas+1)*max(opts.Clusters, 1) || prev.flavor() != opts.Flavor) {
		return nil, fmt.Errorf("sandbox in %s already exists with base port %d, %d servers and %s; "+
			"run 'switchyard sandbox down --dir %s --purge' first", opts.Dir, prev.BasePort, len(prev.Instances), prev.flavor(), opts.Dir)
	}
	s := &Sandbox{Dir: opts.Dir, BasePort: opts.BasePort, opts: opts}
	if opts.Flavor == backend.MySQL {
		s.Flavor = backend.MySQL
	}
	srv, err := serverFor(ctx, opts.Flavor, opts.Log)
	if err != nil {
		return nil, err
	}
	s.server = srv
	s.Instances = layout(opts, s.Flavor)
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create sandbox dir: %w", err)
	}
	fresh := map[string]bool{}
	for _, in := range s.Instances {
		if _, err := os.Stat(filepath.Join(in.Dir, "data")); errors.Is(err, os.ErrNotExist) {
			if err := s.createDatadir(ctx, in); err != nil {
				return nil, err
			}
			fresh[in.Name] = true
		}
		if err := s.writeMyCnf(in, !isInitialMaster(in)); err != nil {
			return nil, err
		}
	}
	if err := s.save(); err != nil {
		return nil, err
	}
	if err := s.ensureCert(); err != nil {
		return nil, err
	}
	// Start all servers, then wait for each: startups overlap.
	for _, in := range s.Instances {
		if alive(in) {
			continue
		}
		if err := s.start(in); err != nil {
			return nil, err
		}
	}
	for _, in := range s.Instances {
		if err := waitReady(ctx, in, 60*time.Second); err != nil {
			return nil, err
		}
	}
	for _, c := range s.ClusterNames() {
		in := s.ClusterInstances(c)
		for _, r := range in[1:] {
			if !fresh[r.Name] {
				continue
			}
			if err := s.Repoint(ctx, r, in[0]); err != nil {
				return nil, err
			}
		}
	}
	if err := s.createClusterDatabases(ctx, fresh); err != nil {
		return nil, err
	}
	if err := s.WriteConfig(); err != nil {
		return nil, err
	}
	for _, c := range s.ClusterNames() {
		in := s.ClusterInstances(c)
		fmt.Fprintf(opts.Log, "sandbox up in %s: %s %smaster %s, %d replica(s)\n", s.Dir, s.flavor(), clusterLabel(c), in[0].Addr(), len(in)-1)
	}
	return s, nil
}

// layout names and places the servers: one cluster as always, or
// clusters c1…cN ten ports apart.
func layout(opts Options, flavor backend.Flavor) []Instance {
	var out []Instance
	clusters := max(opts.Clusters, 1)
	for k := 1; k <= clusters; k++ {
		cluster, prefix, base := "", "", opts.BasePort+10*(k-1)
		if opts.Clusters > 1 {
			cluster = fmt.Sprintf("c%d", k)
			prefix = cluster + "-"
		}
		for i := 0; i <= opts.Replicas; i++ {
			name := prefix + "master"
			if i > 0 {
				name = fmt.Sprintf("%sreplica%d", prefix, i)
			}
			pl := opts.Placement[name]
			out = append(out, Instance{Flavor: flavor, Cluster: cluster, Name: name, Port: base + i, ServerID: 10*(k-1) + i + 1,
				Dir: filepath.Join(opts.Dir, name), Host: pl.Host, Netns: pl.Netns})
		}
	}
	return out
}

// isInitialMaster: the instance is its cluster's first.
func isInitialMaster(in Instance) bool { return strings.HasSuffix(in.Name, "master") }

func clusterLabel(c string) string {
	if c == "" {
		return ""
	}
	return "cluster " + c + " "
}

// ClusterDatabase is the database the sandbox maps to cluster c ("db2"
// for "c2"; "" for a one-cluster sandbox).
func ClusterDatabase(c string) string {
	if c == "" {
		return ""
	}
	return "db" + strings.TrimPrefix(c, "c")
}

// createClusterDatabases creates dbK on cluster cK's fresh master (the
// replicas get it by replication).
func (s *Sandbox) createClusterDatabases(ctx context.Context, fresh map[string]bool) error {
	for _, c := range s.ClusterNames() {
		m := s.ClusterInstances(c)[0]
		if c == "" || !fresh[m.Name] {
			continue
		}
		db, err := m.DB()
		if err != nil {
			return err
		}
		_, err = db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+ClusterDatabase(c))
		db.Close()
		if err != nil {
			return fmt.Errorf("%s: create %s: %w", m.Name, ClusterDatabase(c), err)
		}
	}
	return nil
}

// Open loads the description of an existing sandbox.
func Open(dir string) (*Sandbox, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(abs, "sandbox.json"))
	if err != nil {
		return nil, fmt.Errorf("no sandbox in %s: %w", abs, err)
	}
	var s Sandbox
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read %s/sandbox.json: %w", abs, err)
	}
	return &s, nil
}

// log is where progress lines go (nowhere for a sandbox loaded by Open).
func (s *Sandbox) log() io.Writer {
	if s.opts.Log == nil {
		return io.Discard
	}
	return s.opts.Log
}

// flavor is the sandbox's server software.
func (s *Sandbox) flavor() backend.Flavor {
	if s.Flavor == "" {
		return backend.MariaDB
	}
	return s.Flavor
}

// software returns the server software, found on first use (a sandbox
// loaded with Open has not looked for it yet).
func (s *Sandbox) software(ctx context.Context) (server, error) {
	if s.server == nil {
		srv, err := serverFor(ctx, s.flavor(), s.log())
		if err != nil {
			return nil, err
		}
		s.server = srv
	}
	return s.server, nil
}

func (s *Sandbox) save() error {
	data, _ := json.MarshalIndent(s, "", "  ")
	return os.WriteFile(filepath.Join(s.Dir, "sandbox.json"), data, 0o644)
}

// createDatadir copies a template datadir, made once per sandbox with the
// accounts in it: copying is much faster than installing N times.
func (s *Sandbox) createDatadir(ctx context.Context, in Instance) error {
	// Not a hidden name: MySQL's InnoDB cannot find the undo tablespaces
	// of a datadir whose path has a component starting with a dot.
	tmpl := filepath.Join(s.Dir, "template")
	ready := filepath.Join(s.Dir, "template.ready")
	if _, err := os.Stat(ready); err != nil {
		_ = os.RemoveAll(tmpl)
		if err := s.server.initTemplate(ctx, tmpl, s.log()); err != nil {
			return err
		}
		if err := os.WriteFile(ready, nil, 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(in.Dir, 0o755); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "cp", "-a", tmpl, filepath.Join(in.Dir, "data")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy template datadir: %w: %s", err, out)
	}
	// MySQL names itself by the uuid in auto.cnf: each copy needs its own.
	_ = os.Remove(filepath.Join(in.Dir, "data", "auto.cnf"))
	return nil
}

func (s *Sandbox) writeMyCnf(in Instance, readOnly bool) error {
	// Each server its own tmpdir: /tmp is shared with every other server
	// and test on the machine.
	if err := os.MkdirAll(filepath.Join(in.Dir, "tmp"), 0o755); err != nil {
		return err
	}
	files, cnf := s.server.config(s, in, readOnly)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(in.Dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(in.Dir, "my.cnf"), []byte(cnf), 0o644)
}

func (s *Sandbox) start(in Instance, extra ...string) error {
	logf, err := os.OpenFile(filepath.Join(in.Dir, "mariadbd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	srv, err := s.software(context.Background())
	if err != nil {
		return err
	}
	args := append(srv.command(filepath.Join(in.Dir, "my.cnf")), extra...)
	if in.Netns != "" {
		args = append([]string{"ip", "netns", "exec", in.Netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own session: the server outlives 'sandbox up' and ignores the
	// terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", in.Name, err)
	}
	go func() { _ = cmd.Wait() }() // reap it if it dies while we run
	fmt.Fprintf(s.log(), "started %s (pid %d) on port %d\n", in.Name, cmd.Process.Pid, in.Port)
	return nil
}

// Start starts one stopped instance again (tests use it after Kill).
// extra are mariadbd options, e.g. "--read-only=ON".
func (s *Sandbox) Start(ctx context.Context, name string, extra ...string) error {
	in, err := s.instance(name)
	if err != nil {
		return err
	}
	if !alive(in) {
		if err := s.start(in, extra...); err != nil {
			return err
		}
	}
	return waitReady(ctx, in, 60*time.Second)
}

// StartAsReplica restarts a former master the way it must come back after
// a failover: read-only, and on MariaDB with semi-sync crash recovery in
// the replica role (--init-rpl-role=SLAVE), which drops binlogged
// transactions no replica acknowledged, so its history stays a prefix of
// the new master's. (MySQL has no such recovery: a crashed master can come
// back with transactions nobody else has, and is then kept out as
// diverged.)
func (s *Sandbox) StartAsReplica(ctx context.Context, name string) error {
	srv, err := s.software(ctx)
	if err != nil {
		return err
	}
	return s.Start(ctx, name, srv.asReplicaOptions()...)
}

// Rebuild does what an operator does with a diverged server: it throws
// its data away, starts it from the template datadir, gives it the
// master's data the way the server software does it (MySQL: CLONE
// INSTANCE; MariaDB: replication from the first transaction, the sandbox
// never purges binary logs) and makes it a replica of master.
func (s *Sandbox) Rebuild(ctx context.Context, name string, master Instance) error {
	in, err := s.instance(name)
	if err != nil {
		return err
	}
	if _, err := s.software(ctx); err != nil {
		return err
	}
	if err := stopInstance(in); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(in.Dir, "data")); err != nil {
		return err
	}
	// A new server id, as for a newly provisioned replica: a replica
	// skips events carrying its own server id, and the master's binary
	// log holds the old server's events under the old id.
	in.ServerID = s.nextServerID()
	s.setInstance(in)
	if err := s.save(); err != nil {
		return err
	}
	if err := s.createDatadir(ctx, in); err != nil {
		return err
	}
	if err := s.writeMyCnf(in, true); err != nil { // it comes back as a replica
		return err
	}
	if err := s.start(in); err != nil {
		return err
	}
	if err := waitReady(ctx, in, 60*time.Second); err != nil {
		return err
	}
	if err := s.server.copyData(ctx, s, in, master); err != nil {
		return fmt.Errorf("rebuild %s from %s: %w", in.Name, master.Name, err)
	}
	return s.Repoint(ctx, in, master)
}

func (s *Sandbox) nextServerID() int {
	id := 0
	for _, in := range s.Instances {
		id = max(id, in.ServerID)
	}
	return id + 1
}

func (s *Sandbox) setInstance(in Instance) {
	for i := range s.Instances {
		if s.Instances[i].Name == in.Name {
			s.Instances[i] = in
		}
	}
}

// Kill sends sig (SIGKILL, SIGSTOP, SIGCONT, SIGTERM) to one instance.
func (s *Sandbox) Kill(name string, sig syscall.Signal) error {
	in, err := s.instance(name)
	if err != nil {
		return err
	}
	pid, err := readPid(in)
	if err != nil {
		return err
	}
	return syscall.Kill(pid, sig)
}

func (s *Sandbox) instance(name string) (Instance, error) {
	for _, in := range s.Instances {
		if in.Name == name {
			return in, nil
		}
	}
	return Instance{}, fmt.Errorf("no instance %q in sandbox %s", name, s.Dir)
}

func readPid(in Instance) (int, error) {
	data, err := os.ReadFile(in.PidFile())
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

func alive(in Instance) bool {
	pid, err := readPid(in)
	if err != nil {
		return false
	}
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// The pid may have been reused: check it is a mariadbd of ours.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), in.Dir)
}

func waitReady(ctx context.Context, in Instance, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var lastErr error
	for time.Now().Before(deadline) {
		db, err := sql.Open("mysql", in.DSN())
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			lastErr = db.PingContext(pctx)
			cancel()
			db.Close()
			if lastErr == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	tail, _ := os.ReadFile(filepath.Join(in.Dir, "error.log"))
	if len(tail) > 2000 {
		tail = tail[len(tail)-2000:]
	}
	return fmt.Errorf("%s on port %d not ready after %s: %v\nerror.log tail:\n%s", in.Name, in.Port, limit, lastErr, tail)
}

// Repoint makes replica replicate from master with GTID auto-positioning.
func (s *Sandbox) Repoint(ctx context.Context, replica, master Instance) error {
	db, err := sql.Open("mysql", replica.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	f := s.flavor()
	stmts := []string{
		f.StopReplicaSQL(),
		f.FollowSQL(master.HostOrLoopback(), fmt.Sprint(master.Port), ReplUser, ReplPassword, false),
		f.StartReplicaSQL(),
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %s: %w", replica.Name, q, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	var last backend.ReplicaStatus
	for time.Now().Before(deadline) {
		rs, ok, err := backend.QueryReplicaStatus(ctx, db, s.flavor())
		if err == nil && ok && rs.IORunning && rs.SQLRunning {
			return nil
		}
		last = rs
		time.Sleep(100 * time.Millisecond)
	}
	tail, _ := os.ReadFile(filepath.Join(replica.Dir, "error.log"))
	if len(tail) > 1500 {
		tail = tail[len(tail)-1500:]
	}
	return fmt.Errorf("%s: replication threads did not start: IO=%s SQL=%v %s %s\nerror.log tail:\n%s", replica.Name, last.IOState, last.SQLRunning,
		last.LastIOError, last.LastSQLError, tail)
}

// Down stops every server of the sandbox in dir; purge also deletes it.
func Down(dir string, purge bool, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	s, err := Open(dir)
	if err != nil {
		if purge {
			return os.RemoveAll(dir)
		}
		return err
	}
	var errs []error
	for _, in := range s.Instances {
		if err := stopInstance(in); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(log, "stopped %s\n", in.Name)
		}
	}
	if purge && len(errs) == 0 {
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// waitStopped waits until a server that is shutting down on its own is
// gone.
func waitStopped(in Instance, limit time.Duration) error {
	for deadline := time.Now().Add(limit); alive(in); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not stop within %s", in.Name, limit)
		}
	}
	return nil
}

// stopInstance sends SIGTERM, waits for a clean shutdown and falls back to
// SIGKILL, so nothing is left running.
func stopInstance(in Instance) error {
	if !alive(in) {
		return nil
	}
	pid, err := readPid(in)
	if err != nil {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGCONT) // a SIGSTOPped server cannot exit
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 300; i++ {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50; i++ {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s (pid %d) did not stop", in.Name, pid)
}

// ServerStatus is what 'sandbox status' prints for one server.
type ServerStatus struct {
	Instance
	Running  bool
	ReadOnly bool
	GTIDPos  string
	Replica  *backend.ReplicaStatus
	Err      error
}

// Status inspects every server.
func (s *Sandbox) Status(ctx context.Context) []ServerStatus {
	var out []ServerStatus
	for _, in := range s.Instances {
		st := ServerStatus{Instance: in, Running: alive(in)}
		if st.Running {
			st.Err = func() error {
				db, err := sql.Open("mysql", in.DSN())
				if err != nil {
					return err
				}
				defer db.Close()
				qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				f := s.flavor()
				if err := db.QueryRowContext(qctx, "SELECT @@read_only").Scan(&st.ReadOnly); err != nil {
					return err
				}
				if err := db.QueryRowContext(qctx, f.GTIDPositionSQL()).Scan(&st.GTIDPos); err != nil {
					return err
				}
				rs, ok, err := backend.QueryReplicaStatus(qctx, db, f)
				if err != nil {
					return err
				}
				if ok {
					st.Replica = &rs
				}
				return nil
			}()
		}
		out = append(out, st)
	}
	return out
}

// Role describes what a server is now: master, replica of :port, down.
func (st ServerStatus) Role() string {
	switch {
	case !st.Running:
		return "down"
	case st.Err != nil:
		return "unreachable"
	case st.Replica != nil && st.Replica.MasterPort != 0:
		return fmt.Sprintf("replica of :%d", st.Replica.MasterPort)
	case st.ReadOnly:
		return "read-only (no master)"
	default:
		return "master"
	}
}

// FreeBasePort finds a base port P such that P..P+n and P+100..P+102 are
// all free on 127.0.0.1. seed spreads parallel callers apart. Ports stay
// below the kernel's ephemeral range (32768+), where outgoing connections
// of other tests could take a port between this check and the bind.
func FreeBasePort(n int, seed int) (int, error) {
	const lo, span = 12000, 20000 // 12000..31999
	start := (seed*1499 + os.Getpid()*7) % span
	for try := 0; try < 200; try++ {
		p := lo + (start+try*211)%(span-200)
		ok := true
		for _, port := range append(seq(p, n+1), p+100, p+101, p+102) {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("no free port range found")
}

func seq(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// DB opens a database/sql handle to an instance as the monitor account.
func (in Instance) DB() (*sql.DB, error) { return sql.Open("mysql", in.DSN()) }

var _ = mysql.ErrInvalidConn // keep the driver registered
