package coord

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The runtime configuration layer (users, rules, weights and offline
// state changed on the admin port) lives under <prefix>/config/runtime
// when instances coordinate: a change is a compare-and-swap on the key's
// revision, and every instance watches the key and applies what it
// holds. Each instance's registration says which version it applied.

// Runtime is the stored layer and the revision to compare against.
type Runtime struct {
	Text     []byte // conf.MarshalRuntime's form; empty when none was ever stored
	Revision int64  // the key's ModRevision (0: absent)
}

// LoadRuntime reads the layer.
func (c *Coordinator) LoadRuntime(ctx context.Context) (Runtime, error) {
	resp, err := c.cli.Get(ctx, c.key("config", "runtime"))
	if err != nil {
		return Runtime{}, fmt.Errorf("etcd: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return Runtime{}, nil
	}
	return Runtime{Text: resp.Kvs[0].Value, Revision: resp.Kvs[0].ModRevision}, nil
}

// StoreRuntime replaces the layer if it is still at revision (0: absent);
// otherwise another instance changed it first (ErrLostRace).
func (c *Coordinator) StoreRuntime(ctx context.Context, revision int64, text []byte) error {
	k := c.key("config", "runtime")
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", revision)).
		Then(clientv3.OpPut(k, string(text))).Commit()
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if !resp.Succeeded {
		return ErrLostRace
	}
	return nil
}

// WatchRuntime calls apply with every new version of the layer, until
// Close (and once at once with the current one).
func (c *Coordinator) WatchRuntime(apply func(Runtime)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for c.ctx.Err() == nil {
			gctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
			cur, err := c.LoadRuntime(gctx)
			cancel()
			if err == nil {
				apply(cur)
				opts := []clientv3.OpOption{}
				if cur.Revision > 0 {
					opts = append(opts, clientv3.WithRev(cur.Revision+1))
				}
				for resp := range c.cli.Watch(clientv3.WithRequireLeader(c.ctx), c.key("config", "runtime"), opts...) {
					for _, ev := range resp.Events {
						if ev.Type == clientv3.EventTypePut {
							apply(Runtime{Text: ev.Kv.Value, Revision: ev.Kv.ModRevision})
						}
					}
				}
			}
			select { // the watch ended (etcd unreachable): start again
			case <-c.ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
}

// SetConfigVersion records the runtime configuration version this
// instance applied, for its registration (SHOW CLUSTER, SHOW CONFIG).
func (c *Coordinator) SetConfigVersion(v int64) { c.configVersion.Store(v) }
