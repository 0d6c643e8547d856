package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
)

// Settings configure the coordinator.
type Settings struct {
	Endpoints   []string
	Prefix      string
	InstanceID  string
	Addr        string // what other operators use to reach this instance (admin address)
	DialTimeout time.Duration
	SessionTTL  time.Duration
}

// memberValue is this instance's registration: what it applied of each
// cluster.
type memberValue struct {
	ID       string                 `json:"id"`
	Addr     string                 `json:"addr"`
	Updated  string                 `json:"updated"`
	Clusters map[string]memberState `json:"clusters"`
	// ConfigVersion is the runtime configuration version it applied.
	ConfigVersion int64 `json:"config_version"`
	// Master, Epoch and Leader are the default cluster's (the fields an
	// instance wrote before clusters existed).
	Master string `json:"master"`
	Epoch  uint64 `json:"epoch"`
	Leader bool   `json:"leader"`
}

// memberState is what an instance applied of one cluster.
type memberState struct {
	Master string `json:"master"`
	Epoch  uint64 `json:"epoch"`
	Leader bool   `json:"leader"`
}

// Coordinator is this process's connection to etcd: its registration as
// an instance, etcd's health, and one Cluster coordinator per cluster.
type Coordinator struct {
	set Settings
	cli *clientv3.Client
	log *zap.Logger

	healthy atomic.Bool
	mu      sync.Mutex
	sess    *concurrency.Session // the registration's lease
	joined  []*Cluster
	ctx     context.Context // the loops' (Close cancels it)
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// configVersion is the runtime configuration version applied here.
	configVersion atomic.Int64

	// Cache invalidations waiting to be published (see invalidate.go).
	invMu      sync.Mutex
	invPending map[string]map[string]bool
	invWake    chan struct{}
}

// ErrLostRace means another instance changed the topology first.
var ErrLostRace = errors.New("another Switchyard instance changed the topology first")

func (c *Coordinator) key(parts ...string) string {
	return strings.TrimRight(c.set.Prefix, "/") + "/" + strings.Join(parts, "/")
}

// Start connects and starts the registration and health loop; clusters
// join with Join.
func Start(ctx context.Context, set Settings, log *zap.Logger) (*Coordinator, error) {
	if set.Prefix == "" {
		set.Prefix = "/switchyard"
	}
	if set.DialTimeout <= 0 {
		set.DialTimeout = 2 * time.Second
	}
	if set.SessionTTL <= 0 {
		set.SessionTTL = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: set.Endpoints, DialTimeout: set.DialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	c := &Coordinator{set: set, cli: cli, log: log, invWake: make(chan struct{}, 1)}
	sctx, cancel := context.WithTimeout(ctx, 5*set.DialTimeout)
	defer cancel()
	if _, err := cli.Get(sctx, c.key("instances"), clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd: %w", err)
	}
	c.healthy.Store(true)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.heartbeat(c.ctx) }()
	go func() { defer c.wg.Done(); c.publishLoop(c.ctx) }()
	return c, nil
}

// Join seeds (or adopts) a cluster's topology in etcd and starts its
// election and watch. The default cluster keeps the keys an instance
// used before clusters existed.
func (c *Coordinator) Join(ctx context.Context, cluster *backend.Cluster) (*Cluster, error) {
	prefix := []string{}
	if cluster.Name != "default" {
		prefix = []string{"clusters", cluster.Name}
	}
	cl := &Cluster{parent: c, cluster: cluster, prefix: prefix, log: c.log.With(zap.String("cluster", cluster.Name))}
	sctx, cancel := context.WithTimeout(ctx, 5*c.set.DialTimeout)
	defer cancel()
	if err := cl.seed(sctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.joined = append(c.joined, cl)
	c.mu.Unlock()
	c.wg.Add(2)
	go func() { defer c.wg.Done(); cl.campaign(c.ctx) }()
	go func() { defer c.wg.Done(); cl.watch(c.ctx) }()
	return cl, nil
}

// Healthy reports whether etcd answers.
func (c *Coordinator) Healthy() bool { return c.healthy.Load() }

// heartbeat checks etcd and refreshes this instance's registration (with
// the epoch it has applied of each cluster).
func (c *Coordinator) heartbeat(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.register(hctx)
		cancel()
		was := c.healthy.Swap(err == nil)
		if was != (err == nil) {
			if err != nil {
				c.log.Error("etcd unreachable: serving with the last known topology, never promoting", zap.Error(err))
			} else {
				c.log.Warn("etcd reachable again")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// register writes this instance's registration under its lease (made
// anew when etcd lost it).
func (c *Coordinator) register(ctx context.Context) error {
	c.mu.Lock()
	sess, joined := c.sess, append([]*Cluster(nil), c.joined...)
	c.mu.Unlock()
	if sess == nil || isDone(sess) {
		// The lease is granted under ctx (bounded: etcd may not answer);
		// the session keeps it alive until Close.
		lease, err := c.cli.Grant(ctx, int64(c.set.SessionTTL.Seconds()))
		if err != nil {
			return err
		}
		s, err := concurrency.NewSession(c.cli, concurrency.WithLease(lease.ID), concurrency.WithContext(c.ctx))
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.sess, sess = s, s
		c.mu.Unlock()
	}
	v := memberValue{ID: c.set.InstanceID, Addr: c.set.Addr, Updated: time.Now().UTC().Format(time.RFC3339),
		Clusters: map[string]memberState{}, ConfigVersion: c.configVersion.Load()}
	for _, cl := range joined {
		m, e := cl.cluster.Topo.Master()
		st := memberState{Master: m, Epoch: e, Leader: cl.leader.Load()}
		v.Clusters[cl.cluster.Name] = st
		if cl.cluster.Name == "default" {
			v.Master, v.Epoch, v.Leader = st.Master, st.Epoch, st.Leader
		}
	}
	val, _ := json.Marshal(v)
	_, err := c.cli.Put(ctx, c.key("instances", c.set.InstanceID), string(val), clientv3.WithLease(sess.Lease()))
	return err
}

func isDone(s *concurrency.Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// Member is one registered instance's view of one cluster.
type Member struct {
	ID, Addr, Cluster, Master string
	Epoch                     uint64
	Leader                    bool
	Updated                   string
	ConfigVersion             int64
}

// Members lists registered instances (from etcd), one row per instance
// and cluster.
func (c *Coordinator) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.cli.Get(ctx, c.key("instances")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, kv := range resp.Kvs {
		var v memberValue
		if json.Unmarshal(kv.Value, &v) != nil {
			continue
		}
		if len(v.Clusters) == 0 {
			v.Clusters = map[string]memberState{"default": {Master: v.Master, Epoch: v.Epoch, Leader: v.Leader}}
		}
		for name, st := range v.Clusters {
			out = append(out, Member{ID: v.ID, Addr: v.Addr, Cluster: name, Master: st.Master, Epoch: st.Epoch, Leader: st.Leader,
				Updated: v.Updated, ConfigVersion: v.ConfigVersion})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Cluster != out[j].Cluster {
			return out[i].Cluster < out[j].Cluster
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// closeWait bounds each wait of Close: the loops stop at once when etcd
// answers, and when it does not, closing the client is what ends them.
const closeWait = 2 * time.Second

// Close stops the loops and resigns, in bounded time even when etcd is
// unreachable: etcd's Election.Campaign, when cancelled, resigns with the
// client's own context, which never gives up on its own; closing the
// client cancels that context.
func (c *Coordinator) Close() {
	if c.cancel != nil {
		c.cancel()
	}
	stopped := make(chan struct{})
	go func() { c.wg.Wait(); close(stopped) }()
	answered := true
	select {
	case <-stopped:
	case <-time.After(closeWait):
		answered = false
		c.log.Warn("etcd does not answer: closing the coordination client without resigning")
	}
	if answered {
		// Revoking the leases now frees this instance's keys at once
		// instead of after session_ttl.
		c.mu.Lock()
		sessions := []*concurrency.Session{c.sess}
		for _, cl := range c.joined {
			sessions = append(sessions, cl.session())
		}
		c.mu.Unlock()
		for _, s := range sessions {
			revoke(c.cli, s)
		}
	}
	c.cli.Close()
	select {
	case <-stopped:
	case <-time.After(closeWait):
		c.log.Error("coordination loops did not stop; exiting without them")
	}
}

// revoke ends a session's lease now.
func revoke(cli *clientv3.Client, s *concurrency.Session) {
	if s == nil {
		return
	}
	s.Orphan()
	rctx, cancel := context.WithTimeout(context.Background(), closeWait)
	_, _ = cli.Revoke(rctx, s.Lease())
	cancel()
}
