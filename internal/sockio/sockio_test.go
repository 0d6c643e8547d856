package sockio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns a wrapped client side and the plain server side of a
// loopback TCP connection.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	w := Wrap(c)
	if _, ok := w.(*Conn); !ok {
		t.Fatalf("Wrap(*net.TCPConn) = %T, want *sockio.Conn", w)
	}
	t.Cleanup(func() { w.Close(); s.Close() })
	return w, s
}

func TestLargeWriteWaitsForSlowReader(t *testing.T) {
	c, s := pair(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB: fills the socket buffers
	got := make(chan []byte)
	go func() {
		var buf bytes.Buffer
		chunk := make([]byte, 4096)
		for buf.Len() < len(payload) {
			n, err := s.Read(chunk)
			if err != nil {
				break
			}
			buf.Write(chunk[:n])
			if buf.Len() < 1<<20 {
				time.Sleep(time.Millisecond) // slow at first: the writer must wait
			}
		}
		got <- buf.Bytes()
	}()
	n, err := c.Write(payload)
	if err != nil || n != len(payload) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("reader got %d bytes, different from the %d written", len(b), len(payload))
	}
}

func TestReadCases(t *testing.T) {
	cases := []struct {
		name  string
		act   func(c, s net.Conn)
		check func(t *testing.T, n int, err error)
	}{
		{"data", func(c, s net.Conn) { s.Write([]byte("hello")) }, func(t *testing.T, n int, err error) {
			if err != nil || n != 5 {
				t.Errorf("Read = %d, %v; want 5, nil", n, err)
			}
		}},
		{"peer closed", func(c, s net.Conn) { s.Close() }, func(t *testing.T, n int, err error) {
			if !errors.Is(err, io.EOF) {
				t.Errorf("Read after peer close = %d, %v; want EOF", n, err)
			}
		}},
		{"deadline", func(c, s net.Conn) { c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) }, func(t *testing.T, n int, err error) {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Read past deadline = %v; want a timeout", err)
			}
		}},
		{"closed locally", func(c, s net.Conn) { time.AfterFunc(20*time.Millisecond, func() { c.Close() }) }, func(t *testing.T, n int, err error) {
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read on a closed conn = %v; want net.ErrClosed", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t)
			tc.act(c, s)
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			tc.check(t, n, err)
		})
	}
}

func TestWrapLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("Wrap changed a non-TCP connection")
	}
}

func TestWriteToClosedPeerFails(t *testing.T) {
	c, s := pair(t)
	s.(*net.TCPConn).SetLinger(0)
	s.Close() // reset: later writes get EPIPE or ECONNRESET, not a signal
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Write([]byte("after the peer is gone"))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a reset peer kept succeeding")
	}
}

// echo answers every request on s with the same bytes, at once.
func echo(s net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if err != nil {
			return
		}
		if _, err := s.Write(buf[:n]); err != nil {
			return
		}
	}
}

func TestWriteBeforeReadRoundTrips(t *testing.T) {
	c, s := pair(t)
	go echo(s)
	sc := c.(*Conn)
	// Many round trips against a peer that answers at once: an answer
	// arriving before the wait is armed would hang a Read here.
	for i := 0; i < 2000; i++ {
		req := []byte(fmt.Sprintf("request %d", i))
		sc.WriteBeforeRead(req)
		got := make([]byte, len(req))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		if !bytes.Equal(got, req) {
			t.Fatalf("round trip %d: got %q, want %q", i, got, req)
		}
		if sc.QueuedWriteFailed() {
			t.Fatalf("round trip %d: QueuedWriteFailed after a successful write", i)
		}
	}
}

func TestWriteBeforeReadCases(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB: more than the socket takes at once
	cases := []struct {
		name string
		// run queues a request on c (the peer is s) and reads; it
		// returns what QueuedWriteFailed should then say.
		run        func(t *testing.T, c *Conn, s net.Conn) error
		wantFailed bool
	}{
		{"large request is finished by an ordinary write", func(t *testing.T, c *Conn, s net.Conn) error {
			go func() {
				_, _ = io.CopyN(io.Discard, s, int64(len(big)))
				_, _ = s.Write([]byte("done"))
			}()
			c.WriteBeforeRead(big)
			got := make([]byte, 4)
			_, err := io.ReadFull(c, got)
			if err == nil && string(got) != "done" {
				t.Errorf("read %q after the large request, want done", got)
			}
			return err
		}, false},
		{"a Write sends the queued request first", func(t *testing.T, c *Conn, s net.Conn) error {
			c.WriteBeforeRead([]byte("first,"))
			if _, err := c.Write([]byte("second")); err != nil {
				return err
			}
			got := make([]byte, len("first,second"))
			if _, err := io.ReadFull(s, got); err != nil {
				return err
			}
			if string(got) != "first,second" {
				t.Errorf("peer read %q, want first,second", got)
			}
			return nil
		}, false},
		{"deadline while waiting for the answer", func(t *testing.T, c *Conn, s net.Conn) error {
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
			c.WriteBeforeRead([]byte("unanswered"))
			_, err := c.Read(make([]byte, 16))
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Read = %v, want a timeout", err)
			}
			got := make([]byte, len("unanswered"))
			if _, rerr := io.ReadFull(s, got); rerr != nil || string(got) != "unanswered" {
				t.Errorf("peer read %q, %v: the request should have been sent", got, rerr)
			}
			return nil
		}, false},
		{"closed before the read", func(t *testing.T, c *Conn, s net.Conn) error {
			c.WriteBeforeRead([]byte("never sent"))
			c.Close()
			_, err := c.Read(make([]byte, 16))
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read = %v, want net.ErrClosed", err)
			}
			return nil
		}, true},
		{"peer reset", func(t *testing.T, c *Conn, s net.Conn) error {
			s.(*net.TCPConn).SetLinger(0)
			s.Close()
			var err error
			for i := 0; i < 100 && !c.QueuedWriteFailed(); i++ {
				c.WriteBeforeRead([]byte("after the peer is gone"))
				_, err = c.Read(make([]byte, 16))
				time.Sleep(time.Millisecond)
			}
			if err == nil {
				t.Error("Read after a reset succeeded")
			}
			return nil
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t)
			sc := c.(*Conn)
			if err := tc.run(t, sc, s); err != nil {
				t.Fatal(err)
			}
			if got := sc.QueuedWriteFailed(); got != tc.wantFailed {
				t.Errorf("QueuedWriteFailed = %v, want %v", got, tc.wantFailed)
			}
		})
	}
}
