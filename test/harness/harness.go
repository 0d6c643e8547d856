// Package harness starts the real things integration tests need: a
// MariaDB sandbox (sandbox package) and the switchyard binary built from
// this tree, on free loopback ports, and stops them afterwards.
package harness

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/sandbox"
)

// Env is a sandbox plus the built binary, shared by a test package.
type Env struct {
	Sandbox *sandbox.Sandbox
	Binary  string
	Dir     string
}

// Flavor is the server family the tests run on: MariaDB unless
// SWITCHYARD_TEST_FLAVOR=mysql (make test runs the failover, routing,
// operator and transaction packages both ways).
func Flavor() backend.Flavor {
	if backend.Flavor(os.Getenv("SWITCHYARD_TEST_FLAVOR")) == backend.MySQL {
		return backend.MySQL
	}
	return backend.MariaDB
}

// Pick returns the statement for the flavour under test: MariaDB's text
// or MySQL's (STOP SLAVE SQL_THREAD / STOP REPLICA SQL_THREAD, …).
func Pick(mariadb, mysql string) string {
	if Flavor() == backend.MySQL {
		return mysql
	}
	return mariadb
}

// ConnectionKilled is the code a client gets when its backend
// connection was lost under it: MariaDB's ER_CONNECTION_KILLED (1927), or
// in front of MySQL, which lacks it, ER_NET_READ_ERROR (1158).
func ConnectionKilled() uint16 {
	if Flavor() == backend.MySQL {
		return 1158
	}
	return 1927
}

// Setup builds the binary and brings up a sandbox with n replicas. Call it
// from TestMain; call Teardown after m.Run. seed separates packages' ports.
func Setup(replicas, seed int) (*Env, error) {
	return SetupPlaced(replicas, seed, nil)
}

// SetupClusters is Setup with n clusters of the given number of
// replicas each (sandbox up --clusters n).
func SetupClusters(clusters, replicas, seed int) (*Env, error) {
	return setup(sandbox.Options{Replicas: replicas, Clusters: clusters}, seed)
}

// SetupPlaced is Setup with instances placed in network namespaces.
func SetupPlaced(replicas, seed int, placement map[string]sandbox.Placement) (*Env, error) {
	return setup(sandbox.Options{Replicas: replicas, Placement: placement}, seed)
}

// setup builds the binary and brings up a sandbox of opts' shape.
func setup(opts sandbox.Options, seed int) (*Env, error) {
	if _, err := exec.LookPath("mariadbd"); err != nil && Flavor() == backend.MariaDB {
		if _, err2 := os.Stat("/usr/sbin/mariadbd"); err2 != nil {
			// Never skip silently: a missing server is a broken machine.
			return nil, fmt.Errorf("mariadbd not found: run 'make deps' (apt-get install mariadb-server mariadb-client)")
		}
	}
	dir, err := os.MkdirTemp("", "switchyard-test-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "switchyard")
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	args := []string{"build", "-o", bin}
	if RaceBuild() {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/switchyard")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build switchyard: %v\n%s", err, out)
	}
	port, err := sandbox.FreeBasePort(10*(max(opts.Clusters, 1)-1)+opts.Replicas, seed)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // MySQL's chroot may be built first
	defer cancel()
	opts.Dir, opts.BasePort, opts.Flavor, opts.Log = filepath.Join(dir, "sandbox"), port, Flavor(), sandboxLog()
	sb, err := sandbox.Up(ctx, opts)
	if err != nil {
		_ = sandbox.Down(filepath.Join(dir, "sandbox"), true, nil)
		return nil, err
	}
	return &Env{Sandbox: sb, Binary: bin, Dir: dir}, nil
}

// RaceBuild: SWITCHYARD_TEST_RACE=1 builds the proxy with the race
// detector (make test-race); every proxy a test starts is then checked
// for race reports when it stops.
func RaceBuild() bool { return os.Getenv("SWITCHYARD_TEST_RACE") == "1" }

// checkRaces fails the test if the proxy's output holds a race report.
func (p *Proxy) checkRaces(t testing.TB) {
	log := p.Log()
	if i := strings.Index(log, "WARNING: DATA RACE"); i >= 0 {
		t.Errorf("the proxy reported a data race:\n%s", log[i:min(len(log), i+6000)])
	}
}

// Teardown stops the sandbox and removes everything.
func (e *Env) Teardown() {
	if e == nil {
		return
	}
	_ = sandbox.Down(e.Sandbox.Dir, true, nil)
	_ = os.RemoveAll(e.Dir)
}

// Proxy is a running switchyard process.
type Proxy struct {
	Addr       string
	AdminAddr  string
	HTTPAddr   string
	ConfigPath string
	cmd        *exec.Cmd
	logMu      sync.Mutex
	log        *bytes.Buffer
	done       chan error
	// environ and args are what it was launched with (Relaunch).
	environ, args []string
}

// Log returns what the proxy printed so far.
func (p *Proxy) Log() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

type lockedWriter struct{ p *Proxy }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.logMu.Lock()
	defer w.p.logMu.Unlock()
	return w.p.log.Write(b)
}

// Pid is the proxy's process id.
func (p *Proxy) Pid() int { return p.cmd.Process.Pid }

// Running: the process has not exited.
func (p *Proxy) Running() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return false
	default:
		return true
	}
}

// ProxyOptions adjust the generated config.
type ProxyOptions struct {
	// Extra YAML appended at top level (keys must not repeat the base ones).
	Extra string
	// Users replaces the users block (YAML list items, indented by 2).
	Users string
	// Backends limits the backends to these instance names (default all).
	Backends []string
	// LogLevel defaults to debug.
	LogLevel string
	// Weights sets backend weights by instance name (default 1).
	Weights map[string]int
	// Addr overrides a backend's host:port (e.g. through a forwarder).
	Addr map[string]string
	// BackendExtra adds YAML lines to a backend (e.g. "no_master: true").
	BackendExtra map[string]string
	// Failover adds lines (indented by 2) to the failover section, which
	// always holds the sandbox's replication account.
	Failover string
	// MonitorUser and MonitorPassword replace the sandbox's monitor account.
	MonitorUser, MonitorPassword string
	// LogFile sends the log to a file instead of the test's buffer.
	LogFile string
	// LogExtra adds lines (indented by 2) to the log section.
	LogExtra string
	// Environ adds variables to the process's environment.
	Environ []string
	// SkipCheck starts even if the pre-flight check finds errors (e.g. a
	// backend account with READ_ONLY ADMIN, as MariaDB's test suite needs).
	SkipCheck bool
	// Pprof serves Go's profiler on the proxy's HTTP port.
	Pprof bool
}

// StartProxy writes a config for the sandbox and starts the binary on
// free ports; the process is stopped when the test ends.
func (e *Env) StartProxy(t testing.TB, o ProxyOptions) *Proxy {
	t.Helper()
	p, err := e.StartProxyErr(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		p.checkRaces(t)
	})
	return p
}

// StartProxyErr is StartProxy for TestMain (no testing.TB).
func (e *Env) StartProxyErr(o ProxyOptions) (*Proxy, error) {
	p, err := e.ProxyConfig(o)
	if err != nil {
		return nil, err
	}
	var args []string
	if o.SkipCheck {
		args = append(args, "--skip-check")
	}
	return e.launch(p, o.Environ, args...)
}

// ProxyConfig writes the config StartProxy would run (free ports, the
// sandbox's servers) and starts nothing: p.ConfigPath and the addresses
// are set.
func (e *Env) ProxyConfig(o ProxyOptions) (*Proxy, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), AdminAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", ports[2]), log: &bytes.Buffer{}, done: make(chan error, 1),
	}
	users := o.Users
	if users == "" {
		users = "  - name: app\n    password: app\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nusers:\n%s", p.Addr, users)
	e.writeBackends(&b, o)
	mu, mp := sandbox.MonitorUser, sandbox.MonitorPassword
	if o.MonitorUser != "" {
		mu, mp = o.MonitorUser, o.MonitorPassword
	}
	fmt.Fprintf(&b, "monitor:\n  user: %s\n  password: %s\n", mu, mp)
	fmt.Fprintf(&b, "failover:\n  replication_user: %s\n  replication_password: %s\n%s", sandbox.ReplUser, sandbox.ReplPassword, o.Failover)
	fmt.Fprintf(&b, "admin:\n  listen: %s\n  user: admin\n  password: admin\n", p.AdminAddr)
	fmt.Fprintf(&b, "http:\n  listen: %s\n", p.HTTPAddr)
	if o.Pprof {
		b.WriteString("  pprof: true\n")
	}
	level := o.LogLevel
	if level == "" {
		level = "debug"
	}
	fmt.Fprintf(&b, "log:\n  level: %s\n  format: console\n", level)
	if o.LogFile != "" {
		fmt.Fprintf(&b, "  file: %s\n", o.LogFile)
	}
	b.WriteString(o.LogExtra)
	b.WriteString(o.Extra)
	f, err := os.CreateTemp(e.Dir, "proxy-*.yaml")
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		return nil, err
	}
	f.Close()
	p.ConfigPath = f.Name()
	return p, nil
}

// writeBackends writes the sandbox's servers: top-level backends for one
// cluster; a clusters section (and schemas dbK → cK) for several.
func (e *Env) writeBackends(b *strings.Builder, o ProxyOptions) {
	clusters := e.Sandbox.ClusterNames()
	multi := len(clusters) > 1
	indent := "  "
	if multi {
		indent = "      "
		b.WriteString("schemas:\n")
		for _, c := range clusters {
			fmt.Fprintf(b, "  %s: %s\n", sandbox.ClusterDatabase(c), c)
		}
		b.WriteString("clusters:\n")
	} else {
		b.WriteString("backends:\n")
	}
	for _, c := range clusters {
		if multi {
			fmt.Fprintf(b, "  - name: %s\n    backends:\n", c)
		}
		for _, in := range e.Sandbox.ClusterInstances(c) {
			if len(o.Backends) > 0 && !contains(o.Backends, in.Name) {
				continue
			}
			host, port := in.HostOrLoopback(), fmt.Sprint(in.Port)
			if a, ok := o.Addr[in.Name]; ok {
				host, port, _ = net.SplitHostPort(a)
			}
			fmt.Fprintf(b, "%s- name: %s\n%s  host: %s\n%s  port: %s\n", indent, in.Name, indent, host, indent, port)
			if x, ok := o.BackendExtra[in.Name]; ok {
				fmt.Fprintf(b, "%s  %s\n", indent, x)
			}
			if w, ok := o.Weights[in.Name]; ok {
				fmt.Fprintf(b, "%s  weight: %d\n", indent, w)
			}
		}
	}
}

// StartConfig runs the binary with a config file written elsewhere (by
// switchyard import, say); addr, adminAddr and httpAddr are the listeners
// it names ("" for none). The process is stopped when the test ends.
func (e *Env) StartConfig(t testing.TB, path, addr, adminAddr, httpAddr string) *Proxy {
	t.Helper()
	p := &Proxy{Addr: addr, AdminAddr: adminAddr, HTTPAddr: httpAddr, ConfigPath: path, log: &bytes.Buffer{}, done: make(chan error, 1)}
	p, err := e.launch(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		p.checkRaces(t)
	})
	return p
}

// launch starts the process and waits until its admin port answers (it
// is bound last).
func (e *Env) launch(p *Proxy, environ []string, args ...string) (*Proxy, error) {
	p.environ, p.args = environ, args
	p.cmd = exec.Command(e.Binary, append([]string{"run", "--config", p.ConfigPath, "--drain-timeout", "5s"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	p.cmd.Env = append(os.Environ(), environ...)
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.done <- p.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", p.AdminAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("switchyard exited early: %v\n%s", err, p.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.Stop()
	return nil, fmt.Errorf("switchyard did not listen on %s\n%s", p.AdminAddr, p.Log())
}

// Relaunch starts a stopped proxy again with the same config, ports and
// arguments; its log goes on in the same buffer.
func (e *Env) Relaunch(p *Proxy) error {
	if err := p.Stop(); err != nil {
		return err
	}
	p.done = make(chan error, 1)
	_, err := e.launch(p, p.environ, p.args...)
	return err
}

// Stop sends SIGTERM and waits for the process (SIGKILL after 10 s).
func (p *Proxy) Stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("switchyard did not stop on SIGTERM")
	}
}

// StopTimed sends SIGTERM and returns how long the process took to exit
// (SIGKILL after limit, reported as an error).
func (p *Proxy) StopTimed(limit time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return time.Since(start), err
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		return time.Since(start), fmt.Errorf("switchyard still running %v after SIGTERM", limit)
	}
}

// Exited returns the exit error once the process has ended.
func (p *Proxy) Exited(timeout time.Duration) (error, bool) {
	select {
	case err := <-p.done:
		p.done <- err
		return err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// ProcStatus reads a field (e.g. VmHWM, VmRSS, Threads) from
// /proc/PID/status; sizes are in kB.
func (p *Proxy) ProcStatus(field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(strings.TrimPrefix(line, field+":"))
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s not in /proc status", field)
}

// Admin opens a database/sql handle to the proxy's admin port.
func (p *Proxy) Admin(t testing.TB) *sql.DB {
	t.Helper()
	h, err := sql.Open("mysql", fmt.Sprintf("admin:admin@tcp(%s)/", p.AdminAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// AdminRows runs an admin statement and returns rows as column → value
// (NULL reads as "").
func AdminRows(t testing.TB, db *sql.DB, stmt string) []map[string]string {
	t.Helper()
	rows, err := backend.QueryMaps(context.Background(), db, stmt)
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	return rows
}

// Main is TestMain for packages sharing one sandbox and one proxy: it
// sets *env and *proxy, runs the tests, prints the proxy log's tail on
// failure, and cleans up.
func Main(m *testing.M, replicas, seed int, o ProxyOptions, env **Env, proxy **Proxy) int {
	e, err := Setup(replicas, seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	defer e.Teardown()
	p, err := e.StartProxyErr(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start proxy:", err)
		return 1
	}
	*env, *proxy = e, p
	code := m.Run()
	p.Stop()
	if log := p.Log(); strings.Contains(log, "WARNING: DATA RACE") {
		i := strings.Index(log, "WARNING: DATA RACE")
		fmt.Fprintln(os.Stderr, "the shared proxy reported a data race:\n"+log[i:min(len(log), i+6000)])
		code = 1
	}
	if code != 0 {
		log := p.Log()
		if len(log) > 20000 {
			log = log[len(log)-20000:]
		}
		fmt.Fprintln(os.Stderr, "---- proxy log (tail) ----\n"+log)
	}
	return code
}

// DSN returns a go-sql-driver DSN through the proxy.
func (p *Proxy) DSN(user, pass, db, params string) string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s?%s", user, pass, p.Addr, db, params)
}

// Open opens a database/sql handle through the proxy.
func (p *Proxy) Open(t testing.TB, db, params string) *sql.DB {
	t.Helper()
	h, err := sql.Open("mysql", p.DSN("app", "app", db, params))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Session opens one client connection (one proxy session) as user, with
// the database db (may be empty) and DSN params; closed when t ends.
func (p *Proxy) Session(t testing.TB, user, pass, db, params string) *sql.Conn {
	t.Helper()
	h, err := sql.Open("mysql", p.DSN(user, pass, db, params))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	c, err := h.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Direct opens a handle straight to the master as the backend app account,
// to compare what the proxy returns with what the server returns.
func (e *Env) Direct(t testing.TB, db, params string) *sql.DB {
	t.Helper()
	h, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?%s", sandbox.AppUser, sandbox.AppPassword,
		e.Sandbox.Master().Addr(), db, params))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// FreePorts returns n loopback ports free now.
func FreePorts(n int) ([]int, error) { return freePorts(n) }

// Ports for proxies and etcd come from below the sandboxes' range
// (sandbox.FreeBasePort: 12000 and up) and far from the kernel's
// ephemeral range (32768 and up by default): a port the kernel handed
// out with "127.0.0.1:0" is free again once closed, and any outgoing
// connection of a test running beside this one may take it before the
// proxy binds it (seen as "address already in use").
const portLo, portSpan = 5000, 7000

var portCursor atomic.Int64

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	if portCursor.Load() == 0 {
		portCursor.CompareAndSwap(0, int64(rand.IntN(portSpan))+1)
	}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > portSpan {
			return nil, errors.New("no free loopback port below 12000")
		}
		port := portLo + int(portCursor.Add(int64(1+rand.IntN(7))))%portSpan
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken: try the next
		}
		ls = append(ls, l)
		out = append(out, port)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sandboxLog is where sandbox progress goes: nowhere for MariaDB; for
// MySQL to stderr, so the once-per-machine chroot build is seen and timed.
func sandboxLog() io.Writer {
	if Flavor() == backend.MySQL {
		return os.Stderr
	}
	return io.Discard
}
