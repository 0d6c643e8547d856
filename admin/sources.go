package admin

import (
	"time"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/failover"
	"github.com/switchyard/switchyard/rules"
)

// Sources are what the admin port reports on and steers. cmd implements
// it over the proxy, the clusters, their failover engines and the
// coordinator; admin imports neither proxy nor cmd.
type Sources interface {
	Version() string
	Started() time.Time
	// Clusters are the clusters, in config order, as they are now.
	Clusters() []Cluster
	// Sessions lists client sessions.
	Sessions() []SessionInfo
	// Counters returns named counters for SHOW STATUS.
	Counters() map[string]uint64
	// QueryStats returns the digest table; ResetQueryStats clears it.
	QueryStats() []QueryStat
	ResetQueryStats()
	// TxOutcomes says what became of the transactions that lost their
	// connection in a cluster's topology epoch: replayed, aborted.
	TxOutcomes(cluster string, epoch uint64) (replayed, aborted int)
	// Kill interrupts a session's running statement (query) or ends the
	// session.
	Kill(session uint32, query bool) error
	// Config renders the running config without secrets.
	Config() string
	// Reload re-reads the config file and applies it whole, or refuses it
	// whole (the running config is kept).
	Reload() error
	// Members lists the Switchyard instances sharing the clusters (one
	// row per instance and cluster).
	Members() []Member
	// Rules lists the query rules in order, with their counters.
	Rules() []rules.RuleInfo
	// ExplainRoute says where a statement would run for a user in a
	// database, and why.
	ExplainRoute(sql, user, db string) (RouteExplanation, error)

	// Runtime configuration: each change is validated, persisted (the
	// config file, or etcd when coordinated) and applied whole, or
	// refused whole; it returns the configuration version it made.
	AddUser(u UserChange) (int64, error)
	DropUser(name string) (int64, error)
	// AddRule adds (or replaces, by name) a rule written as YAML, before
	// the named rule or at the end.
	AddRule(yaml, before string) (int64, error)
	DropRule(name string) (int64, error)
	SetWeight(backend string, weight int) (int64, error)
	SetOffline(backend string, offline bool) (int64, error)
}

// UserChange is ADD USER's request: a password (hashed before it is
// kept) or its hash, and the backend account.
type UserChange struct {
	Name, Password, PasswordHash string
	Backend, BackendPassword     string
	Cluster                      string
	MaxConnections               int
}

// RouteExplanation is EXPLAIN ROUTE's answer.
type RouteExplanation struct {
	Cluster, Target string
	// Reason is the built-in reason or the rule behind the choice.
	Reason string
	// Rules are the rules that match ("" when none).
	Rules string
	// Cache says whether the cache would answer, or why not.
	Cache string
}

// Cluster is one cluster as the admin port sees it.
type Cluster struct {
	Name    string
	Backend *backend.Cluster
	// Engine is its failover engine (nil when none runs).
	Engine *failover.Engine
	// Coordination describes its coordination state; CoordinationOK is
	// false when coordination is configured and lost.
	Coordination   string
	CoordinationOK bool
}

// Member is one row of SHOW CLUSTER.
type Member struct {
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Cluster string `json:"cluster"`
	Master  string `json:"master"`
	Epoch   uint64 `json:"epoch"`
	Leader  bool   `json:"leader"`
	Updated string `json:"updated"`
	// ConfigVersion is the runtime configuration version it applied.
	ConfigVersion int64 `json:"config_version"`
}

// SessionInfo is one row of SHOW SESSIONS.
type SessionInfo struct {
	ID            uint32
	User, Client  string
	Cluster       string
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
