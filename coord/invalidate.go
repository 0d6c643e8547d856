package coord

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Result-cache invalidations travel between instances under
// <prefix>/cache/invalidate: each write through one instance is published
// there (tables of one cluster, or the whole cluster), and every other
// instance drops what it cached of them. Publishing never waits on a
// session: writes queue their tables, and one goroutine puts them,
// merging what queued while a put was in flight.

// invalidation is one published message.
type invalidation struct {
	From    string              `json:"from"`
	Tables  map[string][]string `json:"tables"` // cluster → tables; an empty list: the whole cluster
	Written string              `json:"written"`
}

// PublishInvalidation queues a cache invalidation for the other
// instances (tables nil: the whole cluster). It never blocks.
func (c *Coordinator) PublishInvalidation(cluster string, tables []string) {
	c.invMu.Lock()
	if c.invPending == nil {
		c.invPending = map[string]map[string]bool{}
	}
	set := c.invPending[cluster]
	if set == nil {
		set = map[string]bool{}
		c.invPending[cluster] = set
	}
	if len(tables) == 0 {
		set[""] = true // the whole cluster
	}
	for _, t := range tables {
		set[t] = true
	}
	c.invMu.Unlock()
	select {
	case c.invWake <- struct{}{}:
	default:
	}
}

// publishLoop puts queued invalidations, one put at a time.
func (c *Coordinator) publishLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.invWake:
		}
		c.invMu.Lock()
		pending := c.invPending
		c.invPending = nil
		c.invMu.Unlock()
		if len(pending) == 0 {
			continue
		}
		msg := invalidation{From: c.set.InstanceID, Tables: map[string][]string{}, Written: time.Now().UTC().Format(time.RFC3339Nano)}
		for cluster, set := range pending {
			list := []string{}
			if !set[""] {
				for t := range set {
					list = append(list, t)
				}
				sort.Strings(list)
			}
			msg.Tables[cluster] = list
		}
		b, _ := json.Marshal(msg)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if _, err := c.cli.Put(pctx, c.key("cache", "invalidate"), string(b)); err != nil {
			c.log.Warn("cannot publish a cache invalidation to the other instances", zap.Error(err))
		}
		cancel()
	}
}

// WatchInvalidations calls apply for every invalidation another instance
// publishes (tables nil: the whole cluster), until Close.
func (c *Coordinator) WatchInvalidations(apply func(cluster string, tables []string)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for c.ctx.Err() == nil {
			for resp := range c.cli.Watch(clientv3.WithRequireLeader(c.ctx), c.key("cache", "invalidate")) {
				for _, ev := range resp.Events {
					var msg invalidation
					if json.Unmarshal(ev.Kv.Value, &msg) != nil || msg.From == c.set.InstanceID {
						continue
					}
					for cluster, tables := range msg.Tables {
						if len(tables) == 0 {
							tables = nil
						}
						apply(cluster, tables)
					}
				}
			}
			select { // the watch ended (etcd unreachable): try again shortly
			case <-c.ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
}
