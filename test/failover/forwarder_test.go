package failover_test

import (
	"io"
	"net"
	"testing"
)

func newForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{l: l, target: target}
	go f.serve()
	t.Cleanup(func() { l.Close(); f.setCut(true) })
	return f
}

func (f *forwarder) serve() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		if f.cut.Load() {
			c.Close() // refused, as a broken path would look
			continue
		}
		up, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, c, up)
		f.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// setCut breaks (true) or restores (false) the path.
func (f *forwarder) setCut(cut bool) {
	f.cut.Store(cut)
	if !cut {
		return
	}
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
}
