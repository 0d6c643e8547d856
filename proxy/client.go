package proxy

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/packet"

	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/internal/sockio"
)

// clientConn is a session's one handle on its client socket after the
// handshake: packet framing (go-mysql's, on the connection the handshake
// negotiated, TLS or not), a write buffer flushed before every read, and
// the accepted socket for deadlines and closing.
type clientConn struct {
	raw net.Conn     // the accepted socket
	pc  *packet.Conn // framing; writes go through out
	out *flushConn
	in  limitWriter // the command being read, reused
	// flushFn is flush as a func value, made once (no allocation per
	// backend connection taken).
	flushFn func()
}

// adopt takes over the packet connection go-mysql's handshake left.
func (c *clientConn) adopt(pc *packet.Conn) {
	c.pc = pc
	c.out = newFlushConn(sockio.Wrap(pc.Conn))
	pc.Conn = c.out
	c.flushFn = func() { _ = c.flush() }
}

// readCommand reads the next command packet (at most max bytes); the
// slice is valid until the next read.
func (c *clientConn) readCommand(max int) ([]byte, error) {
	c.pc.ResetSequence()
	c.in.reset(max)
	if err := c.pc.ReadPacketTo(&c.in); err != nil {
		if c.in.exceeded {
			return nil, errPacketTooLarge // go-mysql wraps the writer's error as text
		}
		return nil, err
	}
	return c.in.buf.Bytes(), nil
}

// write sends one packet (p starts with a 4-byte header gap).
func (c *clientConn) write(p []byte) error {
	if err := c.pc.WritePacket(p); err != nil {
		return fmt.Errorf("%w: %v", errClientWrite, err)
	}
	return nil
}

// flush sends what is buffered (before the proxy blocks on a backend).
func (c *clientConn) flush() error {
	if c.out == nil {
		return nil
	}
	return c.out.Flush()
}

func (c *clientConn) isTLS() bool {
	_, ok := c.out.Conn.(*tls.Conn)
	return ok
}

// idleFor bounds the wait for the next command by the session's
// wait_timeout; it reports whether it armed a deadline (clear it once the
// command is read). Timeouts of an hour or more (the servers' default is
// 8 hours) are not armed: that saves two timer updates per command, and a
// backend connection its server closes meanwhile is replaced anyway.
func (c *clientConn) idleFor(d time.Duration) bool {
	if d <= 0 || d >= time.Hour {
		return false
	}
	_ = c.raw.SetReadDeadline(time.Now().Add(d))
	return true
}

// wakeReader makes a blocked read return now (Shutdown, KILL).
func (c *clientConn) wakeReader() { _ = c.raw.SetReadDeadline(time.Now()) }

func (c *clientConn) close() { _ = c.raw.Close() }

// errClientWrite marks a failed write to the client: nobody to answer.
var errClientWrite = errors.New("write to client failed")

// flushConn buffers writes to the client and flushes them before any read
// from the client: a response is sent in a few syscalls rather than one
// per packet, and can never sit in the buffer while we wait for the client.
type flushConn struct {
	net.Conn
	buf *[]byte // nil while nothing is buffered (see writeBufs)
	// capture, while on, keeps a copy of everything written (a reply
	// that will fill the result cache), up to captureMax bytes.
	capture    []byte
	capturing  bool
	captureMax int
}

// startCapture keeps a copy of what is written from now on, up to max
// bytes (more and the copy is given up).
func (c *clientConn) startCapture(max int) {
	c.out.capture, c.out.capturing, c.out.captureMax = nil, true, max
}

// stopCapture ends the copy and returns it; ok is false when it grew
// past its bound.
func (c *clientConn) stopCapture() (data []byte, ok bool) {
	data, ok = c.out.capture, c.out.capturing
	c.out.capture, c.out.capturing = nil, false
	return data, ok
}

// writeBufs holds client write buffers: a session holds one only while
// it has unsent bytes, so idle sessions cost none.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize); return &b }}

const writeBufSize = 32 * 1024

func newFlushConn(c net.Conn) *flushConn { return &flushConn{Conn: c} }

func (f *flushConn) Write(p []byte) (int, error) {
	if f.capturing {
		if len(f.capture)+len(p) > f.captureMax {
			f.capture, f.capturing = nil, false
		} else {
			f.capture = append(f.capture, p...)
		}
	}
	if f.buf != nil && len(*f.buf)+len(p) > writeBufSize {
		if err := f.Flush(); err != nil {
			return 0, err
		}
	}
	if len(p) >= writeBufSize {
		return f.Conn.Write(p) // nothing buffered: a big packet goes straight out
	}
	if f.buf == nil {
		f.buf = writeBufs.Get().(*[]byte)
	}
	*f.buf = append(*f.buf, p...)
	return len(p), nil
}

func (f *flushConn) Read(p []byte) (int, error) {
	if err := f.Flush(); err != nil {
		return 0, err
	}
	return f.Conn.Read(p)
}

// Flush sends buffered bytes and gives the buffer back.
func (f *flushConn) Flush() error {
	if f.buf == nil {
		return nil
	}
	b := f.buf
	f.buf = nil
	_, err := f.Conn.Write(*b)
	*b = (*b)[:0]
	writeBufs.Put(b)
	return err
}

// errPacketTooLarge is returned by limitWriter past max_allowed_packet.
var errPacketTooLarge = errors.New("packet larger than max_allowed_packet")

// limitWriter collects one client packet and refuses to grow past max, so
// an oversized packet costs at most max bytes of memory.
type limitWriter struct {
	buf      bytes.Buffer
	max      int
	exceeded bool
}

// reset prepares for the next packet, keeping a modest buffer.
func (l *limitWriter) reset(max int) {
	if l.buf.Cap() > maxKeptBuffer {
		l.buf = bytes.Buffer{}
	}
	l.buf.Reset()
	l.max, l.exceeded = max, false
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.buf.Len()+len(p) > l.max {
		l.exceeded = true
		return 0, errPacketTooLarge
	}
	return l.buf.Write(p)
}

// errPacketFor builds an ERR packet (with header gap) in the framing the
// client negotiated: without CLIENT_PROTOCOL_41 there is no SQLSTATE.
func errPacketFor(e *mysql.MyError, caps uint32) []byte {
	b := make([]byte, 0, 13+len(e.Message))
	b = append(b, 0, 0, 0, 0, mysql.ERR_HEADER, byte(e.Code), byte(e.Code>>8))
	if caps&mysql.CLIENT_PROTOCOL_41 != 0 {
		state := e.State
		if len(state) != 5 {
			state = mysql.DEFAULT_MYSQL_STATE
		}
		b = append(b, '#')
		b = append(b, state...)
	}
	return append(b, e.Message...)
}

// flushHook is what backend connections call before they block on a
// read: what is buffered for the client leaves first.
func (c *clientConn) flushHook() func() { return c.flushFn }

// reauthenticate runs COM_CHANGE_USER's authentication: an auth switch to
// mysql_native_password with a fresh scramble, the client's answer
// checked against the user's configured password (and its TLS demand).
// A refusal is closeWith (1045): the connection ends, as on MariaDB.
func (c *clientConn) reauthenticate(users map[string]conf.User, name string) (conf.User, error) {
	salt := mysql.RandomBuf(20)
	sw := []byte{0, 0, 0, 0, mysql.EOF_HEADER}
	sw = append(sw, mysql.AUTH_NATIVE_PASSWORD...)
	sw = append(sw, 0)
	sw = append(sw, salt...)
	sw = append(sw, 0)
	if err := c.write(sw); err != nil {
		return conf.User{}, err
	}
	reply, err := c.pc.ReadPacket()
	if err != nil {
		return conf.User{}, err
	}
	u, known := users[name]
	ok := known && (u.PasswordHash != "" && matchesNativeHash(reply, salt, u.PasswordHash) ||
		u.PasswordHash == "" && u.Password.Value() == "" && len(reply) == 0 ||
		u.Password.Value() != "" && subtle.ConstantTimeCompare(reply, mysql.CalcNativePassword(salt, []byte(u.Password.Value()))) == 1)
	if !ok || (u.RequireTLS && !c.isTLS()) {
		return conf.User{}, closeWith{errAccessDenied(name, hostOf(c.raw.RemoteAddr()), len(reply) > 0)}
	}
	return u, nil
}
