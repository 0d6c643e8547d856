// Command sysbench is the benchmark harness behind `make bench`: it starts
// a sandbox (master + 2 replicas), an L4 TCP relay (Debian's haproxy in
// mode tcp, the floor any proxy pays here) and Switchyard, runs Debian's
// sysbench against each of the three in the same run, and prints
// throughput, p95/p99 latency, ratios, each proxy's CPU time per query
// and peak RSS. It then measures memory: one client streaming 1,000,000
// rows, and 10,000 idle clients. Results also go to bench-results/ so
// runs can be compared. It prints; it never fails for being slow.
package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/switchyard/switchyard/sandbox"
	"github.com/switchyard/switchyard/test/harness"
)

var (
	flagTime      = flag.Duration("time", 5*time.Second, "duration of each sysbench run")
	flagRounds    = flag.Int("rounds", 3, "runs per case and target (the median is reported)")
	flagThreads   = flag.String("threads", "1,16,64", "sysbench thread counts")
	flagTests     = flag.String("tests", "oltp_point_select,oltp_read_write:text,oltp_read_write", "sysbench tests (\":text\": text protocol; otherwise prepared statements)")
	flagTables    = flag.Int("tables", 4, "sysbench --tables")
	flagTableSize = flag.Int("table-size", 10000, "sysbench --table-size")
	flagOut       = flag.String("out", "bench-results", "directory for result files")
	flagIdle      = flag.Int("idle-clients", 10000, "idle client connections for the memory check (0 skips)")
	flagStream    = flag.Int("stream-rows", 1000000, "rows streamed by one client for the memory check (0 skips)")
	flagReplicas  = flag.Int("replicas", 2, "sandbox replicas that serve the reads")
	flagProcs     = flag.Int("threads-setting", 0, "switchyard's threads setting (GOMAXPROCS; 0 = one per CPU)")
	flagBefore    = flag.String("before", "", "another switchyard, a binary or a git commit (built here), measured in the same rounds as switchyard-before")
	flagMarkdown  = flag.String("markdown", "", "write the ratio table (markdown) into this file between the bench markers")
	flagProfile   = flag.String("profile", "", "write Switchyard's CPU and mutex profiles of each case's first round into this directory")
)

// run is one sysbench run against one target.
type run struct {
	Test       string  `json:"test"`
	Threads    int     `json:"threads"`
	Target     string  `json:"target"`
	QPS        float64 `json:"qps"`
	TPS        float64 `json:"tps"`
	Queries    float64 `json:"queries"`
	Errors     float64 `json:"errors"`
	P95ms      float64 `json:"p95_ms"`
	P99ms      float64 `json:"p99_ms"`
	ProxyCPUus float64 `json:"proxy_cpu_us_per_query"` // 0 for direct
	ServerCPU  float64 `json:"servers_cpu_us_per_query"`
	// ClientCPU and Idle complete the machine's time per query: on a
	// saturated box throughput follows their sum with the proxy's and
	// the servers'.
	ClientCPU  float64 `json:"client_cpu_us_per_query"`
	Idle       float64 `json:"machine_idle_us_per_query"`
	PeakRSSMiB float64 `json:"proxy_peak_rss_mib"`
	Rounds     int     `json:"rounds"` // runs the medians come from
}

type report struct {
	Started    time.Time          `json:"started"`
	Duration   string             `json:"run_time"`
	Runs       []run              `json:"runs"`
	Memory     map[string]float64 `json:"memory_mib"`
	MemoryNote []string           `json:"memory_notes"`
}

// proxyTuning is added to the config the benchmark runs Switchyard with
// (-threads-setting sets the threads key; 0 keeps Go's default).
var proxyTuning = ""

// target is where sysbench connects; pid is the proxy in between (0 for
// a direct connection).
type target struct {
	name string
	addr string
	pid  int
	http string // the proxy's HTTP port, for -profile
}

func main() {
	flag.Parse()
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	for _, bin := range []string{"sysbench", "haproxy"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found: run 'make bench-deps' (apt-get install sysbench haproxy)", bin)
		}
	}
	raiseFileLimit()
	if *flagProcs > 0 {
		proxyTuning = fmt.Sprintf("threads: %d\n", *flagProcs)
	}
	env, err := harness.Setup(*flagReplicas, 11)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer env.Teardown()
	rep := &report{Started: time.Now(), Memory: map[string]float64{}}
	var out bytes.Buffer
	w := io.MultiWriter(os.Stdout, &out)

	if err := prepareData(env); err != nil {
		return err
	}
	relay, err := startHAProxy(env)
	if err != nil {
		return err
	}
	defer relay.Process.Kill()
	split, err := env.StartProxyErr(harness.ProxyOptions{LogLevel: "warn", Extra: proxyTuning, Pprof: *flagProfile != ""})
	if err != nil {
		return err
	}
	defer split.Stop()
	masterOnly, err := env.StartProxyErr(harness.ProxyOptions{LogLevel: "warn", Extra: proxyTuning, Backends: []string{"master"}})
	if err != nil {
		return err
	}
	defer masterOnly.Stop()
	// A cache rule on sysbench's point select: repeated ids are answered
	// by the proxy without a server.
	cached, err := env.StartProxyErr(harness.ProxyOptions{LogLevel: "warn", Extra: proxyTuning +
		"rules:\n  - name: point-select\n    match: {regex: '^SELECT c FROM sbtest[0-9]+ WHERE id=\\?$'}\n    cache_ttl: 10m\ncache:\n  max_size: 256MiB\n"})
	if err != nil {
		return err
	}
	defer cached.Stop()

	servers := serverPids(env)
	targets := []target{
		{"direct", env.Sandbox.Master().Addr(), 0, ""},
		{"l4-relay", relay.addr, relay.Process.Pid, ""},
		{"switchyard", split.Addr, split.Pid(), split.HTTPAddr},
	}
	// Point selects also go through the relay balanced over the
	// replicas: the same servers Switchyard reads from.
	relayReplicas := target{"l4-relay-replicas", relay.replicasAddr, relay.Process.Pid, ""}
	if *flagBefore != "" {
		bin, err := beforeBinary(*flagBefore, env.Dir)
		if err != nil {
			return err
		}
		own := env.Binary
		env.Binary = bin
		before, err := env.StartProxyErr(harness.ProxyOptions{LogLevel: "warn", Extra: proxyTuning})
		env.Binary = own
		if err != nil {
			return fmt.Errorf("the -before binary: %w", err)
		}
		defer before.Stop()
		targets = append(targets, target{"switchyard-before", before.Addr, before.Pid(), ""})
	}
	fmt.Fprintf(w, "sysbench %s per run, median of %d interleaved runs; sandbox master + %d replicas on this machine; l4-relay = haproxy mode tcp to the master; switchyard routes reads to the replicas\n", *flagTime, *flagRounds, *flagReplicas)
	for _, test := range strings.Split(*flagTests, ",") {
		if test == "" {
			continue
		}
		for _, th := range parseInts(*flagThreads) {
			caseTargets := targets
			if test == "oltp_point_select" && th == 16 {
				caseTargets = append(caseTargets[:len(caseTargets):len(caseTargets)], target{"switchyard-master-only", masterOnly.Addr, masterOnly.Pid(), ""})
			}
			if test == "oltp_point_select" {
				caseTargets = append(caseTargets[:len(caseTargets):len(caseTargets)], relayReplicas,
					target{"switchyard-cached", cached.Addr, cached.Pid(), ""})
			}
			// Rounds interleave the targets, so a slow moment of the
			// machine hits all of them; each figure is the median.
			byTarget := make([][]run, len(caseTargets))
			for round := 0; round < *flagRounds; round++ {
				for i, tg := range caseTargets {
					var profiled chan error
					if *flagProfile != "" && tg.http != "" && round == 0 {
						profiled = profile(tg.http, fmt.Sprintf("%s-%d", strings.ReplaceAll(test, ":", "-"), th))
					}
					r, err := sysbench(test, th, tg, servers)
					if profiled != nil {
						if perr := <-profiled; perr != nil {
							return perr
						}
					}
					if err != nil {
						return err
					}
					byTarget[i] = append(byTarget[i], r)
				}
			}
			var group []run
			for _, rs := range byTarget {
				group = append(group, median(rs))
			}
			printGroup(w, group)
			rep.Runs = append(rep.Runs, group...)
		}
	}
	if *flagMarkdown != "" {
		if err := writeMarkdown(*flagMarkdown, markdownTable(rep.Runs, rep.Started, *flagRounds)); err != nil {
			return err
		}
		fmt.Fprintf(w, "\nthe table is in %s\n", *flagMarkdown)
	}
	split.Stop()
	masterOnly.Stop()
	cached.Stop()
	relay.Process.Kill()

	if err := memoryChecks(env, w, rep); err != nil {
		return err
	}
	rep.Duration = time.Since(rep.Started).Round(time.Second).String()
	return save(rep, out.Bytes())
}

// beforeBinary returns -before as a binary: the file it names, or the
// switchyard of the git commit it names, built in a temporary worktree.
func beforeBinary(before, dir string) (string, error) {
	if st, err := os.Stat(before); err == nil && !st.IsDir() {
		return before, nil
	}
	tree := filepath.Join(dir, "before-src")
	bin := filepath.Join(dir, "switchyard-before")
	if out, err := exec.Command("git", "worktree", "add", "--detach", "-f", tree, before).CombinedOutput(); err != nil {
		return "", fmt.Errorf("-before %s is neither a file nor a commit: %v: %s", before, err, out)
	}
	defer exec.Command("git", "worktree", "remove", "--force", tree).Run()
	build := exec.Command("go", "build", "-o", bin, "./cmd/switchyard")
	build.Dir = tree
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build switchyard at %s: %v: %s", before, err, out)
	}
	return bin, nil
}

// median takes, field by field, the median of runs of one case.
func median(rs []run) run {
	out := rs[0]
	pick := func(get func(r run) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	out.QPS = pick(func(r run) float64 { return r.QPS })
	out.TPS = pick(func(r run) float64 { return r.TPS })
	out.Queries = pick(func(r run) float64 { return r.Queries })
	out.Errors = pick(func(r run) float64 { return r.Errors })
	out.P95ms = pick(func(r run) float64 { return r.P95ms })
	out.P99ms = pick(func(r run) float64 { return r.P99ms })
	out.ProxyCPUus = pick(func(r run) float64 { return r.ProxyCPUus })
	out.ServerCPU = pick(func(r run) float64 { return r.ServerCPU })
	out.ClientCPU = pick(func(r run) float64 { return r.ClientCPU })
	out.Idle = pick(func(r run) float64 { return r.Idle })
	out.PeakRSSMiB = pick(func(r run) float64 { return r.PeakRSSMiB })
	out.Rounds = len(rs)
	return out
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// raiseFileLimit lets this process and the proxies it starts hold 10,000
// client sockets each.
func raiseFileLimit() {
	lim := syscall.Rlimit{Cur: 65536, Max: 65536}
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// prepareData creates the sysbench tables on the master and waits until
// every replica has them.
func prepareData(env *harness.Env) error {
	m := env.Sandbox.Master()
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/", sandbox.AppUser, sandbox.AppPassword, m.Addr()))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE IF NOT EXISTS sbtest"); err != nil {
		return fmt.Errorf("create sbtest: %w", err)
	}
	args := append(sysbenchArgs("oltp_read_write", 4, m.Addr()), "prepare")
	if out, err := exec.Command("sysbench", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("sysbench prepare: %v\n%s", err, out)
	}
	var pos string
	if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		return err
	}
	for _, in := range env.Sandbox.ReplicaInstances() {
		rdb, err := in.DB()
		if err != nil {
			return err
		}
		var res sql.NullInt64
		err = rdb.QueryRow("SELECT MASTER_GTID_WAIT(?, 60)", pos).Scan(&res)
		rdb.Close()
		if err != nil || res.Int64 != 0 {
			return fmt.Errorf("replica %s did not catch up with %s: %v", in.Name, pos, err)
		}
	}
	return nil
}

// sysbenchArgs runs test (suffixed ":text" for the text protocol;
// otherwise sysbench prepares its statements) through addr.
func sysbenchArgs(test string, threads int, addr string) []string {
	host, port, _ := net.SplitHostPort(addr)
	mode := "--db-ps-mode=auto"
	if name, ok := strings.CutSuffix(test, ":text"); ok {
		test, mode = name, "--db-ps-mode=disable"
	}
	return []string{test, mode, "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
		"--mysql-user=" + sandbox.AppUser, "--mysql-password=" + sandbox.AppPassword, "--mysql-db=sbtest",
		fmt.Sprintf("--tables=%d", *flagTables), fmt.Sprintf("--table-size=%d", *flagTableSize),
		fmt.Sprintf("--threads=%d", threads)}
}

type relayProc struct {
	*exec.Cmd
	addr         string // to the master
	replicasAddr string // round-robin over the replicas, a connection each
}

// startHAProxy runs haproxy in mode tcp: one port in front of the master,
// one balancing connections over the replicas.
func startHAProxy(env *harness.Env) (*relayProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	replicasAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	var replicas strings.Builder
	for _, in := range env.Sandbox.ReplicaInstances() {
		fmt.Fprintf(&replicas, "  server %s %s\n", in.Name, in.Addr())
	}
	cfg := fmt.Sprintf(`global
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen mysql
  bind %s
  server master %s
listen replicas
  bind %s
  balance roundrobin
%s`, addr, env.Sandbox.Master().Addr(), replicasAddr, replicas.String())
	path := filepath.Join(env.Dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("haproxy", "-db", "-f", path)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start haproxy: %w", err)
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return &relayProc{cmd, addr, replicasAddr}, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	return nil, fmt.Errorf("haproxy did not listen on %s: %s", addr, stderr.String())
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func serverPids(env *harness.Env) []int {
	var pids []int
	for _, in := range env.Sandbox.Instances {
		data, err := os.ReadFile(in.PidFile())
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ticksPerSecond is USER_HZ, the unit of /proc's times on Linux.
const ticksPerSecond = 100

// cpuTime returns user+sys time of a process.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// machineIdle is the time all CPUs have spent idle or waiting for I/O
// since boot (/proc/stat's first line).
func machineIdle() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait ...
	if len(f) < 6 {
		return 0
	}
	idle, _ := strconv.ParseInt(f[4], 10, 64)
	iowait, _ := strconv.ParseInt(f[5], 10, 64)
	return time.Duration(idle+iowait) * time.Second / ticksPerSecond
}

// procStatusKiB reads a kB field (VmRSS, VmHWM) of /proc/PID/status.
func procStatusKiB(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return n
		}
	}
	return 0
}

// resetPeakRSS makes VmHWM start again from the current RSS.
func resetPeakRSS(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

var (
	reQueries   = regexp.MustCompile(`queries:\s+(\d+)\s+\(([\d.]+) per sec`)
	reTx        = regexp.MustCompile(`transactions:\s+(\d+)\s+\(([\d.]+) per sec`)
	reErrors    = regexp.MustCompile(`ignored errors:\s+(\d+)`)
	reHistogram = regexp.MustCompile(`^\s*([\d.]+)\s+\|\**\s+(\d+)\s*$`)
)

func sysbench(test string, threads int, tg target, servers []int) (run, error) {
	r := run{Test: test, Threads: threads, Target: tg.name}
	args := append(sysbenchArgs(test, threads, tg.addr),
		fmt.Sprintf("--time=%d", int(flagTime.Seconds())), "--histogram=on", "--report-interval=0", "run")
	if tg.pid != 0 {
		resetPeakRSS(tg.pid)
	}
	proxyBefore := cpuTime(tg.pid)
	var serversBefore time.Duration
	for _, p := range servers {
		serversBefore += cpuTime(p)
	}
	idleBefore := machineIdle()
	cmd := exec.Command("sysbench", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("sysbench %s %d threads via %s: %v\n%s", test, threads, tg.name, err, out)
	}
	idle := machineIdle() - idleBefore
	var serversAfter time.Duration
	for _, p := range servers {
		serversAfter += cpuTime(p)
	}
	text := string(out)
	if m := reQueries.FindStringSubmatch(text); m != nil {
		r.Queries, _ = strconv.ParseFloat(m[1], 64)
		r.QPS, _ = strconv.ParseFloat(m[2], 64)
	}
	if m := reTx.FindStringSubmatch(text); m != nil {
		r.TPS, _ = strconv.ParseFloat(m[2], 64)
	}
	if m := reErrors.FindStringSubmatch(text); m != nil {
		r.Errors, _ = strconv.ParseFloat(m[1], 64)
	}
	if r.Queries == 0 {
		return r, fmt.Errorf("sysbench %s via %s: no queries in output:\n%s", test, tg.name, text)
	}
	r.P95ms, r.P99ms = percentiles(text)
	if tg.pid != 0 {
		r.ProxyCPUus = float64((cpuTime(tg.pid) - proxyBefore).Microseconds()) / r.Queries
		r.PeakRSSMiB = procStatusKiB(tg.pid, "VmHWM") / 1024
	}
	r.ServerCPU = float64((serversAfter - serversBefore).Microseconds()) / r.Queries
	client := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	r.ClientCPU = float64(client.Microseconds()) / r.Queries
	r.Idle = float64(idle.Microseconds()) / r.Queries
	return r, nil
}

// profile fetches Switchyard's CPU profile and mutex contention over most
// of one sysbench run, into -profile/{cpu,mutex}-NAME.pprof.
func profile(httpAddr, name string) chan error {
	done := make(chan error, 1)
	seconds := max(1, int(flagTime.Seconds())-1)
	go func() {
		var errs []error
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, kind := range []string{"profile", "mutex"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fetchProfile(httpAddr, kind, seconds, name); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		done <- errors.Join(errs...)
	}()
	return done
}

func fetchProfile(httpAddr, kind string, seconds int, name string) error {
	req, err := http.NewRequest("GET", fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", httpAddr, kind, seconds), nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth("admin", "admin") // the harness's HTTP credentials
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", kind, resp.Status)
	}
	file := "cpu"
	if kind == "mutex" {
		file = "mutex"
	}
	if err := os.MkdirAll(*flagProfile, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(*flagProfile, file+"-"+name+".pprof"))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", kind, err)
	}
	return f.Close()
}

// percentiles reads p95 and p99 (ms per event) from sysbench's histogram.
func percentiles(text string) (p95, p99 float64) {
	type bucket struct{ v, n float64 }
	var bs []bucket
	total := 0.0
	for _, line := range strings.Split(text, "\n") {
		if m := reHistogram.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			n, _ := strconv.ParseFloat(m[2], 64)
			bs = append(bs, bucket{v, n})
			total += n
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].v < bs[j].v })
	at := func(q float64) float64 {
		seen := 0.0
		for _, b := range bs {
			seen += b.n
			if seen >= q*total {
				return b.v
			}
		}
		return math.NaN()
	}
	return at(0.95), at(0.99)
}

func printGroup(w io.Writer, group []run) {
	fmt.Fprintf(w, "\n%s, %d threads\n", group[0].Test, group[0].Threads)
	fmt.Fprintf(w, "  %-24s %10s %9s %9s %12s %13s %12s %10s %10s %7s\n", "target", "qps", "p95 ms", "p99 ms", "proxy µs/q", "servers µs/q", "sysbench µs/q", "idle µs/q", "peak RSS", "errors")
	byName := map[string]run{}
	for _, r := range group {
		byName[r.Target] = r
		proxyCPU, rss := "-", "-"
		if r.Target != "direct" {
			proxyCPU, rss = fmt.Sprintf("%.1f", r.ProxyCPUus), fmt.Sprintf("%.1f MiB", r.PeakRSSMiB)
		}
		fmt.Fprintf(w, "  %-24s %10.1f %9.3f %9.3f %12s %13.1f %12.1f %10.1f %10s %7.0f\n", r.Target, r.QPS, r.P95ms, r.P99ms, proxyCPU, r.ServerCPU, r.ClientCPU, r.Idle, rss, r.Errors)
	}
	d, l, s := byName["direct"], byName["l4-relay"], byName["switchyard"]
	fmt.Fprintf(w, "  ratios: switchyard/direct %.2f  switchyard/l4-relay %.2f  l4-relay/direct %.2f  CPU per query switchyard/l4-relay %.2f\n",
		s.QPS/d.QPS, s.QPS/l.QPS, l.QPS/d.QPS, s.ProxyCPUus/l.ProxyCPUus)
	fmt.Fprintf(w, "  p99 added over direct: l4-relay %+.0f µs, switchyard %+.0f µs\n", (l.P99ms-d.P99ms)*1000, (s.P99ms-d.P99ms)*1000)
	if lr, ok := byName["l4-relay-replicas"]; ok {
		fmt.Fprintf(w, "  the same servers: switchyard/l4-relay-replicas %.2f, CPU per query %.2f\n", s.QPS/lr.QPS, s.ProxyCPUus/lr.ProxyCPUus)
	}
	if mo, ok := byName["switchyard-master-only"]; ok {
		fmt.Fprintf(w, "  reads to the master only: switchyard/l4-relay %.2f, CPU per query %.2f\n", mo.QPS/l.QPS, mo.ProxyCPUus/l.ProxyCPUus)
	}
	if b, ok := byName["switchyard-before"]; ok {
		fmt.Fprintf(w, "  the -before binary: before/l4-relay %.2f, CPU per query %.2f\n", b.QPS/l.QPS, b.ProxyCPUus/l.ProxyCPUus)
	}
}

// markdownTable is the ratio table of docs/performance.md: for each
// workload and thread count, Switchyard's throughput and CPU per query
// against the L4 relay (and the -before binary's, when measured).
func markdownTable(runs []run, started time.Time, rounds int) string {
	var b strings.Builder
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	fmt.Fprintf(&b, "Measured %s on commit %s, %d interleaved rounds of %s, medians (`make bench`)",
		started.UTC().Format("2006-01-02 15:04 MST"), strings.TrimSpace(string(commit)), rounds, *flagTime)
	if *flagBefore != "" {
		fmt.Fprintf(&b, "; before: %s, measured in the same rounds", *flagBefore)
	}
	b.WriteString(".\n\n")
	b.WriteString("| workload | threads | qps vs relay | CPU/query vs relay | proxy µs/query | relay µs/query | before: qps, CPU vs relay |\n|---|---|---|---|---|---|---|\n")
	type key struct {
		test    string
		threads int
	}
	groups := map[key]map[string]run{}
	var order []key
	for _, r := range runs {
		k := key{r.Test, r.Threads}
		if groups[k] == nil {
			groups[k] = map[string]run{}
			order = append(order, k)
		}
		groups[k][r.Target] = r
	}
	for _, k := range order {
		g := groups[k]
		s, l := g["switchyard"], g["l4-relay"]
		name := k.test
		if t, ok := strings.CutSuffix(name, ":text"); ok {
			name = t + ", text protocol"
		} else if name != "oltp_point_select" {
			name += ", prepared statements"
		}
		row := func(name string, relay run) {
			before := "-"
			if bf, ok := g["switchyard-before"]; ok {
				before = fmt.Sprintf("%.2f×, %.2f×", bf.QPS/relay.QPS, bf.ProxyCPUus/relay.ProxyCPUus)
			}
			fmt.Fprintf(&b, "| %s | %d | %.2f× | %.2f× | %.1f | %.1f | %s |\n", name, k.threads, s.QPS/relay.QPS, s.ProxyCPUus/relay.ProxyCPUus,
				s.ProxyCPUus, relay.ProxyCPUus, before)
		}
		row(name, l)
		if lr, ok := g["l4-relay-replicas"]; ok {
			row(name+", relay balanced over the replicas", lr)
		}
	}
	fmt.Fprintf(&b, "\nThe machine's time per query at 16 threads, µs (servers, proxy, sysbench, idle; the sum is what %d cores give each query):\n\n", runtime.NumCPU())
	b.WriteString("| workload | target | qps | servers | proxy | sysbench | idle |\n|---|---|---|---|---|---|---|\n")
	for _, k := range order {
		if k.threads != 16 {
			continue
		}
		for _, t := range []string{"l4-relay", "l4-relay-replicas", "switchyard", "switchyard-before"} {
			if r, ok := groups[k][t]; ok {
				fmt.Fprintf(&b, "| %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f |\n", k.test, t, r.QPS, r.ServerCPU, r.ProxyCPUus, r.ClientCPU, r.Idle)
			}
		}
	}
	return b.String()
}

// writeMarkdown puts table between the bench markers of path.
func writeMarkdown(path, table string) error {
	const start, end = "<!-- bench:start -->", "<!-- bench:end -->"
	text, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i, j := bytes.Index(text, []byte(start)), bytes.Index(text, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s … %s markers", path, start, end)
	}
	out := append(append(append([]byte{}, text[:i+len(start)]...), "\n"+table...), text[j:]...)
	return os.WriteFile(path, out, 0o644)
}

// memoryChecks measures the proxy's RSS while one client streams a large
// result, and with many idle clients connected (multiplexing on, so idle
// sessions hold no backend connection).
func memoryChecks(env *harness.Env, w io.Writer, rep *report) error {
	if *flagStream == 0 && *flagIdle == 0 {
		return nil
	}
	p, err := env.StartProxyErr(harness.ProxyOptions{LogLevel: "warn", Extra: proxyTuning + "max_client_connections: 20000\npool:\n  multiplexing: true\n  max_connections: 64\n  max_idle: 64\n"})
	if err != nil {
		return err
	}
	defer p.Stop()
	pid := p.Pid()
	fmt.Fprintf(w, "\nmemory (switchyard with multiplexing on, pool of 64 per server)\n")
	base := procStatusKiB(pid, "VmRSS") / 1024
	rep.Memory["baseline_rss"] = base
	fmt.Fprintf(w, "  baseline RSS                          %7.1f MiB\n", base)
	if *flagStream > 0 {
		db, err := sql.Open("mysql", p.DSN(sandbox.AppUser, sandbox.AppPassword, "sbtest", ""))
		if err != nil {
			return err
		}
		resetPeakRSS(pid)
		rows, err := db.Query(fmt.Sprintf("SELECT seq, REPEAT('x', 100) FROM seq_1_to_%d", *flagStream))
		if err != nil {
			db.Close()
			return fmt.Errorf("stream: %w", err)
		}
		n, bytesRead := 0, 0
		var id int64
		var pad []byte
		for rows.Next() {
			if err := rows.Scan(&id, &pad); err != nil {
				db.Close()
				return err
			}
			n++
			bytesRead += len(pad) + 8
		}
		err = rows.Err()
		db.Close()
		if err != nil || n != *flagStream {
			return fmt.Errorf("stream: got %d rows: %v", n, err)
		}
		peak := procStatusKiB(pid, "VmHWM") / 1024
		rep.Memory["stream_peak_rss"] = peak
		fmt.Fprintf(w, "  peak RSS streaming %d rows (%d MiB) %7.1f MiB\n", n, bytesRead>>20, peak)
	}
	if *flagIdle > 0 {
		rss, err := idleClients(p, *flagIdle)
		if err != nil {
			return err
		}
		rep.Memory["idle_clients_rss"] = rss
		note := fmt.Sprintf("%d idle clients: RSS %.1f MiB (%.1f KiB per client above baseline)", *flagIdle, rss, (rss-base)*1024/float64(*flagIdle))
		rep.MemoryNote = append(rep.MemoryNote, note)
		fmt.Fprintf(w, "  RSS with %d idle clients            %7.1f MiB (%.1f KiB per client above baseline)\n", *flagIdle, rss, (rss-base)*1024/float64(*flagIdle))
	}
	return nil
}

// idleClients opens n authenticated client connections through the proxy,
// checks each with a query, and reads the proxy's RSS while all are open.
func idleClients(p *harness.Proxy, n int) (float64, error) {
	db, err := sql.Open("mysql", p.DSN(sandbox.AppUser, sandbox.AppPassword, "sbtest", "timeout=30s"))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxIdleConns(n)
	ctx := context.Background()
	conns := make([]*sql.Conn, n)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	next := make(chan int)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := db.Conn(ctx)
				if err == nil {
					var one int
					err = c.QueryRowContext(ctx, "SELECT 1").Scan(&one)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("idle client %d: %w", i, err)
				}
				conns[i] = c
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if firstErr != nil {
		return 0, firstErr
	}
	time.Sleep(2 * time.Second) // let the proxy settle (GC) with all clients idle
	return procStatusKiB(p.Pid(), "VmRSS") / 1024, nil
}

func save(rep *report, text []byte) error {
	if err := os.MkdirAll(*flagOut, 0o755); err != nil {
		return err
	}
	stamp := rep.Started.UTC().Format("20060102-150405")
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(*flagOut, "sysbench-"+stamp+".json"), js, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*flagOut, "sysbench-"+stamp+".txt"), text, 0o644); err != nil {
		return err
	}
	fmt.Printf("\nresults written to %s/sysbench-%s.{txt,json} (total %s)\n", *flagOut, stamp, rep.Duration)
	return nil
}
