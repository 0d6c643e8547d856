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
	"github.com/switchyard/switchyard/failover"
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

// topologyValue is what etcd stores under <prefix>/topology.
type topologyValue struct {
	Master string `json:"master"`
	Epoch  uint64 `json:"epoch"`
}

// opValue records a topology change in progress.
type opValue struct {
	Kind      string `json:"kind"`
	Old       string `json:"old"`
	Candidate string `json:"candidate"`
	PrevEpoch uint64 `json:"prev_epoch"`
	Owner     string `json:"owner"`
	Rev       int64  `json:"rev"` // topology revision the change started from
}

// memberValue is this instance's registration.
type memberValue struct {
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Epoch   uint64 `json:"epoch"`
	Master  string `json:"master"`
	Leader  bool   `json:"leader"`
	Updated string `json:"updated"`
}

// Coordinator implements failover.Coordinator on etcd.
type Coordinator struct {
	set     Settings
	cli     *clientv3.Client
	cluster *backend.Cluster
	log     *zap.Logger

	leader  atomic.Bool
	healthy atomic.Bool
	mu      sync.Mutex
	sess    *concurrency.Session
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// ErrLostRace means another instance changed the topology first.
var ErrLostRace = errors.New("another Switchyard instance changed the topology first")

func (c *Coordinator) key(parts ...string) string {
	return strings.TrimRight(c.set.Prefix, "/") + "/" + strings.Join(parts, "/")
}

// Start connects, seeds or adopts the stored topology, and starts the
// background loops. The local topology (discovered from the servers) seeds
// etcd only when etcd holds none yet.
func Start(ctx context.Context, set Settings, cluster *backend.Cluster, log *zap.Logger) (*Coordinator, error) {
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
	c := &Coordinator{set: set, cli: cli, cluster: cluster, log: log}
	sctx, cancel := context.WithTimeout(ctx, 5*set.DialTimeout)
	defer cancel()
	if err := c.seed(sctx); err != nil {
		cli.Close()
		return nil, err
	}
	c.healthy.Store(true)
	runCtx, stop := context.WithCancel(context.Background())
	c.cancel = stop
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.campaign(runCtx) }()
	go func() { defer c.wg.Done(); c.watch(runCtx) }()
	go func() { defer c.wg.Done(); c.heartbeat(runCtx) }()
	return c, nil
}

// seed stores the local topology if etcd has none, else adopts etcd's.
func (c *Coordinator) seed(ctx context.Context) error {
	master, epoch := c.cluster.Master()
	val, _ := json.Marshal(topologyValue{Master: master, Epoch: epoch})
	k := c.key("topology")
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(val))).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return fmt.Errorf("etcd: read topology: %w", err)
	}
	if resp.Succeeded {
		c.log.Info("topology seeded in etcd", zap.String("master", master), zap.Uint64("epoch", epoch))
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 {
		c.apply(kvs[0].Value)
	}
	return nil
}

// apply makes the local cluster follow a stored topology.
func (c *Coordinator) apply(raw []byte) {
	var v topologyValue
	if err := json.Unmarshal(raw, &v); err != nil || v.Master == "" {
		return
	}
	if c.cluster.SetMasterEpoch(v.Master, v.Epoch) {
		c.log.Warn("topology from etcd applied", zap.String("master", v.Master), zap.Uint64("epoch", v.Epoch))
	}
}

func (c *Coordinator) watch(ctx context.Context) {
	for ctx.Err() == nil {
		wch := c.cli.Watch(clientv3.WithRequireLeader(ctx), c.key("topology"))
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					c.apply(ev.Kv.Value)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
		// After a break, catch up with what we missed.
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		if resp, err := c.cli.Get(gctx, c.key("topology")); err == nil && len(resp.Kvs) == 1 {
			c.apply(resp.Kvs[0].Value)
		}
		cancel()
	}
}

// campaign keeps trying to become (and stay) the leader.
func (c *Coordinator) campaign(ctx context.Context) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(c.cli, concurrency.WithTTL(int(c.set.SessionTTL.Seconds())), concurrency.WithContext(ctx))
		if err != nil {
			c.sleep(ctx, time.Second)
			continue
		}
		c.mu.Lock()
		c.sess = sess
		c.mu.Unlock()
		el := concurrency.NewElection(sess, c.key("election"))
		if err := el.Campaign(ctx, c.set.InstanceID); err != nil {
			sess.Close()
			c.sleep(ctx, 500*time.Millisecond)
			continue
		}
		c.leader.Store(true)
		c.log.Warn("became the coordination leader", zap.String("instance", c.set.InstanceID))
		select {
		case <-sess.Done(): // lease lost: etcd unreachable or expired
		case <-ctx.Done():
		}
		c.leader.Store(false)
		c.log.Warn("lost coordination leadership", zap.String("instance", c.set.InstanceID))
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = el.Resign(rctx)
		cancel()
		sess.Close()
	}
}

func (c *Coordinator) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// heartbeat checks etcd and refreshes this instance's registration (with
// the epoch it has applied).
func (c *Coordinator) heartbeat(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		master, epoch := c.cluster.Master()
		v, _ := json.Marshal(memberValue{ID: c.set.InstanceID, Addr: c.set.Addr, Epoch: epoch, Master: master,
			Leader: c.leader.Load(), Updated: time.Now().UTC().Format(time.RFC3339)})
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		var err error
		c.mu.Lock()
		sess := c.sess
		c.mu.Unlock()
		if sess != nil {
			_, err = c.cli.Put(hctx, c.key("instances", c.set.InstanceID), string(v), clientv3.WithLease(sess.Lease()))
		} else {
			_, err = c.cli.Get(hctx, c.key("topology"))
		}
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

// Leader reports whether this instance may act on its own.
func (c *Coordinator) Leader() bool { return c.leader.Load() && c.healthy.Load() }

// Healthy reports whether etcd answers.
func (c *Coordinator) Healthy() bool { return c.healthy.Load() }

// Begin records a topology change starting from prevEpoch. It fails with
// ErrLostRace when the stored epoch moved or another change is recorded.
func (c *Coordinator) Begin(ctx context.Context, kind, old, candidate string, prevEpoch uint64) (failover.Ticket, error) {
	if !c.healthy.Load() {
		return nil, errors.New("etcd unreachable: no topology change without coordination")
	}
	resp, err := c.cli.Get(ctx, c.key("topology"))
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if len(resp.Kvs) != 1 {
		return nil, errors.New("etcd holds no topology")
	}
	var cur topologyValue
	_ = json.Unmarshal(resp.Kvs[0].Value, &cur)
	if cur.Epoch != prevEpoch {
		return nil, fmt.Errorf("%w (epoch %d, this instance is at %d)", ErrLostRace, cur.Epoch, prevEpoch)
	}
	op := opValue{Kind: kind, Old: old, Candidate: candidate, PrevEpoch: prevEpoch, Owner: c.set.InstanceID, Rev: resp.Kvs[0].ModRevision}
	val, _ := json.Marshal(op)
	tk, ok := c.key("topology"), c.key("operation")
	txn, err := c.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(tk), "=", op.Rev),
		clientv3.Compare(clientv3.CreateRevision(ok), "=", 0),
	).Then(clientv3.OpPut(ok, string(val))).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if !txn.Succeeded {
		return nil, fmt.Errorf("%w (a change is already recorded)", ErrLostRace)
	}
	return &op, nil
}

// Commit stores the new master with epoch+1 (compare-and-swap on the
// revision the change started from) and clears the operation.
func (c *Coordinator) Commit(ctx context.Context, t failover.Ticket, master string) (uint64, error) {
	op := t.(*opValue)
	val, _ := json.Marshal(topologyValue{Master: master, Epoch: op.PrevEpoch + 1})
	tk := c.key("topology")
	txn, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(tk), "=", op.Rev)).
		Then(clientv3.OpPut(tk, string(val)), clientv3.OpDelete(c.key("operation"))).Commit()
	if err != nil {
		return 0, fmt.Errorf("etcd: %w", err)
	}
	if !txn.Succeeded {
		return 0, ErrLostRace
	}
	return op.PrevEpoch + 1, nil
}

// Abort clears the operation record (the change did not happen).
func (c *Coordinator) Abort(ctx context.Context, t failover.Ticket) {
	op := t.(*opValue)
	val, _ := json.Marshal(op)
	ok := c.key("operation")
	_, _ = c.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(ok), "=", string(val))).Then(clientv3.OpDelete(ok)).Commit()
}

// ClearStale removes an operation whose owner is gone (it died mid-way):
// the next leader redoes the change from the servers' real state.
func (c *Coordinator) ClearStale(ctx context.Context) (string, bool) {
	resp, err := c.cli.Get(ctx, c.key("operation"))
	if err != nil || len(resp.Kvs) == 0 {
		return "", false
	}
	var op opValue
	_ = json.Unmarshal(resp.Kvs[0].Value, &op)
	if op.Owner == c.set.InstanceID {
		return "", false
	}
	m, err := c.cli.Get(ctx, c.key("instances", op.Owner))
	if err != nil || len(m.Kvs) > 0 {
		return "", false // owner alive: its change is in progress
	}
	_, _ = c.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(c.key("operation")), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpDelete(c.key("operation"))).Commit()
	return fmt.Sprintf("%s of %s by %s (to %s)", op.Kind, op.Old, op.Owner, op.Candidate), true
}

// Member is one registered instance.
type Member struct {
	ID, Addr, Master string
	Epoch            uint64
	Leader           bool
	Updated          string
}

// Members lists registered instances (from etcd).
func (c *Coordinator) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.cli.Get(ctx, c.key("instances")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, kv := range resp.Kvs {
		var v memberValue
		if json.Unmarshal(kv.Value, &v) == nil {
			out = append(out, Member{ID: v.ID, Addr: v.Addr, Master: v.Master, Epoch: v.Epoch, Leader: v.Leader, Updated: v.Updated})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
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
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess != nil && answered {
		// Revoking the lease now frees this instance's keys at once
		// instead of after session_ttl.
		sess.Orphan()
		rctx, cancel := context.WithTimeout(context.Background(), closeWait)
		_, _ = c.cli.Revoke(rctx, sess.Lease())
		cancel()
	}
	c.cli.Close()
	select {
	case <-stopped:
	case <-time.After(closeWait):
		c.log.Error("coordination loops did not stop; exiting without them")
	}
}
