package acceptloop

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first accepts with err, then accepts one
// connection, then is closed.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
	err   error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if f.fails > 0 {
		f.fails--
		f.mu.Unlock()
		return nil, f.err
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

// TestTemporaryFailuresBackOffAndRecover: EMFILE (out of file
// descriptors) backs off, is reported, and accepting resumes by itself.
func TestTemporaryFailuresBackOffAndRecover(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: l, fails: 4, err: &net.OpError{Op: "accept", Err: syscall.EMFILE}}
	var wg sync.WaitGroup
	var reported []time.Duration
	served := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Serve(fl, &wg, func(c net.Conn) { c.Close(); close(served) }, func(err error, backoff time.Duration, _ bool) {
			reported = append(reported, backoff)
		})
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not accept again after EMFILE")
	}
	l.Close()
	if err := <-done; err != nil {
		t.Fatalf("closing the listener: %v, want nil", err)
	}
	wg.Wait()
	if len(reported) != 4 || reported[0] != 5*time.Millisecond || reported[3] != 40*time.Millisecond {
		t.Fatalf("back-offs %v, want 5ms doubling four times", reported)
	}
}

// TestPermanentFailureEnds: any other accept error ends the loop with it.
func TestPermanentFailureEnds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	boom := errors.New("listener broken")
	var wg sync.WaitGroup
	err = Serve(&flakyListener{Listener: l, fails: 1, err: boom}, &wg, func(net.Conn) {}, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("Serve = %v, want the accept error", err)
	}
}
