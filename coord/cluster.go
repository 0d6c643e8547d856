package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/failover"
)

// topologyValue is what etcd stores under a cluster's topology key.
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

// Cluster coordinates one cluster across instances: its own election
// (one leader per cluster, possibly different instances), its topology in
// etcd and the record of a change in progress. It implements
// failover.Coordinator.
type Cluster struct {
	parent  *Coordinator
	cluster *backend.Cluster
	prefix  []string
	log     *zap.Logger

	leader atomic.Bool
	mu     sync.Mutex
	sess   *concurrency.Session // the election's lease
}

var _ failover.Coordinator = (*Cluster)(nil)

func (c *Cluster) key(parts ...string) string {
	return c.parent.key(append(append([]string(nil), c.prefix...), parts...)...)
}

func (c *Cluster) session() *concurrency.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// seed stores the local topology if etcd has none, else adopts etcd's.
func (c *Cluster) seed(ctx context.Context) error {
	master, epoch := c.cluster.Topo.Master()
	val, _ := json.Marshal(topologyValue{Master: master, Epoch: epoch})
	k := c.key("topology")
	resp, err := c.parent.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(val))).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return fmt.Errorf("etcd: read topology of %s: %w", c.cluster.Name, err)
	}
	if resp.Succeeded {
		c.log.Info("topology seeded in etcd", zap.String("master", master), zap.Uint64("epoch", epoch))
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		c.apply(kvs[0].Value)
	}
	return nil
}

// apply makes the local cluster follow a stored topology.
func (c *Cluster) apply(raw []byte) {
	var v topologyValue
	if err := json.Unmarshal(raw, &v); err != nil || v.Master == "" {
		return
	}
	if c.cluster.Topo.SetMasterEpoch(v.Master, v.Epoch) {
		c.log.Warn("topology from etcd applied", zap.String("master", v.Master), zap.Uint64("epoch", v.Epoch))
	}
}

func (c *Cluster) watch(ctx context.Context) {
	cli := c.parent.cli
	for ctx.Err() == nil {
		wch := cli.Watch(clientv3.WithRequireLeader(ctx), c.key("topology"))
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					c.apply(ev.Kv.Value)
				}
			}
		}
		sleep(ctx, 200*time.Millisecond)
		// After a break, catch up with what we missed.
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		if resp, err := cli.Get(gctx, c.key("topology")); err == nil && len(resp.Kvs) == 1 {
			c.apply(resp.Kvs[0].Value)
		}
		cancel()
	}
}

// campaign keeps trying to become (and stay) the cluster's leader.
func (c *Cluster) campaign(ctx context.Context) {
	id := c.parent.set.InstanceID
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(c.parent.cli, concurrency.WithTTL(int(c.parent.set.SessionTTL.Seconds())), concurrency.WithContext(ctx))
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		c.mu.Lock()
		c.sess = sess
		c.mu.Unlock()
		el := concurrency.NewElection(sess, c.key("election"))
		if err := el.Campaign(ctx, id); err != nil {
			sess.Close()
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		c.leader.Store(true)
		c.log.Warn("became the coordination leader", zap.String("instance", id))
		select {
		case <-sess.Done(): // lease lost: etcd unreachable or expired
		case <-ctx.Done():
		}
		c.leader.Store(false)
		c.log.Warn("lost coordination leadership", zap.String("instance", id))
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = el.Resign(rctx)
		cancel()
		sess.Close()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Leader reports whether this instance may act on its own for the cluster.
func (c *Cluster) Leader() bool { return c.leader.Load() && c.parent.Healthy() }

// Healthy reports whether etcd answers.
func (c *Cluster) Healthy() bool { return c.parent.Healthy() }

// Begin records a topology change starting from prevEpoch. It fails with
// ErrLostRace when the stored epoch moved or another change is recorded.
func (c *Cluster) Begin(ctx context.Context, kind, old, candidate string, prevEpoch uint64) (failover.Ticket, error) {
	if !c.Healthy() {
		return nil, errors.New("etcd unreachable: no topology change without coordination")
	}
	cli := c.parent.cli
	resp, err := cli.Get(ctx, c.key("topology"))
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
	op := opValue{Kind: kind, Old: old, Candidate: candidate, PrevEpoch: prevEpoch, Owner: c.parent.set.InstanceID, Rev: resp.Kvs[0].ModRevision}
	val, _ := json.Marshal(op)
	tk, ok := c.key("topology"), c.key("operation")
	txn, err := cli.Txn(ctx).If(
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
func (c *Cluster) Commit(ctx context.Context, t failover.Ticket, master string) (uint64, error) {
	op := t.(*opValue)
	val, _ := json.Marshal(topologyValue{Master: master, Epoch: op.PrevEpoch + 1})
	tk := c.key("topology")
	txn, err := c.parent.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(tk), "=", op.Rev)).
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
func (c *Cluster) Abort(ctx context.Context, t failover.Ticket) {
	op := t.(*opValue)
	val, _ := json.Marshal(op)
	ok := c.key("operation")
	_, _ = c.parent.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(ok), "=", string(val))).Then(clientv3.OpDelete(ok)).Commit()
}

// ClearStale removes an operation whose owner is gone (it died mid-way):
// the next leader redoes the change from the servers' real state.
func (c *Cluster) ClearStale(ctx context.Context) (string, bool) {
	cli := c.parent.cli
	resp, err := cli.Get(ctx, c.key("operation"))
	if err != nil || len(resp.Kvs) == 0 {
		return "", false
	}
	var op opValue
	_ = json.Unmarshal(resp.Kvs[0].Value, &op)
	if op.Owner == c.parent.set.InstanceID {
		return "", false
	}
	m, err := cli.Get(ctx, c.parent.key("instances", op.Owner))
	if err != nil || len(m.Kvs) > 0 {
		return "", false // owner alive: its change is in progress
	}
	_, _ = cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(c.key("operation")), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpDelete(c.key("operation"))).Commit()
	return fmt.Sprintf("%s of %s by %s (to %s)", op.Kind, op.Old, op.Owner, op.Candidate), true
}

// Describe is the coordination state for operators.
func (c *Cluster) Describe() string {
	switch {
	case !c.Healthy():
		return "etcd unreachable (serving with the last known topology, never promoting)"
	case c.Leader():
		return "etcd, leader"
	}
	return "etcd, follower"
}
