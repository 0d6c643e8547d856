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
	rbuf []byte
	rn   int
	rerr syscall.Errno
	w    pendingWrite // Write's
	// q is a request queued by WriteBeforeRead, written by the next Read;
	// queueFailed: that write failed, so the peer never got the request.
	q           pendingWrite
	queueFailed bool
	readF       func(fd uintptr) bool
	sendReadF   func(fd uintptr) bool
	wrF         func(fd uintptr) bool
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
	sc.sendReadF = sc.writeThenRead
	sc.wrF = sc.w.writeSome
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

// WriteBeforeRead queues p, a request whose answer the caller reads
// next: the next Read writes it, then waits for the answer without first
// trying a read that could only find nothing. That saves one system call
// per request (a read returning EAGAIN) and is safe because the write
// happens after the runtime armed the wait: an answer arriving at once
// still wakes it. It must only queue a request on a connection whose
// peer sends nothing unasked (a server in the command phase) and whose
// earlier answers were read in full; Write and Read send the queue
// first. QueuedWriteFailed tells afterwards whether the request got out.
func (c *Conn) WriteBeforeRead(p []byte) {
	c.q, c.queueFailed = pendingWrite{buf: p}, false
}

// QueuedWriteFailed reports whether the request queued by
// WriteBeforeRead was not written (the Read that should have written it
// failed first).
func (c *Conn) QueuedWriteFailed() bool { return c.queueFailed }

// writeThenRead writes the queued request, then reads once the socket is
// readable. A write that fails or that the socket cannot take at once
// ends the callback; Read finishes it the ordinary way.
func (c *Conn) writeThenRead(fd uintptr) bool {
	if c.q.buf != nil {
		if !c.q.writeSome(fd) || c.q.err != 0 {
			return true
		}
		c.q = pendingWrite{}
		return false // the answer cannot be there yet: wait for it
	}
	return c.readOnce(fd)
}

// sendQueued writes what is left of the queued request through the
// ordinary Write (which waits for room, and reports a failure).
func (c *Conn) sendQueued() error {
	rest := c.q.buf[c.q.n:]
	c.q = pendingWrite{}
	if _, err := c.Write(rest); err != nil {
		c.queueFailed = true
		return err
	}
	return nil
}

// Read reads like net.Conn.Read, after writing a queued request.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	f := c.readF
	if c.q.buf != nil {
		f = c.sendReadF
	}
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(f)
	c.rbuf = nil
	if c.q.buf != nil {
		// The queued write failed, the socket took only part of it, or the
		// wait ended before it (closed, deadline): finish it as an
		// ordinary write, which reports the failure, then read.
		if err := c.sendQueued(); err != nil {
			return 0, err
		}
		return c.Read(p)
	}
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

// pendingWrite is one write in progress: what is left of buf past n, or
// the error that stopped it.
type pendingWrite struct {
	buf []byte
	n   int
	err syscall.Errno
}

// writeSome writes until done or an error (true), or until the socket
// buffer is full (false: wait until writable).
func (w *pendingWrite) writeSome(fd uintptr) bool {
	for w.n < len(w.buf) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.buf[w.n])), uintptr(len(w.buf)-w.n))
		switch e {
		case 0:
			w.n += int(r)
		case syscall.EAGAIN:
			return false
		case syscall.EINTR:
		default:
			w.err = e
			return true
		}
	}
	return true
}

// Write writes all of p like net.Conn.Write, after a queued request.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.q.buf != nil {
		if err := c.sendQueued(); err != nil {
			return 0, err
		}
	}
	c.w = pendingWrite{buf: p}
	err := c.rc.Write(c.wrF)
	n, werr := c.w.n, c.w.err
	c.w = pendingWrite{}
	if err != nil {
		return n, c.opError("write", err)
	}
	if werr != 0 {
		return n, c.opError("write", os.NewSyscallError("write", werr))
	}
	return n, nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
