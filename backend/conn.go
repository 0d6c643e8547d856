package backend

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/packet"

	"github.com/switchyard/switchyard/internal/sockio"
)

// Capabilities every backend connection negotiates. The proxy relays result
// packets byte for byte, so the framing must be one it knows: classic EOF
// packets (no CLIENT_DEPRECATE_EOF), no query attributes, and session
// tracking on so OK packets report schema, variable and GTID changes.
const (
	wantCaps = mysql.CLIENT_MULTI_STATEMENTS | mysql.CLIENT_MULTI_RESULTS |
		mysql.CLIENT_PS_MULTI_RESULTS | mysql.CLIENT_SESSION_TRACK
	refuseCaps = mysql.CLIENT_DEPRECATE_EOF | mysql.CLIENT_QUERY_ATTRIBUTES
)

// Variant selects connection properties that can only be fixed at
// handshake time; pools keep idle connections per variant.
type Variant struct {
	// FoundRows: UPDATE reports matched rather than changed rows.
	FoundRows bool
	// LocalInfile: the connection may receive LOAD DATA LOCAL requests.
	LocalInfile bool
	// NoMultiResults: for a client that cannot read several results; the
	// server then answers a CALL that returns rows with its own error.
	NoMultiResults bool
	// NoSchema: the connection has no default database selected. No
	// statement unselects one, so a session without a database needs
	// such a connection; the pool moves a connection that got one to the
	// other kind when it comes back (see Pool.putIdle).
	NoSchema bool
}

// DialOptions describe how to reach and log in to one server.
type DialOptions struct {
	Addr     string
	User     string
	Password string
	TLS      *tls.Config // nil: plain TCP
}

// Conn is one authenticated connection to a backend server. It is used by
// one goroutine at a time (the session that acquired it).
type Conn struct {
	*client.Conn
	net      net.Conn
	hook     *hookConn
	sock     *sockio.Conn  // the raw-syscall socket under hook (nil: TLS, scripted)
	rd       *bufio.Reader // every read from the server goes through it
	pool     *Pool
	variant  Variant
	created  time.Time
	lastUsed time.Time
	// multiStatements mirrors COM_SET_OPTION state (on after connect).
	multiStatements bool
	// hasDeadline: a deadline is set on net (SetDeadline).
	hasDeadline bool
	// schemaSelected: a default database was selected on it at some
	// point (NoteSchema); it then never serves a Variant.NoSchema user.
	schemaSelected bool
	// stateTag is an opaque description of the session state left on a
	// parked connection (see Pool.Park); empty after a reset.
	stateTag string
	// broken is set when the connection's protocol state is unknown
	// (I/O error, timeout, abandoned result, killed); it is then never
	// reused. Atomic: KillInUse sets it from the monitor's goroutine.
	broken atomic.Bool
	// tcp is the socket under any TLS (nil for a scripted stream): Alive
	// peeks at it.
	tcp *net.TCPConn
	// sent is when the last command was written (Sent).
	sent time.Time
}

// SentAt records that a command was written at now (the caller's clock
// reading: one per command is enough, and each costs).
func (c *Conn) SentAt(now time.Time) { c.sent = now }

// Alive reports whether a connection idle for more than after (as of
// now) can still be used: a server that closed it (its wait_timeout, a
// restart) left an EOF, or an error packet, to read. A connection used
// more recently is taken as alive without a look. A dead one is marked
// broken.
func (c *Conn) Alive(now time.Time, after time.Duration) bool {
	if c.Broken() {
		return false
	}
	if c.rd != nil && c.rd.Buffered() > 0 { // bytes nobody asked for
		c.broken.Store(true)
		return false
	}
	if c.tcp == nil || now.Sub(c.sent) < after {
		return true
	}
	rc, err := c.tcp.SyscallConn()
	if err != nil {
		return true
	}
	alive := true
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read (EAGAIN) is the only answer of a live, idle
		// connection; EOF (n == 0), data or another error is not.
		alive = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true
	})
	if !alive {
		c.broken.Store(true)
	}
	return alive
}

// Dial opens and authenticates a backend connection. ctx bounds the TCP
// connect and the whole handshake.
func Dial(ctx context.Context, o DialOptions, v Variant) (*Conn, error) {
	var raw net.Conn
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialTCP(ctx, network, addr)
		raw = c
		return c, err
	}
	cc, err := client.ConnectWithDialer(ctx, "tcp", o.Addr, o.User, o.Password, "", dialer, handshakeOptions(o, v))
	if err != nil {
		return nil, fmt.Errorf("connect to %s as %s: %w", o.Addr, o.User, err)
	}
	netConn := cc.Conn.Conn
	if netConn == nil {
		netConn = raw
	}
	_ = netConn.SetDeadline(time.Time{})
	// Reads go through a hook so the session can flush what it buffered
	// for its client before the proxy blocks waiting on the server.
	hook := &hookConn{Conn: sockio.Wrap(netConn)}
	c := newConn(cc, netConn, hook)
	c.variant = v
	c.tcp, _ = raw.(*net.TCPConn)
	return c, nil
}

// dialTCP connects with keepalives on and the context's deadline on the
// socket (it bounds the handshake; Dial clears it after).
func dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAlive(true)
		_ = tc.SetKeepAlivePeriod(15 * time.Second)
	}
	return c, nil
}

// handshakeOptions sets the capabilities a relayed connection needs, the
// variant's flags, buffer size, attributes and TLS.
func handshakeOptions(o DialOptions, v Variant) client.Option {
	return func(c *client.Conn) error {
		caps := []uint32{mysql.CLIENT_MULTI_STATEMENTS, mysql.CLIENT_MULTI_RESULTS, mysql.CLIENT_PS_MULTI_RESULTS, mysql.CLIENT_SESSION_TRACK}
		if v.NoMultiResults {
			caps = caps[3:]
			c.UnsetCapability(mysql.CLIENT_MULTI_STATEMENTS | mysql.CLIENT_MULTI_RESULTS | mysql.CLIENT_PS_MULTI_RESULTS)
		}
		if v.FoundRows {
			caps = append(caps, mysql.CLIENT_FOUND_ROWS)
		}
		if v.LocalInfile {
			caps = append(caps, mysql.CLIENT_LOCAL_FILES)
		}
		for _, cp := range caps {
			if err := c.SetCapability(cp); err != nil {
				return err
			}
		}
		c.UnsetCapability(refuseCaps)
		// 16 KiB read buffers (go-mysql's default is 64 KiB): a proxy
		// holds thousands of these, and rows are relayed one at a time.
		c.BufferSize = 16 * 1024
		c.SetAttributes(map[string]string{"program_name": "switchyard"})
		if o.TLS != nil {
			c.SetTLSConfig(o.TLS)
		}
		return nil
	}
}

// readBufferSize is the backend read buffer: rows are relayed from it in
// bulk, and a proxy holds one per pooled connection.
const readBufferSize = 16 * 1024

// newConn finishes a connection past its handshake. From here on every
// read goes through one buffer the Conn owns (Reader), below go-mysql's
// packet layer, so the relay can copy complete row packets from it in
// bulk. The handshake's own buffer is empty by then: a server sends
// nothing unasked after its final OK.
func newConn(cc *client.Conn, netConn net.Conn, hook *hookConn) *Conn {
	rd := bufio.NewReaderSize(hook, readBufferSize)
	cc.Conn = packet.NewTLSConn(bufferedConn{Conn: hook, rd: rd}) // unbuffered packet layer over rd
	now := time.Now()
	sock, _ := hook.Conn.(*sockio.Conn)
	return &Conn{Conn: cc, net: netConn, hook: hook, sock: sock, rd: rd, created: now, lastUsed: now, multiStatements: true, sent: now}
}

// bufferedConn reads through the Conn's buffer and writes straight out.
type bufferedConn struct {
	net.Conn
	rd *bufio.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.rd.Read(p) }

// Reader is the connection's read buffer. The relay may copy complete
// packets out of it (Peek, Discard) as long as it advances the packet
// sequence (Packets().Sequence) by as many packets.
func (c *Conn) Reader() *bufio.Reader { return c.rd }

// Wrap returns a Conn over a stream that is already past the handshake:
// a scripted server in benchmarks and tests. Nothing is sent on it.
func Wrap(nc net.Conn) *Conn {
	hook := &hookConn{Conn: nc}
	return newConn(&client.Conn{}, nc, hook)
}

// hookConn calls before() ahead of every read from the socket. The packet
// reader above it is buffered, so this runs only when a read would block.
type hookConn struct {
	net.Conn
	before func()
}

func (h *hookConn) Read(p []byte) (int, error) {
	if h.before != nil {
		h.before()
	}
	return h.Conn.Read(p)
}

// SetBeforeRead installs f to run before each blocking read (nil removes it).
func (c *Conn) SetBeforeRead(f func()) { c.hook.before = f }

// WriteCommand writes one command packet (buf: a 4-byte header gap, then
// the payload) whose reply the caller reads next, through Packets or
// Reader. On plain TCP the write is left to the first read of the reply
// (sockio.Conn.WriteBeforeRead), which then waits for the reply without
// trying a read first: one system call less per command. The packet
// layer's sequence advances as WritePacket's would. CommandUnsent tells,
// after a failed read, whether the command ever left.
func (c *Conn) WriteCommand(buf []byte) error {
	pc := c.Packets()
	n := len(buf) - 4
	if c.sock == nil || n >= mysql.MaxPayloadLen || pc.Compression != mysql.MYSQL_COMPRESS_NONE || c.rd.Buffered() > 0 {
		return pc.WritePacket(buf)
	}
	buf[0], buf[1], buf[2], buf[3] = byte(n), byte(n>>8), byte(n>>16), pc.Sequence
	pc.Sequence++
	c.sock.WriteBeforeRead(buf)
	return nil
}

// CommandUnsent reports whether the last WriteCommand's packet failed to
// leave (its write, done by the reply's first read, failed): the server
// never received the command.
func (c *Conn) CommandUnsent() bool { return c.sock != nil && c.sock.QueuedWriteFailed() }

// ReadPacket reads the next packet's payload, appended to dst (the relay
// passes a 4-byte header gap, to write the packet on unchanged). A packet
// that fits the read buffer is framed here, from the buffer, with one
// copy; go-mysql's reader (ReadPacketReuseMem), which copies each packet
// three times through two pooled buffers, keeps the rest: compressed
// connections, packets of 16 MiB or more, packets larger than the buffer.
// The sequence is checked and advanced either way.
func (c *Conn) ReadPacket(dst []byte) ([]byte, error) {
	pc := c.Packets()
	if pc.Compression != mysql.MYSQL_COMPRESS_NONE {
		return pc.ReadPacketReuseMem(dst)
	}
	hdr, err := c.rd.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("read packet header: %w", cutShort(err, len(hdr)))
	}
	size := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if size >= mysql.MaxPayloadLen || 4+size > c.rd.Size() {
		return pc.ReadPacketReuseMem(dst)
	}
	if hdr[3] != pc.Sequence {
		return nil, fmt.Errorf("invalid sequence %d != %d", hdr[3], pc.Sequence)
	}
	p, err := c.rd.Peek(4 + size)
	if err != nil {
		return nil, fmt.Errorf("read packet of %d bytes: %w", size, cutShort(err, len(p)))
	}
	dst = append(dst, p[4:]...)
	_, _ = c.rd.Discard(4 + size)
	pc.Sequence++
	return dst, nil
}

// cutShort makes an end of stream after part of a packet (got bytes of
// it) io.ErrUnexpectedEOF, as io.ReadFull does.
func cutShort(err error, got int) error {
	if err == io.EOF && got > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Packets exposes the framed packet connection for relaying.
func (c *Conn) Packets() *packet.Conn { return c.Conn.Conn }

// SetDeadline bounds the next I/O on the connection; zero clears it.
// Clearing a deadline that is not set is free: most statements run
// without one, and setting one reaches the runtime's timers.
func (c *Conn) SetDeadline(t time.Time) {
	if t.IsZero() && !c.hasDeadline {
		return
	}
	c.hasDeadline = !t.IsZero()
	_ = c.net.SetDeadline(t)
}

// MarkBroken records that the connection must not be reused.
func (c *Conn) MarkBroken() { c.broken.Store(true) }

// Broken reports whether the connection was marked unusable.
func (c *Conn) Broken() bool { return c.broken.Load() }

// Kill closes the socket from any goroutine: the holder's blocked read or
// write fails and it discards the connection.
func (c *Conn) Kill() {
	c.broken.Store(true)
	// Linger 0: drop unsent data and reset. Otherwise the kernel keeps
	// retransmitting a statement to a partitioned server and delivers it
	// when the link returns — a write to a master that was replaced.
	if tc, ok := c.net.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.net.Close()
}

// Flavor is the server's family, from its handshake's version.
func (c *Conn) Flavor() Flavor { return FlavorFromVersion(c.GetServerVersion()) }

// ThreadID is the server's id for this connection (what KILL takes).
func (c *Conn) ThreadID() uint32 { return c.GetConnectionID() }

// StateTag returns the tag the connection was parked with ("" when it
// was reset or is new).
func (c *Conn) StateTag() string { return c.stateTag }

// Addr returns the server address.
func (c *Conn) Addr() string { return c.net.RemoteAddr().String() }

// BackendName returns the configured name of the server, or "" when the
// connection was dialled outside a pool.
func (c *Conn) BackendName() string {
	if c.pool == nil {
		return ""
	}
	return c.pool.name
}

// Exec runs a statement that returns no rows (or whose rows are ignored)
// under a deadline. Errors from the server are *mysql.MyError.
func (c *Conn) Exec(ctx context.Context, sql string) (*mysql.Result, error) {
	c.armDeadline(ctx)
	defer c.SetDeadline(time.Time{})
	r, err := c.Execute(sql)
	if err != nil {
		c.noteError(err)
		return nil, err
	}
	return r, nil
}

// UseDB switches the default database (COM_INIT_DB).
func (c *Conn) UseDB(ctx context.Context, db string) error {
	c.armDeadline(ctx)
	defer c.SetDeadline(time.Time{})
	if err := c.Conn.UseDB(db); err != nil {
		c.noteError(err)
		return err
	}
	c.NoteSchema(db)
	return nil
}

// NoteSchema records the default database its user left selected (a
// session follows USE through session tracking; the pool cannot see it).
func (c *Conn) NoteSchema(db string) {
	if db != "" {
		c.schemaSelected = true
	}
}

// SetMultiStatements mirrors the client's COM_SET_OPTION onto this
// connection so that "a; b" behaves as it would on the server directly.
func (c *Conn) SetMultiStatements(ctx context.Context, on bool) error {
	if c.multiStatements == on {
		return nil
	}
	opt := byte(1) // MYSQL_OPTION_MULTI_STATEMENTS_OFF
	if on {
		opt = 0
	}
	c.armDeadline(ctx)
	defer c.SetDeadline(time.Time{})
	pc := c.Packets()
	pc.ResetSequence()
	if err := pc.WritePacket([]byte{0, 0, 0, 0, mysql.COM_SET_OPTION, opt, 0}); err != nil {
		c.broken.Store(true)
		return fmt.Errorf("set multi-statements on %s: %w", c.Addr(), err)
	}
	data, err := pc.ReadPacket()
	if err != nil {
		c.broken.Store(true)
		return fmt.Errorf("set multi-statements on %s: %w", c.Addr(), err)
	}
	if len(data) > 0 && data[0] == mysql.ERR_HEADER {
		return c.HandleErrorPacket(data)
	}
	c.multiStatements = on
	return nil
}

// Reset returns the server session to a fresh state with
// COM_RESET_CONNECTION: rolls back transactions, drops temporary tables,
// user variables and prepared statements, releases locks.
func (c *Conn) Reset(ctx context.Context) error {
	c.armDeadline(ctx)
	defer c.SetDeadline(time.Time{})
	pc := c.Packets()
	pc.ResetSequence()
	if err := pc.WritePacket([]byte{0, 0, 0, 0, mysql.COM_RESET_CONNECTION}); err != nil {
		c.broken.Store(true)
		return fmt.Errorf("reset connection to %s: %w", c.Addr(), err)
	}
	data, err := pc.ReadPacket()
	if err != nil {
		c.broken.Store(true)
		return fmt.Errorf("reset connection to %s: %w", c.Addr(), err)
	}
	if len(data) == 0 || data[0] != mysql.OK_HEADER {
		c.broken.Store(true)
		return fmt.Errorf("reset connection to %s: unexpected reply 0x%x", c.Addr(), data[:min(len(data), 1)])
	}
	// The multi-statement option survives COM_RESET_CONNECTION on the
	// server, so c.multiStatements stays as it was.
	c.stateTag = ""
	return nil
}

func (c *Conn) armDeadline(ctx context.Context) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
}

// noteError marks the connection broken unless err is a server error
// packet, after which the protocol state is still clean.
func (c *Conn) noteError(err error) {
	if _, ok := asMyError(err); !ok {
		c.broken.Store(true)
	}
}

// Close closes the network connection without a COM_QUIT round trip.
func (c *Conn) Close() error {
	c.broken.Store(true)
	return c.Conn.Close()
}
