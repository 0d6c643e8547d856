package backend

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/cowmap"
)

// RouteCounters count, per server, the statements routed there and those
// running there now (SHOW BACKENDS, and SET OFFLINE's drain). Counters of
// a server are created on first use and never removed, so a session keeps
// a stable pointer for the statement it runs.
type RouteCounters struct {
	by cowmap.Map[string, *serverCounters] // by server name: read without a lock on every statement
}

type serverCounters struct {
	routed   atomic.Uint64
	inflight atomic.Int64
}

// NewRouteCounters returns empty counters.
func NewRouteCounters() *RouteCounters { return &RouteCounters{} }

func (c *RouteCounters) of(name string) *serverCounters {
	return c.by.LoadOrMake(name, func() *serverCounters { return &serverCounters{} })
}

// Begin counts a statement routed to a server, in flight until End.
func (c *RouteCounters) Begin(name string) *StatementCount {
	sc := c.of(name)
	sc.routed.Add(1)
	sc.inflight.Add(1)
	return (*StatementCount)(sc)
}

// StatementCount is a statement counted in flight by Begin.
type StatementCount serverCounters

// End marks the statement finished.
func (sc *StatementCount) End() { sc.inflight.Add(-1) }

// Routed returns how many statements were routed to a server.
func (c *RouteCounters) Routed(name string) uint64 { return c.of(name).routed.Load() }

// Drain waits (bounded by ctx) until no statement runs on a server.
func (c *RouteCounters) Drain(ctx context.Context, name string) error {
	sc := c.of(name)
	for sc.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d statement(s) still running on %s: %w", sc.inflight.Load(), name, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
