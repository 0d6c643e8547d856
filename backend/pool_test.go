package backend

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// idleConns puts n connections (no socket: only the pool's bookkeeping
// is exercised) into p's idle list, tagged in order.
func idleConns(p *Pool, tags ...string) []*Conn {
	var out []*Conn
	now := time.Now()
	for _, tag := range tags {
		c := &Conn{pool: p, created: now, lastUsed: now}
		p.mu.Lock()
		p.open++
		p.inUse[c] = struct{}{}
		p.mu.Unlock()
		p.Park(c, tag)
		out = append(out, c)
	}
	return out
}

// closeFake closes a pool whose connections have no sockets.
func closeFake(p *Pool) {
	p.mu.Lock()
	p.idle = map[Variant][]*Conn{}
	p.mu.Unlock()
	p.Close()
}

func TestPoolPrefersMatchingTag(t *testing.T) {
	p := NewPool("t", DialOptions{}, PoolOptions{MaxOpen: 4, MaxIdle: 4})
	defer closeFake(p)
	conns := idleConns(p, "db=a", "db=b", "db=c")
	ctx := context.Background()
	cases := []struct {
		tag  string
		want *Conn
	}{
		{"db=a", conns[0]}, // matching tag, though not the most recent
		{"db=x", conns[2]}, // no match: most recently parked
		{"", conns[1]},     // untagged request: most recent left
	}
	for _, tc := range cases {
		c, err := p.AcquireTagged(ctx, Variant{}, tc.tag)
		if err != nil {
			t.Fatal(err)
		}
		if c != tc.want {
			t.Errorf("AcquireTagged(%q) = conn tagged %q, want %q", tc.tag, c.StateTag(), tc.want.StateTag())
		}
	}
	if st := p.Stats(); st.Idle != 0 || st.InUse != 3 || st.Parks != 3 {
		t.Errorf("stats after taking all = %+v", st)
	}
}

func TestPoolWaitsAtMaxOpen(t *testing.T) {
	p := NewPool("t", DialOptions{}, PoolOptions{MaxOpen: 1, MaxIdle: 1})
	defer closeFake(p)
	c := idleConns(p, "x")[0]
	got, err := p.Acquire(context.Background(), Variant{})
	if err != nil || got != c {
		t.Fatalf("first Acquire = %v, %v", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(ctx, Variant{}); err == nil {
		t.Fatal("second Acquire on a full pool succeeded; want a timeout")
	}
	done := make(chan *Conn)
	go func() {
		c2, _ := p.Acquire(context.Background(), Variant{})
		done <- c2
	}()
	// Park only once the goroutine waits: otherwise it could find the
	// connection idle and the test would prove nothing about waking.
	for deadline := time.Now().Add(2 * time.Second); p.Stats().Waiting == 0; {
		if time.Now().After(deadline) {
			t.Fatal("second Acquire never waited")
		}
		runtime.Gosched()
	}
	p.Park(got, "y")
	select {
	case c2 := <-done:
		if c2 != c {
			t.Fatalf("waiter got another connection")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("waiter not woken by Park")
	}
}

// BenchmarkPoolCheckoutReturn: take an idle connection and park it again,
// the per-statement cost of multiplexing on the pool's side.
func BenchmarkPoolCheckoutReturn(b *testing.B) {
	p := NewPool("t", DialOptions{}, PoolOptions{MaxOpen: 64, MaxIdle: 64})
	defer closeFake(p)
	tags := make([]string, 64)
	for i := range tags {
		tags[i] = "db=app"
	}
	idleConns(p, tags...)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := p.AcquireTagged(ctx, Variant{}, "db=app")
			if err != nil {
				b.Error(err)
				return
			}
			p.Park(c, "db=app")
		}
	})
}

// A connection that had a database selected goes back to the general
// list, never to users that need no database (nothing unselects one).
func TestPoolKeepsSchemaSelectedConnsFromNoSchemaUsers(t *testing.T) {
	p := NewPool("t", DialOptions{}, PoolOptions{MaxOpen: 4, MaxIdle: 4})
	defer closeFake(p)
	noSchema := Variant{NoSchema: true}
	now := time.Now()
	clean := &Conn{pool: p, created: now, lastUsed: now, variant: noSchema}
	used := &Conn{pool: p, created: now, lastUsed: now, variant: noSchema}
	used.NoteSchema("app")
	for _, c := range []*Conn{clean, used} {
		p.mu.Lock()
		p.open++
		p.inUse[c] = struct{}{}
		p.mu.Unlock()
		p.Park(c, "")
	}
	p.mu.Lock()
	got := map[bool]int{}
	for v, list := range p.idle {
		got[v.NoSchema] += len(list)
	}
	p.mu.Unlock()
	if got[true] != 1 || got[false] != 1 {
		t.Fatalf("idle by NoSchema = %v, want one of each", got)
	}
	c, err := p.AcquireTagged(context.Background(), noSchema, "")
	if err != nil {
		t.Fatal(err)
	}
	if c != clean {
		t.Fatal("a user without a database got the connection that had one")
	}
}
