package proxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/packet"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/backend"
	"github.com/switchyard/switchyard/conf"
	"github.com/switchyard/switchyard/router"
)

// FuzzWirePackets feeds arbitrary payloads to every parser of packets
// that come from a backend or a client: none may panic.
func FuzzWirePackets(f *testing.F) {
	f.Add(okBytes(3, 7, mysql.SERVER_STATUS_AUTOCOMMIT|mysql.SERVER_SESSION_STATE_CHANGED, "info",
		trackEntry(mysql.SESSION_TRACK_SYSTEM_VARIABLES, "last_gtid", "0-1-2")))
	f.Add([]byte{0xff, 0x28, 0x04, '#', '4', '2', '0', '0', '0', 'x'})
	f.Add([]byte{mysql.COM_CHANGE_USER, 'b', 0, 3, 1, 2, 3, 'd', 0, 45, 0})
	f.Add([]byte{mysql.COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 8, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		if ok, valid := parseOK(p); valid {
			_ = encodeOKForClient(nil, ok, mysql.CLIENT_PROTOCOL_41|mysql.CLIENT_SESSION_TRACK)
			_ = encodeOKForClient(nil, ok, mysql.CLIENT_PROTOCOL_41)
			parseSessionState(ok.sessionState)
		}
		parseSessionState(p)
		_ = parseErrPacket(p)
		_, _ = parseChangeUser(append([]byte{mysql.COM_CHANGE_USER}, p...), mysql.CLIENT_SECURE_CONNECTION)
		_, _ = parseChangeUser(append([]byte{mysql.COM_CHANGE_USER}, p...), 0)
		for n := uint16(0); n < 4; n++ {
			st := &preparedStmt{numParams: n}
			if len(p) >= 5 {
				on := &stmtOnConn{id: 9}
				_, _ = st.bindPacket(nil, p, on)
				_, _ = st.bindPacket(nil, p, &stmtOnConn{id: 9}) // with types remembered, another connection
				_, _ = st.bindPacket(nil, p, on)                 // the same connection
			}
		}
		_ = isEOF(p)
		_ = eofStatus(p)
	})
}

// fuzzServer is a proxy with no reachable backend: handshakes that get as
// far as authentication fail cleanly; everything before is parsing.
func fuzzServer(tb testing.TB) *Server {
	cluster := backend.NewCluster("default", []backend.Server{{Name: "m", Addr: "127.0.0.1:1", Weight: 1}}, "m",
		backend.PoolOptions{MaxOpen: 1, ConnectTimeout: 100 * time.Millisecond, IOTimeout: 100 * time.Millisecond}, nil)
	return testServer(tb, Cluster(cluster, nil))
}

// testServer is a proxy in front of b with the default settings (a
// handshake must finish within a second) and two users, app (native
// password) and sha (caching_sha2_password), both app on the servers.
func testServer(tb testing.TB, b *Backends) *Server {
	users := map[string]conf.User{}
	for _, u := range []conf.User{{Name: "app", Password: conf.NewSecret("app"), Auth: "mysql_native_password", BackendUser: "app", BackendPassword: conf.NewSecret("app")},
		{Name: "sha", Password: conf.NewSecret("sha"), Auth: "caching_sha2_password", BackendUser: "app", BackendPassword: conf.NewSecret("app")}} {
		users[u.Name] = u
	}
	set := &Settings{Users: users, MaxAllowedPacket: 64 << 20, HandshakeTimeout: time.Second, MaxConnections: 100,
		Routes: router.ClusterMap{Default: b.Name},
		Clusters: map[string]*ClusterSettings{b.Name: {
			IOTimeout: time.Second, AcquireTimeout: time.Second, GTIDWait: time.Second, AvoidFor: 2 * time.Second, HoldTimeout: 2 * time.Second,
			Policy:   router.Policy{Split: true, ReadYourWrites: true, MaxLag: 10 * time.Second, ReplicaFallbackToMaster: true},
			TxReplay: TxReplay{Enabled: true, MaxSize: 1 << 20}}}}
	s, err := New([]*Backends{b}, set, "5.5.5-10.11.0-MariaDB-switchyard", nil, zap.NewNop())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// FuzzHandshake sends arbitrary bytes as a client's handshake response
// (and whatever follows): the session must end, without panicking or
// hanging, and the proxy must stay usable.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte{0x20, 0, 0, 1})
	f.Add(append([]byte{0x40, 0, 0, 1, 0x8d, 0xa6, 0x0f, 0, 0, 0, 0, 1, 33}, make([]byte, 23)...))
	f.Add(append(append([]byte{0x30, 0, 0, 1, 0x8d, 0xa2, 0x0f, 0, 0, 0, 0, 1, 33}, make([]byte, 23)...), "app\x00\x14"...))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.handle(server)
		}()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		_ = client.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = client.Write(in)
		client.Close()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatal("handshake did not end")
		}
	})
}

// readerConn is a net.Conn that reads from a byte slice.
type readerConn struct {
	net.Conn
	r *bytes.Reader
}

func (c readerConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c readerConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c readerConn) SetReadDeadline(time.Time) error  { return nil }
func (c readerConn) SetWriteDeadline(time.Time) error { return nil }
func (c readerConn) SetDeadline(time.Time) error      { return nil }
func (c readerConn) Close() error                     { return nil }

// FuzzCommandPackets reads a client's byte stream the way the command loop
// does (framing, sequence checks, multi-packet reassembly, the
// max_allowed_packet bound) until it fails: no panic, no read past the
// bound.
func FuzzCommandPackets(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, mysql.COM_PING})
	f.Add([]byte{5, 0, 0, 0, mysql.COM_QUERY, 'S', 'E', 'L', '1', 1, 0, 0, 7, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		pc := packet.NewConn(readerConn{r: bytes.NewReader(in)})
		for i := 0; i < 100; i++ {
			pc.ResetSequence()
			lw := limitWriter{max: 4096}
			if err := pc.ReadPacketTo(&lw); err != nil {
				return
			}
			if lw.buf.Len() > 4096 {
				t.Fatalf("read %d bytes past the bound", lw.buf.Len())
			}
		}
	})
}
