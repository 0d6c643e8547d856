package sockio

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write use raw system calls.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// State for the read and write callbacks, kept here so the callbacks
	// are bound once (no allocation per call).
	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	wbuf  []byte
	wn    int
	werr  syscall.Errno
	readF func(fd uintptr) bool
	wrF   func(fd uintptr) bool
}

// Wrap returns c with raw-syscall I/O when it is a TCP connection, and c
// unchanged otherwise (TLS, pipes).
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	sc := &Conn{TCPConn: tc, rc: rc}
	sc.readF = sc.readOnce
	sc.wrF = sc.writeSome
	return sc
}

func (c *Conn) readOnce(fd uintptr) bool {
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
	if e == syscall.EAGAIN {
		return false // wait in the netpoller until readable
	}
	if e == syscall.EINTR {
		return c.readOnce(fd)
	}
	c.rn, c.rerr = int(r), e
	return true
}

// Read reads like net.Conn.Read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readF)
	c.rbuf = nil
	if err != nil {
		return 0, c.opError("read", err)
	}
	if c.rerr != 0 {
		return 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	}
	if c.rn == 0 {
		return 0, io.EOF
	}
	return c.rn, nil
}

func (c *Conn) writeSome(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wbuf[c.wn])), uintptr(len(c.wbuf)-c.wn))
		switch e {
		case 0:
			c.wn += int(r)
		case syscall.EAGAIN:
			return false // socket buffer full: wait until writable
		case syscall.EINTR:
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// Write writes all of p like net.Conn.Write.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.wrF)
	n := c.wn
	c.wbuf = nil
	if err != nil {
		return n, c.opError("write", err)
	}
	if c.werr != 0 {
		return n, c.opError("write", os.NewSyscallError("write", c.werr))
	}
	return n, nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
