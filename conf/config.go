package conf

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole Switchyard configuration file.
type Config struct {
	// Listen is the address applications connect to (host:port).
	Listen string `yaml:"listen"`
	// ServerVersion is the version string sent in the handshake. Empty
	// (the default): the master's own version marked "-switchyard", with
	// MariaDB's "5.5.5-" prefix in front of MariaDB (connectors strip it).
	ServerVersion string `yaml:"server_version"`
	// MaxAllowedPacket bounds one client packet (after reassembly of
	// multi-packet payloads). Larger packets get error 1153 and a close.
	MaxAllowedPacket ByteSize `yaml:"max_allowed_packet"`
	// HandshakeTimeout bounds the whole client handshake (TLS + auth).
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
	// MaxClientConnections caps concurrent client sessions (error 1040 above it).
	MaxClientConnections int `yaml:"max_client_connections"`
	// LoadDataLocal allows LOAD DATA LOCAL INFILE to be relayed. Off by default.
	LoadDataLocal bool `yaml:"load_data_local"`
	// TLS for client connections; enabled when Cert and Key are set.
	TLS TLSServer `yaml:"tls"`
	// Threads is how many OS threads run Go code at once (GOMAXPROCS).
	// 0 sizes it to the load (internal/threads): one thread while the
	// process uses under 60 % of it, doubled whenever the threads are that
	// busy, up to Go's default (one per CPU); a GOMAXPROCS environment
	// variable fixes it instead. A number fixes it.
	Threads int `yaml:"threads"`

	Users []User `yaml:"users"`
	// Backends is the one cluster of a config without clusters: it is
	// cluster "default".
	Backends []Backend `yaml:"backends,omitempty"`
	// Clusters are the master–replica clusters this process fronts; each
	// may override monitor, failover, routing and pool (merged over the
	// top-level sections).
	Clusters []Cluster `yaml:"clusters,omitempty"`
	// Schemas maps a database to the cluster serving it (Mycat's schema
	// → dataHost); unmapped databases go to the user's cluster.
	Schemas  map[string]string `yaml:"schemas,omitempty"`
	Pool     PoolSettings      `yaml:"pool"`
	Monitor  Monitor           `yaml:"monitor"`
	Failover Failover          `yaml:"failover"`
	Routing  Routing           `yaml:"routing"`
	Admin    Admin             `yaml:"admin"`
	HTTP     HTTP              `yaml:"http"`
	Hooks    Hooks             `yaml:"hooks"`
	Log      Log               `yaml:"log"`
	// Rules act on statements as they pass (route, block, cache, time
	// out, log), in order; the first that matches wins unless it says
	// continue.
	Rules []Rule `yaml:"rules,omitempty"`
	// Cache bounds the result cache that rules with cache_ttl fill.
	Cache Cache `yaml:"cache"`
	// Coordination with other Switchyard instances; empty: run alone.
	Coordination Coordination `yaml:"coordination"`

	// Path is the file this config was read from (not a YAML key).
	Path string `yaml:"-"`
	// resolved are the clusters with their effective settings (Parse).
	resolved []Cluster
}

// ClusterList returns the clusters with their effective settings, in
// config order: the clusters section, or the one cluster "default" of a
// config with top-level backends.
func (c *Config) ClusterList() []Cluster { return c.resolved }

// DefaultCluster is the cluster of users and databases mapped to none:
// the first.
func (c *Config) DefaultCluster() string {
	if len(c.resolved) == 0 {
		return "default"
	}
	return c.resolved[0].Name
}

// TLSServer configures TLS on a listener.
type TLSServer struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Enabled reports whether a certificate is configured.
func (t TLSServer) Enabled() bool { return t.Cert != "" && t.Key != "" }

// User is an application account accepted by the proxy.
type User struct {
	Name     string `yaml:"name"`
	Password Secret `yaml:"password"`
	// PasswordHash is the password as MySQL's mysql_native_password
	// stores it ("*" and 40 hex digits: SHA1(SHA1(password))), instead of
	// Password: users added at runtime are kept this way, never plain.
	PasswordHash string `yaml:"password_hash,omitempty"`
	// Auth is the plugin clients must use: mysql_native_password (default)
	// or caching_sha2_password.
	Auth string `yaml:"auth"`
	// BackendUser/BackendPassword is the account the proxy uses on the
	// servers for this user's traffic; defaults to Name/Password. It must
	// not hold READ_ONLY ADMIN, or fencing with read_only=1 stops nothing.
	BackendUser     string `yaml:"backend_user"`
	BackendPassword Secret `yaml:"backend_password"`
	RequireTLS      bool   `yaml:"require_tls"`
	// QueryTimeout overrides pool.query_timeout for this user's
	// statements (0: the pool's).
	QueryTimeout Duration `yaml:"query_timeout"`
	// MaxConnections caps this user's concurrent sessions (0: only
	// max_client_connections applies), so one application cannot starve
	// another: error 1040 over it.
	MaxConnections int `yaml:"max_connections"`
	// Cluster is the cluster this user's sessions start on when their
	// database is not mapped by schemas (default: the first cluster).
	Cluster string `yaml:"cluster"`
}

// Cluster is one master–replica cluster. Monitor, Failover, Routing and
// Pool are its effective settings: the top-level sections with the
// cluster's own keys merged over them (Parse fills them in).
type Cluster struct {
	Name     string    `yaml:"name"`
	Backends []Backend `yaml:"backends"`
	// Overrides as written (only the keys given).
	MonitorOverride  yaml.Node `yaml:"monitor,omitempty"`
	FailoverOverride yaml.Node `yaml:"failover,omitempty"`
	RoutingOverride  yaml.Node `yaml:"routing,omitempty"`
	PoolOverride     yaml.Node `yaml:"pool,omitempty"`

	Monitor  Monitor      `yaml:"-"`
	Failover Failover     `yaml:"-"`
	Routing  Routing      `yaml:"-"`
	Pool     PoolSettings `yaml:"-"`
}

// Backend is one MariaDB/MySQL server.
type Backend struct {
	Name   string `yaml:"name"`
	Host   string `yaml:"host"`
	Port   int    `yaml:"port"`
	Weight int    `yaml:"weight"`
	// Candidate marks a preferred promotion target.
	Candidate bool `yaml:"candidate"`
	// NoMaster excludes the server from promotion.
	NoMaster bool `yaml:"no_master"`
	// Offline: the server takes no new statements (SET BACKEND OFFLINE,
	// kept across restarts).
	Offline bool `yaml:"offline,omitempty"`
}

// Addr returns host:port.
func (b Backend) Addr() string { return fmt.Sprintf("%s:%d", b.Host, b.Port) }

// PoolSettings governs backend connection pools (one per backend).
type PoolSettings struct {
	MaxConnections int      `yaml:"max_connections"`
	MaxIdle        int      `yaml:"max_idle"`
	IdleTimeout    Duration `yaml:"idle_timeout"`
	MaxLifetime    Duration `yaml:"max_lifetime"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// AcquireTimeout bounds the wait for a free connection when the pool is full.
	AcquireTimeout Duration `yaml:"acquire_timeout"`
	// IOTimeout bounds the proxy's own round trips (reset, SET NAMES, USE, ping).
	IOTimeout Duration `yaml:"io_timeout"`
	// QueryTimeout bounds a relayed client statement; 0 means no limit.
	QueryTimeout Duration `yaml:"query_timeout"`
	// Multiplexing returns a session's backend connections to the pool
	// after each statement when the session has no state tied to them, so
	// many mostly idle clients share few server connections. A session
	// with state (transaction, temporary table, user variables, locks,
	// prepared statements, changed session variables) keeps its
	// connections until that state ends.
	Multiplexing bool      `yaml:"multiplexing"`
	TLS          TLSClient `yaml:"tls"`
}

// TLSClient configures TLS towards backends.
type TLSClient struct {
	Enabled            bool   `yaml:"enabled"`
	CA                 string `yaml:"ca"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Monitor configures health checks of the backends.
type Monitor struct {
	User     string   `yaml:"user"`
	Password Secret   `yaml:"password"`
	Interval Duration `yaml:"interval"`
	// FailCount consecutive failures make the master suspect.
	FailCount      int      `yaml:"failcount"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
}

// Failover configures automatic promotion.
type Failover struct {
	Enabled             bool     `yaml:"enabled"`
	Cooldown            Duration `yaml:"cooldown"`
	ApplyTimeout        Duration `yaml:"apply_timeout"`
	HoldTimeout         Duration `yaml:"hold_timeout"`
	ReplicationUser     string   `yaml:"replication_user"`
	ReplicationPassword Secret   `yaml:"replication_password"`
	StateFile           string   `yaml:"state_file"`
	// SwitchoverDrain: how long a switchover lets open transactions reach
	// COMMIT or ROLLBACK (new ones wait) before it fences the master; those
	// still open are replayed on the new master or aborted.
	SwitchoverDrain Duration `yaml:"switchover_drain"`
	// Timeouts bound each step of a failover or switchover.
	Timeouts FailoverTimeouts `yaml:"timeouts"`
}

// FailoverTimeouts bound the steps of a topology change.
type FailoverTimeouts struct {
	// Hold: statements running on the master may finish (in a failover
	// they are then cut).
	Hold Duration `yaml:"hold"`
	// Inspect: reading one server's replication state.
	Inspect Duration `yaml:"inspect"`
	// Fence: making the old master read-only.
	Fence Duration `yaml:"fence"`
	// Promote: making the candidate a writable master.
	Promote Duration `yaml:"promote"`
	// Repoint: pointing one server at the new master.
	Repoint Duration `yaml:"repoint"`
	// Verify: until a repointed server's replication threads run.
	Verify Duration `yaml:"verify"`
	// Coordinate: one round trip to etcd.
	Coordinate Duration `yaml:"coordinate"`
	// Undo: undoing an aborted change, all its steps.
	Undo Duration `yaml:"undo"`
	// Rejoin: making a returning server a replica.
	Rejoin Duration `yaml:"rejoin"`
}

// Routing configures the read/write split.
type Routing struct {
	// Consistency is "session" (read-your-writes) or "eventual".
	Consistency   string   `yaml:"consistency"`
	MaxReplicaLag Duration `yaml:"max_replica_lag"`
	// NoReplica is what reads do when no replica is usable: "master" or "error".
	NoReplica string `yaml:"no_replica"`
	// ReplicaChoice is "session" (a session keeps the replica it drew,
	// weighted, while that one stays usable) or "statement" (every read
	// draws again).
	ReplicaChoice string `yaml:"replica_choice"`
	// ReadWriteSplit turns the split on; when false everything goes to the master.
	ReadWriteSplit bool `yaml:"read_write_split"`
	// GTIDWaitTimeout bounds the read-your-writes wait on a replica; past
	// it the read goes to the master.
	GTIDWaitTimeout Duration `yaml:"gtid_wait_timeout"`
	// TransactionReplay: a transaction whose connection is lost (master
	// change, connection cut) is replayed on the master when it can be.
	TransactionReplay TransactionReplay `yaml:"transaction_replay"`
}

// TransactionReplay configures transaction replay.
type TransactionReplay struct {
	Enabled bool `yaml:"enabled"`
	// MaxSize bounds the statements kept per transaction; a larger
	// transaction that loses its connection is aborted instead.
	MaxSize ByteSize `yaml:"max_size"`
}

// Admin configures the admin SQL listener.
type Admin struct {
	Listen   string `yaml:"listen"`
	User     string `yaml:"user"`
	Password Secret `yaml:"password"`
}

// HTTP configures the HTTP listener (status page, /api/status, /metrics,
// /healthz, /readyz); empty Listen disables it. Everything but /healthz and
// /readyz asks for the credentials (HTTP basic auth): User and Password,
// by default the admin port's.
type HTTP struct {
	Listen   string `yaml:"listen"`
	User     string `yaml:"user"`
	Password Secret `yaml:"password"`
	// Pprof serves Go's profiler under /debug/pprof/ (off by default: it
	// exposes internals to whoever reaches the listener).
	Pprof bool `yaml:"pprof"`
}

// Hooks are commands run around topology changes.
type Hooks struct {
	PreFailover    string   `yaml:"pre_failover"`
	PostFailover   string   `yaml:"post_failover"`
	PostSwitchover string   `yaml:"post_switchover"`
	Timeout        Duration `yaml:"timeout"`
}

// Coordination configures several instances sharing one cluster.
type Coordination struct {
	Etcd *Etcd `yaml:"etcd"`
	// InstanceID names this instance (default: hostname and listen address).
	InstanceID string `yaml:"instance_id"`
}

// Etcd is the coordination store.
type Etcd struct {
	Endpoints   []string `yaml:"endpoints"`
	Prefix      string   `yaml:"prefix"`
	DialTimeout Duration `yaml:"dial_timeout"`
	SessionTTL  Duration `yaml:"session_ttl"`
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"` // json or console
	File   string `yaml:"file"`   // empty: stderr
	// QueryLog receives one JSON line per statement that a rule marks
	// with log, and per statement slower than SlowQueryTime: a file
	// path, or "stdout". Empty: no query log.
	QueryLog      string   `yaml:"query_log"`
	SlowQueryTime Duration `yaml:"slow_query_time"` // 0: none counts as slow
}

// Rule is one query rule: statements that match all of Match's set
// fields get its actions.
type Rule struct {
	Name  string    `yaml:"name"`
	Match RuleMatch `yaml:"match,omitempty"`
	// Route sends matching statements to the master, to a replica, or
	// to the named cluster; never against what the proxy guarantees (a
	// transaction, read-your-writes, session state stay where they are).
	Route string `yaml:"route,omitempty"`
	// Block refuses matching statements with error 1148 and this text.
	Block string `yaml:"block,omitempty"`
	// CacheTTL keeps results of matching reads this long.
	CacheTTL Duration `yaml:"cache_ttl,omitempty"`
	// Timeout kills a matching statement on its server after this long.
	Timeout Duration `yaml:"timeout,omitempty"`
	// MaxLag: matching reads go to replicas lagging at most this much.
	MaxLag Duration `yaml:"max_lag,omitempty"`
	// Log writes matching statements to the query log.
	Log bool `yaml:"log,omitempty"`
	// Continue: the statement goes on to the next rules, which add the
	// actions this one does not set.
	Continue bool `yaml:"continue,omitempty"`
}

// RuleMatch are a rule's conditions; an empty field matches anything.
type RuleMatch struct {
	Regex  string   `yaml:"regex,omitempty"`  // RE2, on the statement text
	Digest string   `yaml:"digest,omitempty"` // as SHOW QUERY STATS prints it
	User   string   `yaml:"user,omitempty"`
	Schema string   `yaml:"schema,omitempty"` // the session's database
	Client string   `yaml:"client,omitempty"` // CIDR of the client's address
	Kind   string   `yaml:"kind,omitempty"`   // read, write or ddl
	Tables []string `yaml:"tables,omitempty"` // any of these tables
}

// Cache bounds the result cache.
type Cache struct {
	// MaxSize is the memory results may take (least recently used go first).
	MaxSize ByteSize `yaml:"max_size"`
}

// Duration is a time.Duration written as "500ms", "10s", "5m".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML accepts Go duration strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use e.g. 500ms, 10s, 5m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ByteSize is a size written as a number of bytes or with a KiB/MiB/GiB suffix.
type ByteSize int64

// UnmarshalYAML accepts "65536", "64KiB", "16MiB", "1GiB" (K/M/G too).
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = ByteSize(v)
	return nil
}

// ParseByteSize parses a byte count with an optional binary suffix.
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size (use e.g. 65536, 64KiB, 16MiB)", s)
	}
	return v * mult, nil
}

// Secret is a password. It may be written literally or as ${ENV_VAR};
// it never prints its value.
type Secret struct {
	value string
	ref   string // the ${VAR} reference as written, if any
}

// NewSecret wraps a literal value (used by tests and the sandbox).
func NewSecret(v string) Secret { return Secret{value: v} }

// Value returns the password.
func (s Secret) Value() string { return s.value }

// String hides the value so a Secret cannot leak through logs or %v.
func (s Secret) String() string {
	if s.ref != "" {
		return s.ref
	}
	if s.value == "" {
		return ""
	}
	return "******"
}

// UnmarshalYAML resolves ${VAR} references from the environment.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	v := n.Value
	if strings.HasPrefix(v, "${") && strings.HasSuffix(v, "}") {
		name := v[2 : len(v)-1]
		env, ok := lookupEnv(name)
		if !ok {
			return fmt.Errorf("line %d: environment variable %s is not set", n.Line, name)
		}
		*s = Secret{value: env, ref: v}
		return nil
	}
	*s = Secret{value: v}
	return nil
}

// Raw is the secret as it should be written back to a config: its
// ${VAR} reference, or the value.
func (s Secret) Raw() string {
	if s.ref != "" {
		return s.ref
	}
	return s.value
}

// MarshalYAML writes the reference or a mask, never the password.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// RawForFile returns what should be written to a generated config file:
// the reference if there was one, else the literal value.
func (s Secret) RawForFile() string {
	if s.ref != "" {
		return s.ref
	}
	return s.value
}
