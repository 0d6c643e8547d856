package backend

import (
	"net"
	"testing"
	"time"
)

// TestAlive: an idle connection the server closed, or sent unasked bytes
// on, is not used again; a live idle one is.
func TestAlive(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dial := func() (*Conn, net.Conn) {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		srv, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c := Wrap(nc)
		c.tcp = nc.(*net.TCPConn)
		c.sent = time.Now().Add(-time.Minute)
		return c, srv
	}
	c, srv := dial()
	if !c.Alive(time.Now(), time.Second) {
		t.Fatal("a live idle connection was taken for dead")
	}
	srv.Close()
	if !eventually(func() bool { return !c.Alive(time.Now(), time.Second) }) || !c.Broken() {
		t.Fatal("a connection the server closed was taken for alive")
	}
	c2, srv2 := dial()
	defer srv2.Close()
	c2.sent = time.Now()
	srv2.Close()
	if !c2.Alive(time.Now(), time.Hour) {
		t.Fatal("a connection used just now was looked at (it should be taken as alive)")
	}
	c3, srv3 := dial()
	defer srv3.Close()
	if _, err := srv3.Write([]byte{0xff}); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { return !c3.Alive(time.Now(), time.Second) }) {
		t.Fatal("a connection with unasked bytes was taken for alive")
	}
}

// eventually polls cond for up to a second (loopback delivers within it).
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}
