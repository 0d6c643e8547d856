package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/packet"

	"github.com/switchyard/switchyard/backend"
)

// fakeBackends is a cluster whose servers are scripts: the topology, the
// write gate and the statement counters are backend.Cluster's own (they
// touch no socket); connections are in-memory pipes to fakeServers.
type fakeBackends struct {
	*backend.Cluster
	servers map[string]*fakeServer
	// suspected lists the servers sessions reported refusing connections.
	suspected []string
	// cutAtBegin: the next statement counted on this server finds its
	// connection killed (as the monitor does), after it was placed and
	// before it is sent.
	cutAtBegin string
	// onRefuse runs when a connection is refused (e.g. a failover that
	// names a new master right then).
	onRefuse func()
	// onEnter runs once when a statement asks the write gate in (e.g. a
	// failover completing while it waits there).
	onEnter func()
}

// SetMaster names a new master (a failover, as far as sessions can tell).
func (f *fakeBackends) SetMaster(name string) { f.Topo.SetMaster(name) }

// OpenTransactions is what the write gate counts.
func (f *fakeBackends) OpenTransactions() int { return f.Gate.OpenTransactions() }

// backends is the cluster as sessions use it: the real topology, gate
// (with the onEnter hook) and counters, and scripted connections.
func (f *fakeBackends) backends() *Backends {
	return &Backends{Name: "default", Topo: f.Topo, Gate: fakeGate{f}, Conns: f, Count: f,
		Suspect: func(server string) { f.suspected = append(f.suspected, server) }}
}

// fakeGate is the real write gate with the onEnter hook.
type fakeGate struct{ f *fakeBackends }

func (g fakeGate) Enter(deadline time.Time, inTx bool) (string, uint64, error) {
	if h := g.f.onEnter; h != nil {
		g.f.onEnter = nil
		h()
	}
	return g.f.Gate.Enter(deadline, inTx)
}
func (g fakeGate) Leave()    { g.f.Gate.Leave() }
func (g fakeGate) TxOpened() { g.f.Gate.TxOpened() }
func (g fakeGate) TxClosed() { g.f.Gate.TxClosed() }

// newFakeBackends builds a topology: master m and replicas r1, r2 (up,
// replicating, no lag), each served by a fakeServer.
func newFakeBackends() *fakeBackends {
	names := []string{"m", "r1", "r2"}
	var list []backend.Server
	f := &fakeBackends{servers: map[string]*fakeServer{}}
	for i, n := range names {
		list = append(list, backend.Server{Name: n, Addr: n + ":3306", Weight: 1})
		f.servers[n] = &fakeServer{name: n, id: i + 1}
	}
	f.Cluster = backend.NewCluster("default", list, "m", backend.PoolOptions{}, nil)
	zero := int64(0)
	for _, n := range names[1:] {
		f.Topo.SetHealth(n, backend.Health{Up: true, Replica: &backend.ReplicaStatus{IORunning: true, SQLRunning: true, SecondsBehind: &zero}})
	}
	return f
}

func (f *fakeBackends) Acquire(_ context.Context, server string, _ backend.Account, _ backend.Variant, _ string) (*backend.Conn, error) {
	fs := f.servers[server]
	if fs == nil {
		return nil, errors.New("unknown backend " + server)
	}
	if fs.refuse.Load() {
		if f.onRefuse != nil {
			f.onRefuse()
		}
		return nil, errors.New("dial tcp " + server + ": connection refused")
	}
	proxySide, serverSide := net.Pipe()
	fs.conns.Add(1)
	go fs.serve(serverSide)
	bc := backend.Wrap(proxySide)
	fs.mu.Lock()
	fs.last = bc
	fs.mu.Unlock()
	return bc, nil
}

func (f *fakeBackends) Begin(server string) *backend.StatementCount {
	if f.cutAtBegin == server {
		f.cutAtBegin = ""
		fs := f.servers[server]
		fs.mu.Lock()
		fs.last.Kill()
		fs.mu.Unlock()
	}
	return f.Counters.Begin(server)
}

func (f *fakeBackends) Return(bc *backend.Conn)         { _ = bc.Close() }
func (f *fakeBackends) Park(bc *backend.Conn, _ string) { _ = bc.Close() }
func (f *fakeBackends) CloseIdle(string)                {}

// fakeServer answers the statements a session sends. Statements the
// session sends on its own (state replay) get OK; others are looked up
// in answers by a substring of their text, and get OK when none matches.
type fakeServer struct {
	name    string
	id      int
	refuse  atomic.Bool
	conns   atomic.Int32
	mu      sync.Mutex
	seen    []string // client statements received, in order
	answers []fakeAnswer
	last    *backend.Conn // the last connection handed out
}

// fakeAnswer is how a fake server answers statements containing match.
type fakeAnswer struct {
	match string
	// reply: payloads sent back (nil: OK); status flags are filled in.
	// close: the connection is closed after reading the statement, with
	// nothing sent back. once: the answer is used up after one match.
	reply [][]byte
	close bool
	once  bool
	used  bool
}

func (fs *fakeServer) answer(match string, reply ...[]byte) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.answers = append(fs.answers, fakeAnswer{match: match, reply: reply})
}

// reanswer replaces the answers to statements containing match.
func (fs *fakeServer) reanswer(match string, reply ...[]byte) {
	fs.mu.Lock()
	fs.answers = slices.DeleteFunc(fs.answers, func(a fakeAnswer) bool { return a.match == match })
	fs.mu.Unlock()
	fs.answer(match, reply...)
}

func (fs *fakeServer) closeOn(match string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.answers = append(fs.answers, fakeAnswer{match: match, close: true})
}

// closeOnceOn closes the connection the first time a statement matches.
func (fs *fakeServer) closeOnceOn(match string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.answers = append(fs.answers, fakeAnswer{match: match, close: true, once: true})
}

// received returns the statements seen that contain match.
func (fs *fakeServer) received(match string) []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []string
	for _, q := range fs.seen {
		if strings.Contains(q, match) {
			out = append(out, q)
		}
	}
	return out
}

// sessionOwn are statements a session sends on its own.
func sessionOwn(q string) bool {
	return strings.HasPrefix(q, "SET NAMES") || strings.HasPrefix(q, "SELECT @@collation_connection")
}

// serve answers one connection. It keeps the connection's transaction
// state as a server does: BEGIN opens one, COMMIT and ROLLBACK end it,
// and every OK and EOF carries the in-transaction flag.
func (fs *fakeServer) serve(c net.Conn) {
	defer c.Close()
	pc := packet.NewConn(c)
	inTx := false
	for {
		pc.ResetSequence()
		data, err := pc.ReadPacket()
		if err != nil || len(data) == 0 {
			return
		}
		var reply [][]byte
		switch data[0] {
		case mysql.COM_QUIT:
			return
		case mysql.COM_RESET_CONNECTION:
			inTx = false
		case mysql.COM_SET_OPTION:
			reply = [][]byte{{mysql.EOF_HEADER, 0, 0, 2, 0}}
		case mysql.COM_QUERY:
			q := string(data[1:])
			a, ok := fs.receive(q)
			if ok && a.close {
				return
			}
			switch upper := strings.ToUpper(q); {
			case strings.HasPrefix(upper, "BEGIN"), strings.HasPrefix(upper, "START TRANSACTION"):
				inTx = true
			case strings.HasPrefix(upper, "COMMIT"), strings.HasPrefix(upper, "ROLLBACK"):
				inTx = false
			}
			reply = a.reply
		}
		status := uint16(mysql.SERVER_STATUS_AUTOCOMMIT)
		if inTx {
			status |= mysql.SERVER_STATUS_IN_TRANS
		}
		if reply == nil {
			reply = [][]byte{okPayload(1, 0)}
		}
		for _, p := range reply {
			if p[0] == mysql.OK_HEADER && len(p) >= 5 || p[0] == mysql.EOF_HEADER && len(p) == 5 {
				// Status at byte 3 in both: EOF is header, warnings(2),
				// status; these OKs are header, affected rows, insert id
				// (one byte each), status.
				p = append([]byte(nil), p...)
				const at = 3
				flags := (uint16(p[at])|uint16(p[at+1])<<8)&^mysql.SERVER_STATUS_IN_TRANS | status
				p[at], p[at+1] = byte(flags), byte(flags>>8)
			}
			if err := pc.WritePacket(append(make([]byte, 4), p...)); err != nil {
				return
			}
		}
	}
}

// receive logs a client statement (not the session's own replay of
// state) and finds its answer.
func (fs *fakeServer) receive(q string) (fakeAnswer, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !sessionOwn(q) {
		fs.seen = append(fs.seen, q)
	}
	for i := range fs.answers {
		a := &fs.answers[i]
		if strings.Contains(q, a.match) && !(a.once && a.used) {
			a.used = true
			return *a, true
		}
	}
	return fakeAnswer{}, false
}

// okPayload is an OK packet: affected rows, no insert id, status, no warnings.
func okPayload(affected byte, status uint16) []byte {
	return []byte{mysql.OK_HEADER, affected, 0, byte(status), byte(status >> 8), 0, 0}
}

// errPayload is an ERR packet from a server.
func errPayload(code uint16, state, msg string) []byte {
	return append(append([]byte{mysql.ERR_HEADER, byte(code), byte(code >> 8), '#'}, state...), msg...)
}

// intResult is a one-column, one-row result set with value v.
func intResult(name, v string) [][]byte {
	col := (&mysql.Field{Name: []byte(name), Charset: 63, Type: mysql.MYSQL_TYPE_LONGLONG}).Dump()
	return [][]byte{{1}, col, eofPacket, append([]byte{byte(len(v))}, v...), eofPacket}
}

// clientOutput parses what a session wrote to its client into packets.
type clientOutput struct{ bytes.Buffer }

func (o *clientOutput) packets() [][]byte {
	var out [][]byte
	b := o.Bytes()
	for len(b) >= 4 {
		n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		if len(b) < 4+n {
			break
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

// last returns the last packet written, and empties the output.
func (o *clientOutput) last() []byte {
	ps := o.packets()
	o.Reset()
	if len(ps) == 0 {
		return nil
	}
	return ps[len(ps)-1]
}

// errCode returns the code of an ERR packet, or 0 for anything else.
func errCode(p []byte) uint16 {
	if len(p) < 3 || p[0] != mysql.ERR_HEADER {
		return 0
	}
	return binary.LittleEndian.Uint16(p[1:])
}

// fakeSession is a session past its handshake in front of f, writing to
// out. Drive it with run.
type fakeSession struct {
	*session
	out *clientOutput
}

func newFakeSession(t *testing.T, f *fakeBackends) fakeSession {
	t.Helper()
	srv := testServer(t, f.backends())
	out := &clientOutput{}
	s := newSession(srv, discardClient{})
	s.client.adopt(packet.NewConn(captureClient{out: &out.Buffer}))
	s.login = login{user: srv.settings.Load().Users["app"], caps: mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_TRANSACTIONS | mysql.CLIENT_SESSION_TRACK}
	s.relay.login = &s.login
	s.status = mysql.SERVER_STATUS_AUTOCOMMIT
	s.home = s.views.get(srv, "default")
	t.Cleanup(s.conns.releaseAll)
	return fakeSession{session: s, out: out}
}

// setCluster changes the cluster's settings for this session's next
// commands.
func (fs fakeSession) setCluster(change func(*ClusterSettings)) {
	set := *fs.srv.settings.Load()
	cs := *set.Clusters["default"]
	change(&cs)
	set.Clusters = map[string]*ClusterSettings{"default": &cs}
	fs.srv.settings.Store(&set)
	fs.cmd.set = &set
}

// run sends one COM_QUERY as the loop would and returns the last packet
// the client got; the session must not end.
func (fs fakeSession) run(t *testing.T, sql string) []byte {
	t.Helper()
	fs.client.pc.Sequence = 1 // as after reading the command
	fs.cmd.set = fs.srv.settings.Load()
	if fs.answer(append([]byte{mysql.COM_QUERY}, sql...)) {
		t.Fatalf("%s: the session ended", sql)
	}
	_ = fs.client.flush()
	fs.giveBackConns()
	fs.relay.returnBuffers()
	return fs.out.last()
}
