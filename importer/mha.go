package importer

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// An MHA config is INI: "[server default]" and "[serverN]" sections of
// key=value lines, # or ; comments. The global masterha_default.cnf holds
// [server default] values that app1.cnf overrides.

type iniLine struct {
	key, val string
	from     origin
}

type iniSection struct {
	name  string
	from  origin
	lines []iniLine
}

func (s *iniSection) get(key string) (iniLine, bool) {
	for i := len(s.lines) - 1; i >= 0; i-- { // the last one wins
		if s.lines[i].key == key {
			return s.lines[i], true
		}
	}
	return iniLine{}, false
}

func readINI(path string) ([]*iniSection, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	name := filepath.Base(path)
	var out []*iniSection
	var cur *iniSection
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, &InputError{name, n, fmt.Sprintf("section header %q has no closing ]", line)}
			}
			cur = &iniSection{name: strings.TrimSpace(line[1 : len(line)-1]), from: at(name, n)}
			out = append(out, cur)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, &InputError{name, n, fmt.Sprintf("%q is not key=value", line)}
			}
			if cur == nil {
				return nil, &InputError{name, n, "a setting before any [section]"}
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
				v = v[1 : len(v)-1]
			}
			cur.lines = append(cur.lines, iniLine{key: strings.TrimSpace(k), val: v, from: at(name, n)})
		}
	}
	return out, sc.Err()
}

// Why each MHA setting Switchyard does not need is left out.
var mhaSkipped = map[string]string{
	"manager_workdir":        "Switchyard keeps its state in failover.state_file (and etcd when coordinated)",
	"manager_log":            "Switchyard logs to log.file (or the journal)",
	"remote_workdir":         "no files are copied to the servers: Switchyard works over SQL only",
	"master_binlog_dir":      "no binlog is copied over SSH: replicas catch up from each other by GTID",
	"ssh_user":               "Switchyard itself needs no SSH access (the MHA scripts called as hooks get --ssh_user)",
	"ssh_host":               "Switchyard needs no SSH access to the servers",
	"ssh_port":               "Switchyard needs no SSH access to the servers",
	"ssh_options":            "Switchyard needs no SSH access to the servers",
	"ssh_connection_timeout": "Switchyard needs no SSH access to the servers",
	"client_bindir":          "Switchyard runs no mysql client binaries",
	"client_libdir":          "Switchyard runs no mysql client binaries",
	"log_level":              "set log.level (debug, info, warn, error)",
	"skip_init_ssh_check":    "Switchyard needs no SSH access to the servers",
	"skip_reset_slave":       "a promoted replica's replication settings are always reset",
	"handle_raw_binlog":      "no binlog files are read: GTID positions only",
	"disable_log_bin":        "relay logs are applied by the candidate's own SQL thread",
	"master_pid_file":        "no process is inspected over SSH",
	"use_gtid_auto_pos":      "Switchyard always repoints replicas by GTID",
	"check_repl_filter":      "replication filters are the servers' business; `switchyard check` compares the servers' settings",
	"check_repl_delay":       "a lagging candidate is still promoted after it applied its relay log (failover.apply_timeout bounds the wait)",
	"latest_priority":        "the most advanced replica is always preferred; candidate: true breaks ties",
	"multi_tier_slave":       "replicas of replicas are repointed like any replica",
	"ping_type":              "the monitor connects and reads the replication state at every check (like ping_type=CONNECT plus SELECT)",
	"secondary_check_script": "a master is confirmed dead through its replicas: while they still receive from it, Switchyard does not fail over",
	"shutdown_script":        "the old master is fenced with read_only and its connections are killed; nothing is powered off",
	"report_script":          "use the alert rules in deploy/prometheus or a post_failover hook",
	"init_conf_load_script":  "passwords can be read from the environment (${VAR}) instead",
	"ignore_fail":            "a failover never waits for an unreachable replica: it goes on without it",
	"wait_on_monitor_error":  "the monitor retries every monitor.interval",
	"wait_on_failover_error": "the monitor retries every monitor.interval",
}

// mhaServerKeys are the per-server keys read here (others are skipped or
// unknown).
var mhaServerKeys = map[string]bool{"hostname": true, "ip": true, "port": true, "candidate_master": true, "no_master": true}

// mhaGlobalKeys are the [server default] keys read here.
var mhaGlobalKeys = map[string]bool{"user": true, "password": true, "repl_user": true, "repl_password": true,
	"ping_interval": true, "master_ip_failover_script": true, "master_ip_online_change_script": true}

// ReadMHA adds an MHA application config (and the global defaults file,
// "" if none) to the plan: one cluster, named after the file (app1.cnf:
// app1), as MHA runs one manager per application config.
func ReadMHA(p *Plan, appPath, defaultPath string) error {
	var global []*iniSection
	if defaultPath != "" {
		var err error
		if global, err = readINI(defaultPath); err != nil {
			return err
		}
		if src := defaultPath + " (MHA global defaults)"; !slices.Contains(p.Sources, src) {
			p.Sources = append(p.Sources, src)
		}
	}
	app, err := readINI(appPath)
	if err != nil {
		return err
	}
	p.Sources = append(p.Sources, appPath+" (MHA application)")
	// [server default]: the global file first, the application's after.
	def := &iniSection{name: "server default"}
	var servers []*iniSection
	for _, s := range append(global, app...) {
		switch {
		case s.name == "server default":
			def.lines = append(def.lines, s.lines...)
		case strings.HasPrefix(s.name, "server"):
			servers = append(servers, s)
		default:
			file, line := splitOrigin(s.from)
			return &InputError{file, line, fmt.Sprintf("unknown section [%s] (MHA has [server default] and [serverN])", s.name)}
		}
	}
	base := filepath.Base(appPath)
	c := p.newCluster(strings.TrimSuffix(base, filepath.Ext(base)), base)
	if err := mhaDefaults(p, c, def); err != nil {
		return err
	}
	if len(servers) == 0 {
		return &InputError{base, 0, "no [serverN] section: MHA needs the servers listed"}
	}
	for _, s := range servers {
		if err := mhaServer(p, c, s, def); err != nil {
			return err
		}
	}
	return nil
}

func mhaDefaults(p *Plan, c *Cluster, def *iniSection) error {
	for _, l := range def.lines {
		if err := checkMHAKey(l, mhaGlobalKeys); err != nil {
			return err
		}
		if why, ok := mhaSkipped[l.key]; ok {
			p.skip(l.from, l.key+"="+l.val, why)
		}
	}
	if l, ok := def.get("user"); ok {
		c.MonitorUser = value{l.val, l.from, "MHA's account: monitors, fences and promotes"}
	}
	if l, ok := def.get("password"); ok {
		c.MonitorPassword = value{l.val, l.from, ""}
	}
	if l, ok := def.get("repl_user"); ok {
		c.ReplUser = value{l.val, l.from, ""}
	}
	if l, ok := def.get("repl_password"); ok {
		c.ReplPassword = value{l.val, l.from, ""}
	}
	if l, ok := def.get("ping_interval"); ok {
		n, err := strconv.Atoi(l.val)
		if err != nil || n <= 0 {
			file, line := splitOrigin(l.from)
			return &InputError{file, line, fmt.Sprintf("ping_interval=%q is not a number of seconds", l.val)}
		}
		c.MonitorInterval = value{fmt.Sprintf("%ds", n), l.from, "MHA pings every ping_interval seconds"}
		c.MonitorFailCount = value{"3", l.from, "MHA declares the master dead after 3 failed pings"}
	}
	c.FailoverEnabled = value{"true", "", "MHA's manager fails over automatically"}
	ssh := ""
	if l, ok := def.get("ssh_user"); ok && l.val != "" {
		ssh = " --ssh_user=" + l.val // the scripts reach the hosts over SSH themselves
	}
	if l, ok := def.get("master_ip_failover_script"); ok && l.val != "" {
		// MHA calls it with --command=stopssh before, --command=start after.
		base := l.val + ssh + " --orig_master_host=$SWITCHYARD_OLD_MASTER_HOST --orig_master_ip=$SWITCHYARD_OLD_MASTER_HOST --orig_master_port=$SWITCHYARD_OLD_MASTER_PORT"
		c.PreFailover = value{base + " --command=stopssh", l.from, "called as MHA calls it before promoting (a failure aborts the failover)"}
		c.PostFailover = value{base + " --command=start --new_master_host=$SWITCHYARD_NEW_MASTER_HOST --new_master_ip=$SWITCHYARD_NEW_MASTER_HOST --new_master_port=$SWITCHYARD_NEW_MASTER_PORT",
			l.from, "called as MHA calls it once the new master is writable"}
	}
	if l, ok := def.get("master_ip_online_change_script"); ok && l.val != "" {
		c.PostSwitchover = value{l.val + ssh + " --command=start --orig_master_host=$SWITCHYARD_OLD_MASTER_HOST --orig_master_ip=$SWITCHYARD_OLD_MASTER_HOST --orig_master_port=$SWITCHYARD_OLD_MASTER_PORT --new_master_host=$SWITCHYARD_NEW_MASTER_HOST --new_master_ip=$SWITCHYARD_NEW_MASTER_HOST --new_master_port=$SWITCHYARD_NEW_MASTER_PORT",
			l.from, "called as MHA's online change calls it after the switch (the --command=stop before it is Switchyard's own fence)"}
	}
	return nil
}

func mhaServer(p *Plan, c *Cluster, s *iniSection, def *iniSection) error {
	var b Backend
	b.Name = s.name
	b.Port = 3306
	if l, ok := def.get("port"); ok {
		if n, err := strconv.Atoi(l.val); err == nil {
			b.Port = n
		}
	}
	b.Weight = 1
	b.From = append(b.From, s.from)
	for _, l := range s.lines {
		if err := checkMHAKey(l, mhaServerKeys); err != nil {
			return err
		}
		file, line := splitOrigin(l.from)
		switch l.key {
		case "hostname":
			b.Host = l.val
		case "ip":
			if b.Host == "" || net4or6(l.val) {
				b.Host = l.val
			}
		case "port":
			n, err := strconv.Atoi(l.val)
			if err != nil || n <= 0 || n > 65535 {
				return &InputError{file, line, fmt.Sprintf("port=%q is not a port", l.val)}
			}
			b.Port = n
		case "candidate_master":
			b.Candidate = l.val == "1"
		case "no_master":
			b.NoMaster = l.val == "1"
		case "user", "password", "repl_user", "repl_password":
			p.skip(l.from, fmt.Sprintf("[%s] %s", s.name, l.key), "Switchyard uses one monitor and one replication account on every server (the [server default] ones)")
		default:
			why, ok := mhaSkipped[l.key]
			if !ok {
				why = "Switchyard takes this setting from [server default] only"
			}
			p.skip(l.from, fmt.Sprintf("[%s] %s=%s", s.name, l.key, l.val), why)
		}
	}
	if b.Host == "" {
		file, line := splitOrigin(s.from)
		return &InputError{file, line, fmt.Sprintf("[%s] has no hostname", s.name)}
	}
	if b.Candidate && b.NoMaster {
		file, line := splitOrigin(s.from)
		return &InputError{file, line, fmt.Sprintf("[%s] is both candidate_master=1 and no_master=1", s.name)}
	}
	if other, _ := p.backend(b.Host, b.Port); other != nil {
		file, line := splitOrigin(s.from)
		return &InputError{file, line, fmt.Sprintf("[%s] repeats %s:%d (of %s)", s.name, b.Host, b.Port, strings.Join(other.From, ", "))}
	}
	c.Backends = append(c.Backends, b)
	return nil
}

// checkMHAKey refuses keys MHA itself would refuse ("Parameter name … is
// invalid!"): a typo must not silently change what a failover does.
func checkMHAKey(l iniLine, known map[string]bool) error {
	if known[l.key] || mhaSkipped[l.key] != "" || mhaAnySection[l.key] {
		return nil
	}
	file, line := splitOrigin(l.from)
	return &InputError{file, line, fmt.Sprintf("unknown MHA parameter %q", l.key)}
}

// mhaAnySection are keys valid in [server default] and [serverN] alike.
var mhaAnySection = map[string]bool{"user": true, "password": true, "repl_user": true, "repl_password": true,
	"hostname": true, "ip": true, "port": true, "candidate_master": true, "no_master": true, "ping_interval": true,
	"master_ip_failover_script": true, "master_ip_online_change_script": true}

func net4or6(s string) bool { return strings.Count(s, ".") == 3 || strings.Contains(s, ":") }
