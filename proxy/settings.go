package proxy

import (
	"time"

	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/rules"
)

// Settings are what sessions read; cmd builds them from the config, and
// a reload swaps them whole. A session reads them afresh for every
// command, so a reload reaches sessions already logged in (their login
// itself is kept). Settings are never changed once given to the Server:
// sessions remember what they looked up in a snapshot by its pointer.
type Settings struct {
	Users            map[string]conf.User // by name
	MaxAllowedPacket int
	HandshakeTimeout time.Duration
	MaxConnections   int
	LoadDataLocal    bool
	Multiplexing     bool // give backend connections back between statements
	// Routes says which cluster serves which database and user.
	Routes router.ClusterMap
	// Clusters are the per-cluster settings, by cluster name; every
	// cluster the proxy was built with has an entry.
	Clusters map[string]*ClusterSettings
	// Rules are the query rules (nil: none).
	Rules *rules.Set
	// QueryLog receives statements rules mark and slow ones (nil: none);
	// SlowQuery is the duration from which a statement is slow (0: none).
	QueryLog  *QueryLog
	SlowQuery time.Duration
}

// ClusterSettings are the settings sessions use on one cluster (the
// top-level config, overridden per cluster).
type ClusterSettings struct {
	Policy         router.Policy
	IOTimeout      time.Duration // the proxy's own backend round trips
	QueryTimeout   time.Duration // a relayed statement; 0 = none
	AcquireTimeout time.Duration
	GTIDWait       time.Duration // read-your-writes wait on a replica
	AvoidFor       time.Duration // how long a session avoids a failed replica
	HoldTimeout    time.Duration // how long master statements wait for a master
	TxReplay       TxReplay      // transactions replayed when their connection is lost
}

// TxReplay configures transaction replay.
type TxReplay struct {
	Enabled bool
	MaxSize int // bytes of statements kept per transaction
}

// cluster returns a cluster's settings; a cluster without an entry (a
// test, a config that named none) gets defaults.
func (s *Settings) cluster(name string) *ClusterSettings {
	if c := s.Clusters[name]; c != nil {
		return c
	}
	return &defaultClusterSettings
}

var defaultClusterSettings = ClusterSettings{
	Policy:    router.Policy{Split: true, ReplicaFallbackToMaster: true, MaxLag: 30 * time.Second},
	IOTimeout: 10 * time.Second, AcquireTimeout: 5 * time.Second, GTIDWait: time.Second,
	AvoidFor: 10 * time.Second, HoldTimeout: 10 * time.Second, TxReplay: TxReplay{Enabled: true, MaxSize: 1 << 20},
}
