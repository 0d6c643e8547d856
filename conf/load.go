package conf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// lookupEnv is os.LookupEnv; a variable so tests can swap it.
var lookupEnv = os.LookupEnv

// Defaults returns a Config holding every default value.
func Defaults() Config {
	return Config{
		Listen:               "127.0.0.1:3307",
		MaxAllowedPacket:     64 << 20,
		HandshakeTimeout:     Duration(10 * time.Second),
		MaxClientConnections: 4096,
		Pool: PoolSettings{
			MaxConnections: 512,
			MaxIdle:        64,
			IdleTimeout:    Duration(5 * time.Minute),
			MaxLifetime:    Duration(time.Hour),
			ConnectTimeout: Duration(3 * time.Second),
			AcquireTimeout: Duration(10 * time.Second),
			IOTimeout:      Duration(5 * time.Second),
		},
		Monitor: Monitor{
			Interval:       Duration(500 * time.Millisecond),
			FailCount:      3,
			ConnectTimeout: Duration(time.Second),
		},
		Failover: Failover{
			Enabled:         true,
			Cooldown:        Duration(10 * time.Minute),
			ApplyTimeout:    Duration(30 * time.Second),
			HoldTimeout:     Duration(10 * time.Second),
			SwitchoverDrain: Duration(2 * time.Second),
			Timeouts: FailoverTimeouts{Hold: Duration(2 * time.Second), Inspect: Duration(3 * time.Second),
				Fence: Duration(3 * time.Second), Promote: Duration(10 * time.Second), Repoint: Duration(10 * time.Second),
				Verify: Duration(5 * time.Second), Coordinate: Duration(5 * time.Second), Undo: Duration(15 * time.Second),
				Rejoin: Duration(15 * time.Second)},
		},
		Routing: Routing{
			Consistency:       "session",
			MaxReplicaLag:     Duration(10 * time.Second),
			NoReplica:         "master",
			ReplicaChoice:     "session",
			ReadWriteSplit:    true,
			GTIDWaitTimeout:   Duration(time.Second),
			TransactionReplay: TransactionReplay{Enabled: true, MaxSize: 1 << 20},
		},
		Admin: Admin{Listen: "127.0.0.1:6033", User: "admin"},
		Cache: Cache{MaxSize: 64 << 20},
		Hooks: Hooks{Timeout: Duration(30 * time.Second)},
		Log:   Log{Level: "info", Format: "json"},
	}
}

// Load reads, defaults and validates a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes YAML (unknown keys are errors), fills defaults and
// validates. name is used in error messages ("file:line: ...").
func Parse(data []byte, name string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg := Defaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", name, cleanYAMLError(err))
	}
	cfg.Path = name
	applyDerivedDefaults(&cfg)
	errs := cfg.resolveClusters()
	if len(errs) == 0 {
		errs = cfg.validate()
	}
	if len(errs) > 0 {
		lines := newLineIndex(&root)
		msgs := make([]string, 0, len(errs))
		for _, e := range errs {
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s: %s", name, lines.line(e.field), e.field, e.msg))
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	return &cfg, nil
}

func cleanYAMLError(err error) error {
	// yaml.v3 reports unknown keys as "field x not found in type conf.Foo";
	// say it in the user's words.
	msg := err.Error()
	msg = strings.ReplaceAll(msg, "yaml: unmarshal errors:\n  ", "")
	if strings.Contains(msg, "not found in type") {
		msg = strings.ReplaceAll(msg, "field ", "unknown key ")
		if i := strings.Index(msg, " not found in type"); i >= 0 {
			msg = msg[:i]
		}
	}
	return errors.New(msg)
}

func applyDerivedDefaults(c *Config) {
	if c.HTTP.User == "" && c.HTTP.Password.value == "" {
		c.HTTP.User, c.HTTP.Password = c.Admin.User, c.Admin.Password
	}
	for i := range c.Users {
		u := &c.Users[i]
		if u.Auth == "" {
			u.Auth = "mysql_native_password"
		}
		if u.BackendUser == "" {
			u.BackendUser = u.Name
			if u.BackendPassword.value == "" {
				u.BackendPassword = u.Password
			}
		}
	}
	defaultBackends(c.Backends)
	for i := range c.Clusters {
		defaultBackends(c.Clusters[i].Backends)
	}
}

func defaultBackends(list []Backend) {
	for i := range list {
		b := &list[i]
		if b.Weight == 0 {
			b.Weight = 1
		}
		if b.Port == 0 {
			b.Port = 3306
		}
	}
}

// resolveClusters fills the effective settings of each cluster: the
// top-level sections with the cluster's keys merged over them.
func (c *Config) resolveClusters() []fieldError {
	if len(c.Clusters) > 0 && len(c.Backends) > 0 {
		return []fieldError{{"backends", "use either backends (one cluster) or clusters, not both"}}
	}
	if len(c.Clusters) == 0 {
		c.resolved = []Cluster{{Name: "default", Backends: c.Backends, Monitor: c.Monitor, Failover: c.Failover, Routing: c.Routing, Pool: c.Pool}}
		return nil
	}
	var errs []fieldError
	c.resolved = make([]Cluster, len(c.Clusters))
	for i, cl := range c.Clusters {
		cl.Monitor, cl.Failover, cl.Routing, cl.Pool = c.Monitor, c.Failover, c.Routing, c.Pool
		f := fmt.Sprintf("clusters[%d]", i)
		for _, o := range []struct {
			key  string
			node *yaml.Node
			into any
		}{{"monitor", &cl.MonitorOverride, &cl.Monitor}, {"failover", &cl.FailoverOverride, &cl.Failover},
			{"routing", &cl.RoutingOverride, &cl.Routing}, {"pool", &cl.PoolOverride, &cl.Pool}} {
			if err := mergeOver(o.node, o.into); err != nil {
				errs = append(errs, fieldError{f + "." + o.key, err.Error()})
			}
		}
		c.resolved[i] = cl
	}
	return errs
}

// mergeOver decodes an override (only the keys it has) over the values
// already in into; unknown keys are errors, as at the top level.
func mergeOver(n *yaml.Node, into any) error {
	if n.Kind == 0 {
		return nil
	}
	raw, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		// Lines of the re-encoded override mean nothing to the reader:
		// the error is reported at the override's own line.
		return errors.New(overrideLine.ReplaceAllString(cleanYAMLError(err).Error(), ""))
	}
	return nil
}

var overrideLine = regexp.MustCompile(`line \d+: `)

type fieldError struct {
	field string // dotted path with [i], e.g. users[0].name
	msg   string
}

// fieldErrors collects what a validation step found.
type fieldErrors []fieldError

func (e *fieldErrors) add(field, format string, args ...any) {
	*e = append(*e, fieldError{field, fmt.Sprintf(format, args...)})
}

func (c *Config) validate() []fieldError {
	var errs fieldErrors
	checkAddr := func(field, v string, required bool) {
		if v == "" {
			if required {
				errs.add(field, "is required (host:port)")
			}
			return
		}
		if _, port, err := net.SplitHostPort(v); err != nil {
			errs.add(field, "%q is not host:port", v)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			errs.add(field, "%q has an invalid port", v)
		}
	}
	checkAddr("listen", c.Listen, true)
	checkAddr("admin.listen", c.Admin.Listen, false)
	checkAddr("http.listen", c.HTTP.Listen, false)
	if c.MaxAllowedPacket < 1024 || c.MaxAllowedPacket > 1<<30 {
		errs.add("max_allowed_packet", "must be between 1KiB and 1GiB")
	}
	if c.Threads < 0 {
		errs.add("threads", "must be 0 (one per CPU) or positive")
	}
	if c.MaxClientConnections <= 0 {
		errs.add("max_client_connections", "must be positive")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs.add("tls", "cert and key must be set together")
	}
	errs = append(errs, c.validateUsers()...)
	errs = append(errs, c.validateClusters()...)
	p := c.Pool
	if p.MaxConnections <= 0 {
		errs.add("pool.max_connections", "must be positive")
	}
	if p.MaxIdle < 0 || p.MaxIdle > p.MaxConnections {
		errs.add("pool.max_idle", "must be between 0 and pool.max_connections")
	}
	errs = append(errs, c.validateSettings()...)
	if c.Routing.Consistency != "session" && c.Routing.Consistency != "eventual" {
		errs.add("routing.consistency", "%q: use session or eventual", c.Routing.Consistency)
	}
	if c.Routing.ReplicaChoice != "session" && c.Routing.ReplicaChoice != "statement" {
		errs.add("routing.replica_choice", "%q: use session or statement", c.Routing.ReplicaChoice)
	}
	if c.Routing.TransactionReplay.MaxSize < 0 || c.Routing.TransactionReplay.MaxSize > 1<<30 {
		errs.add("routing.transaction_replay.max_size", "must be between 0 and 1GiB")
	}
	if c.Routing.NoReplica != "master" && c.Routing.NoReplica != "error" {
		errs.add("routing.no_replica", "%q: use master or error", c.Routing.NoReplica)
	}
	errs = append(errs, c.validateServices()...)
	return append(errs, c.validateRules()...)
}

// validateServices checks the admin and HTTP accounts, coordination,
// the log and the cache.
func (c *Config) validateServices() []fieldError {
	var errs fieldErrors
	if c.Admin.Listen != "" && (c.Admin.User == "" || c.Admin.Password.Value() == "") {
		errs.add("admin.password", "the admin listener needs its own user and password")
	}
	if c.HTTP.Listen != "" && (c.HTTP.User == "" || c.HTTP.Password.Value() == "") {
		errs.add("http.password", "the HTTP listener needs a user and password (http.user/http.password, or the admin port's)")
	}
	if e := c.Coordination.Etcd; e != nil {
		if len(e.Endpoints) == 0 {
			errs.add("coordination.etcd.endpoints", "at least one endpoint is required")
		}
		if e.Prefix != "" && !strings.HasPrefix(e.Prefix, "/") {
			errs.add("coordination.etcd.prefix", "%q must start with /", e.Prefix)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.add("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		errs.add("log.format", "%q: use json or console", c.Log.Format)
	}
	if c.Log.SlowQueryTime < 0 {
		errs.add("log.slow_query_time", "must not be negative")
	}
	if c.Cache.MaxSize < 0 || c.Cache.MaxSize > 64<<30 {
		errs.add("cache.max_size", "must be between 0 and 64GiB")
	}
	return errs
}

// validateSettings checks the durations and the monitor's failure count.
func (c *Config) validateSettings() []fieldError {
	var errs fieldErrors
	p := c.Pool
	for field, d := range map[string]Duration{
		"pool.connect_timeout": p.ConnectTimeout, "pool.io_timeout": p.IOTimeout,
		"pool.acquire_timeout": p.AcquireTimeout, "handshake_timeout": c.HandshakeTimeout,
		"monitor.interval": c.Monitor.Interval, "monitor.connect_timeout": c.Monitor.ConnectTimeout,
		"failover.hold_timeout": c.Failover.HoldTimeout, "failover.apply_timeout": c.Failover.ApplyTimeout,
		"failover.switchover_drain": c.Failover.SwitchoverDrain,
		"routing.gtid_wait_timeout": c.Routing.GTIDWaitTimeout,
		"failover.timeouts.hold":    c.Failover.Timeouts.Hold, "failover.timeouts.inspect": c.Failover.Timeouts.Inspect,
		"failover.timeouts.fence": c.Failover.Timeouts.Fence, "failover.timeouts.promote": c.Failover.Timeouts.Promote,
		"failover.timeouts.repoint": c.Failover.Timeouts.Repoint, "failover.timeouts.verify": c.Failover.Timeouts.Verify,
		"failover.timeouts.coordinate": c.Failover.Timeouts.Coordinate, "failover.timeouts.undo": c.Failover.Timeouts.Undo,
		"failover.timeouts.rejoin": c.Failover.Timeouts.Rejoin,
	} {
		if d <= 0 {
			errs.add(field, "must be a positive duration")
		}
	}
	if c.Monitor.FailCount < 1 {
		errs.add("monitor.failcount", "must be at least 1")
	}
	return errs
}

// validateUsers checks the application accounts.
func (c *Config) validateUsers() []fieldError {
	var errs fieldErrors
	if len(c.Users) == 0 {
		errs.add("users", "at least one user is required")
	}
	seenUser := map[string]bool{}
	for i, u := range c.Users {
		f := fmt.Sprintf("users[%d]", i)
		if u.Name == "" {
			errs.add(f+".name", "is required")
		} else if seenUser[u.Name] {
			errs.add(f+".name", "duplicate user %q", u.Name)
		}
		seenUser[u.Name] = true
		if u.Auth != "mysql_native_password" && u.Auth != "caching_sha2_password" {
			errs.add(f+".auth", "%q: use mysql_native_password or caching_sha2_password", u.Auth)
		}
		if u.Name == c.Admin.User && c.Admin.Listen != "" {
			errs.add(f+".name", "%q is also the admin user; use distinct accounts", u.Name)
		}
		if u.PasswordHash != "" {
			switch {
			case u.Password.Value() != "":
				errs.add(f+".password_hash", "give password or password_hash, not both")
			case !ValidPasswordHash(u.PasswordHash):
				errs.add(f+".password_hash", "%q is not a mysql_native_password hash (* and 40 hex digits)", u.PasswordHash)
			case u.Auth != "mysql_native_password":
				errs.add(f+".password_hash", "works with auth mysql_native_password only")
			case u.BackendPassword.Value() == "":
				errs.add(f+".backend_password", "is required with password_hash (the proxy logs in to the servers with it)")
			}
		}
	}
	return errs
}

// validateRules checks each rule: a unique name, conditions that parse,
// at least one action, a route the proxy knows.
func (c *Config) validateRules() []fieldError {
	var errs fieldErrors
	clusters := map[string]bool{}
	for _, cl := range c.resolved {
		clusters[cl.Name] = true
	}
	seen := map[string]bool{}
	for i, r := range c.Rules {
		f := fmt.Sprintf("rules[%d]", i)
		add := func(field, format string, args ...any) { errs.add(f+field, format, args...) }
		switch {
		case r.Name == "":
			add(".name", "is required")
		case seen[r.Name]:
			add(".name", "duplicate rule %q", r.Name)
		}
		seen[r.Name] = true
		if err := r.Check(clusters); err != nil {
			add("", "%v", err)
		}
	}
	return errs
}

// Check validates one rule against the clusters there are (a rule added
// at runtime is checked the same way as one in the file).
func (r Rule) Check(clusters map[string]bool) error {
	m := r.Match
	if m.Regex != "" {
		if _, err := regexp.Compile(m.Regex); err != nil {
			return fmt.Errorf("match.regex: %v", err)
		}
	}
	if m.Client != "" {
		if _, err := netip.ParsePrefix(m.Client); err != nil {
			if _, err2 := netip.ParseAddr(m.Client); err2 != nil {
				return fmt.Errorf("match.client: %q is not a CIDR (10.0.0.0/8) or an address", m.Client)
			}
		}
	}
	switch m.Kind {
	case "", "read", "write", "ddl":
	default:
		return fmt.Errorf("match.kind: %q: use read, write or ddl", m.Kind)
	}
	switch {
	case r.Route == "", r.Route == "master", r.Route == "replica", clusters[r.Route]:
	default:
		return fmt.Errorf("route: %q: use master, replica or a cluster's name", r.Route)
	}
	if r.Block == "" && r.Route == "" && r.CacheTTL == 0 && r.Timeout == 0 && r.MaxLag == 0 && !r.Log && !r.Continue {
		return errors.New("the rule does nothing: give it route, block, cache_ttl, timeout, max_lag or log")
	}
	if r.CacheTTL < 0 || r.Timeout < 0 || r.MaxLag < 0 {
		return errors.New("cache_ttl, timeout and max_lag must not be negative")
	}
	if r.Block != "" && (r.Route != "" || r.CacheTTL != 0) {
		return errors.New("a blocking rule cannot also route or cache")
	}
	return nil
}

// validateClusters checks every cluster's backends (names and addresses
// unique across all clusters) and settings, the schema map and the users'
// clusters.
func (c *Config) validateClusters() []fieldError {
	var errs fieldErrors
	seenName, seenAddr, clusters := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i, cl := range c.resolved {
		// A config without clusters names its fields as written.
		f, where, backends := fmt.Sprintf("clusters[%d]", i), fmt.Sprintf("clusters[%d].", i), fmt.Sprintf("clusters[%d].backends", i)
		if len(c.Clusters) == 0 {
			f, where, backends = "backends", "", "backends"
		}
		switch {
		case cl.Name == "" || strings.ContainsAny(cl.Name, " /.'`\""):
			errs.add(f+".name", "%q: a cluster needs a name of letters, digits, - or _", cl.Name)
		case clusters[cl.Name]:
			errs.add(f+".name", "duplicate cluster %q", cl.Name)
		}
		clusters[cl.Name] = true
		errs = append(errs, validateBackends(backends, cl.Backends, seenName, seenAddr)...)
		if len(cl.Backends) > 1 && cl.Monitor.User == "" {
			errs.add(where+"monitor.user", "is required with more than one backend (replica health, lag and roles come from the monitor)")
		}
		if len(cl.Backends) > 1 && cl.Failover.Enabled && cl.Failover.ReplicationUser == "" {
			errs.add(where+"failover.replication_user", "is required when failover is enabled: replicas are repointed with it")
		}
	}
	for db, cl := range c.Schemas {
		if !clusters[cl] {
			errs.add("schemas."+db, "cluster %q is not defined", cl)
		}
	}
	for i, u := range c.Users {
		if u.Cluster != "" && !clusters[u.Cluster] {
			errs.add(fmt.Sprintf("users[%d].cluster", i), "cluster %q is not defined", u.Cluster)
		}
		if u.MaxConnections < 0 {
			errs.add(fmt.Sprintf("users[%d].max_connections", i), "must not be negative")
		}
	}
	return errs
}

// validateBackends checks one cluster's backends; names and addresses
// must be unique across clusters (seen*).
func validateBackends(field string, list []Backend, seenName, seenAddr map[string]bool) []fieldError {
	var errs fieldErrors
	if len(list) == 0 {
		errs.add(field, "at least one backend is required")
	}
	allNoMaster := len(list) > 1
	for i, b := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		if b.Name == "" {
			errs.add(f+".name", "is required")
		} else if seenName[b.Name] {
			errs.add(f+".name", "duplicate backend name %q (names are unique across clusters)", b.Name)
		}
		seenName[b.Name] = true
		if b.Host == "" {
			errs.add(f+".host", "is required")
		}
		if b.Port <= 0 || b.Port > 65535 {
			errs.add(f+".port", "%d is not a valid port", b.Port)
		}
		if seenAddr[b.Addr()] {
			errs.add(f+".port", "address %s is used by another backend", b.Addr())
		}
		seenAddr[b.Addr()] = true
		if b.Weight < 0 {
			errs.add(f+".weight", "must not be negative")
		}
		if b.Candidate && b.NoMaster {
			errs.add(f+".no_master", "a backend cannot be both candidate and no_master")
		}
		allNoMaster = allNoMaster && b.NoMaster
	}
	if allNoMaster {
		errs.add(field, "every backend is no_master: no server could ever be master")
	}
	return errs
}

// lineIndex maps dotted field paths to YAML source lines.
type lineIndex struct{ root *yaml.Node }

func newLineIndex(root *yaml.Node) lineIndex { return lineIndex{root} }

// line returns the line of the deepest node on path that exists, so an
// error about a missing key points at its parent.
func (l lineIndex) line(path string) int {
	n := l.root
	if n == nil || len(n.Content) == 0 {
		return 1
	}
	n = n.Content[0]
	best := n.Line
	for _, part := range splitPath(path) {
		next := (*yaml.Node)(nil)
		if idx, err := strconv.Atoi(part); err == nil {
			if n.Kind == yaml.SequenceNode && idx < len(n.Content) {
				next = n.Content[idx]
			}
		} else if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					next = n.Content[i+1]
					best = n.Content[i].Line
					break
				}
			}
		}
		if next == nil {
			return best
		}
		n = next
		if n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
			best = n.Line
		} else if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
			if n.Line > best {
				best = n.Line
			}
		}
	}
	return best
}

// splitPath turns "users[0].name" into ["users", "0", "name"].
func splitPath(p string) []string {
	p = strings.ReplaceAll(p, "[", ".")
	p = strings.ReplaceAll(p, "]", "")
	return strings.Split(p, ".")
}
