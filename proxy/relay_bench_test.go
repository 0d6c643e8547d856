package proxy

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/packet"

	"github.com/switchyard/switchyard/backend"
)

// scriptedServer is a backend that answers every command with the same
// bytes: a result set already framed as packets.
type scriptedServer struct {
	net.Conn
	reply []byte
	r     bytes.Reader
}

func (c *scriptedServer) Write(p []byte) (int, error) { c.r.Reset(c.reply); return len(p), nil }
func (c *scriptedServer) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptedServer) SetDeadline(time.Time) error { return nil }
func (c *scriptedServer) Close() error                { return nil }

// discardClient swallows what the proxy writes to its client.
type discardClient struct{ net.Conn }

func (discardClient) Write(p []byte) (int, error)      { return len(p), nil }
func (discardClient) SetDeadline(time.Time) error      { return nil }
func (discardClient) SetWriteDeadline(time.Time) error { return nil }

// frame appends payloads as packets numbered from seq.
func frame(seq byte, payloads ...[]byte) []byte {
	var out []byte
	for _, p := range payloads {
		out = append(out, byte(len(p)), byte(len(p)>>8), byte(len(p)>>16), seq)
		out = append(out, p...)
		seq++
	}
	return out
}

// benchSession is a session past its handshake whose master connection
// is a scripted server.
func benchSession(b testing.TB, reply []byte) *session {
	return benchSessionOn(fuzzServer(b), reply)
}

// benchSessionOn is benchSession on a given proxy (sessions sharing it).
func benchSessionOn(srv *Server, reply []byte) *session {
	s := newSession(srv, discardClient{})
	s.client.adopt(packet.NewConn(discardClient{}))
	s.login = login{user: srv.settings.Load().Users["app"], caps: mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_TRANSACTIONS}
	s.relay.login = &s.login
	s.status = mysql.SERVER_STATUS_AUTOCOMMIT
	s.home = s.views.get(srv, "default")
	s.home.epoch = s.home.b.topology().Epoch
	s.conns.held["m"] = &heldConn{bc: wrapFor(&scriptedServer{reply: reply}), view: s.home, synced: s.state.version}
	return s
}

func wrapFor(c net.Conn) *backend.Conn { return backend.Wrap(c) }

// eofPacket ends column definitions and rows (no warnings, autocommit).
var eofPacket = []byte{mysql.EOF_HEADER, 0, 0, byte(mysql.SERVER_STATUS_AUTOCOMMIT), 0}

// BenchmarkRelaySmallResult is one COM_QUERY through a session's whole
// path (classification from the cache, routing, write gate, send, relay
// of a one-row result, statistics) with in-memory sockets: what the proxy
// adds per statement on top of the system calls.
func BenchmarkRelaySmallResult(b *testing.B) {
	benchRelay(b, "SELECT c FROM t WHERE id = 42", resultWith([][]byte{rowPacket(11, 'h')}, eofPacket), 1)
}

// BenchmarkRelay100Rows: a 100-row result (a sysbench range query) through
// the same path: the per-row cost of the relay.
func BenchmarkRelay100Rows(b *testing.B) {
	rows := make([][]byte, 100)
	for i := range rows {
		rows[i] = rowPacket(100, 'x')
	}
	benchRelay(b, "SELECT c FROM t WHERE id BETWEEN 1 AND 100", resultWith(rows, eofPacket), 100)
}

// BenchmarkRelaySmallResultInTransaction is BenchmarkRelaySmallResult
// inside transactions of 20 statements on the master: the difference is
// what keeping a transaction for replay costs per statement (the
// statement appended to the log, a checksum of the reply).
func BenchmarkRelaySmallResultInTransaction(b *testing.B) { benchInTransaction(b, 1) }

// BenchmarkRelayInTransactionSessions is the same statement spread
// round-robin over many sessions of one proxy, as live traffic is: with
// thousands, every statement finds its session's memory out of the CPU
// caches, as it does between wake-ups on a busy machine.
func BenchmarkRelayInTransactionSessions(b *testing.B) {
	for _, n := range []int{1, 64, 4096} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) { benchInTransaction(b, n) })
	}
}

// benchInTransaction runs transactions of 20 statements (BEGIN, then a
// one-row SELECT) round-robin over n sessions of one proxy.
func benchInTransaction(b *testing.B, n int) {
	inTx := []byte{mysql.EOF_HEADER, 0, 0, byte(mysql.SERVER_STATUS_AUTOCOMMIT | mysql.SERVER_STATUS_IN_TRANS), 0}
	reply := resultWith([][]byte{rowPacket(11, 'h')}, inTx)
	srv := fuzzServer(b)
	sessions := make([]*session, n)
	for i := range sessions {
		sessions[i] = benchSessionOn(srv, reply)
	}
	runTransactions(b, sessions, append([]byte{mysql.COM_QUERY}, "SELECT c FROM t WHERE id = 42"...))
}

// runTransactions runs b.N commands round-robin over sessions, each
// session in transactions of 20: BEGIN (the scripted server answers it
// with its one reply too), then stmt. It checks that the transactions
// were kept for replay.
func runTransactions(b *testing.B, sessions []*session, stmt []byte) {
	n := len(sessions)
	begin := append([]byte{mysql.COM_QUERY}, "BEGIN"...)
	logged := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, k := sessions[i%n], i/n // k: this session's statement count
		next := stmt
		if k%20 == 0 {
			next = begin
		}
		answerOne(b, s, next)
		if k%20 == 19 { // COMMIT: the log starts again
			logged += len(s.tx.log)
			if s.tx.unreplayable != "" {
				b.Fatalf("the transaction was not kept for replay: %s", s.tx.unreplayable)
			}
			s.tx.end()
		}
	}
	b.StopTimer()
	if b.N >= 20*n && logged == 0 {
		b.Fatal("no transaction was kept for replay")
	}
}

// answerOne runs one command through s as the session loop does: the
// answer, then the buffers given back and the reply flushed.
func answerOne(b *testing.B, s *session, cmd []byte) {
	s.client.pc.Sequence = 1 // as after reading the command (sequence 0)
	if s.answer(cmd) {
		b.Fatal("the session ended")
	}
	s.relay.returnBuffers()
	_ = s.client.flush()
}

// benchRelay runs sql against a scripted master answering reply.
func benchRelay(b *testing.B, sql string, reply []byte, wantRows uint64) {
	s := benchSession(b, reply)
	cmd := append([]byte{mysql.COM_QUERY}, sql...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		answerOne(b, s, cmd)
	}
	if r := s.relay.scratch; !r.ok || r.rows != wantRows {
		b.Fatalf("relay did not see the %d-row result (ok %v, rows %d)", wantRows, r.ok, r.rows)
	}
}

// BenchmarkRelayPreparedInTransaction is an execute of a prepared
// point select (one integer parameter, its type sent with each execute)
// inside transactions of 20 statements: the prepared-statement path,
// statement registry and replay log included.
func BenchmarkRelayPreparedInTransaction(b *testing.B) {
	status := byte(mysql.SERVER_STATUS_AUTOCOMMIT | mysql.SERVER_STATUS_IN_TRANS)
	def := (&mysql.Field{Name: []byte("c"), Charset: 33, Type: mysql.MYSQL_TYPE_VAR_STRING}).Dump()
	eof := []byte{mysql.EOF_HEADER, 0, 0, status, 0}
	server := &scriptedServer{reply: frame(1, []byte{mysql.OK_HEADER, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0}, def, eof, def, eof)}
	s := benchSession(b, nil)
	s.conns.held["m"].bc = wrapFor(server)
	answerOne(b, s, append([]byte{mysql.COM_STMT_PREPARE}, "SELECT c FROM t WHERE id = ?"...))
	id := s.stmts.next
	if s.stmts.stmts[id] == nil {
		b.Fatal("the statement was not prepared")
	}
	row := append([]byte{0, 0, 11}, bytes.Repeat([]byte{'h'}, 11)...) // binary row: header, null bitmap, the value
	server.reply = frame(1, []byte{1}, def, eof, row, eof)
	execute := []byte{mysql.COM_STMT_EXECUTE, byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24), 0, 1, 0, 0, 0,
		0, 1, mysql.MYSQL_TYPE_LONG, 0, 42, 0, 0, 0} // no nulls, types bound, id = 42
	runTransactions(b, []*session{s}, execute)
	if r := s.relay.scratch; !r.ok || r.rows != 1 {
		b.Fatalf("relay did not see the one-row result (ok %v, rows %d)", r.ok, r.rows)
	}
}

// BenchmarkStatementsParallel runs BenchmarkRelaySmallResult's statement
// in many sessions of one proxy at once (go test -cpu 1,2,4,8): what is
// shared between sessions (statistics, counters, the classification
// cache, settings) must not make a statement cost more with more cores.
func BenchmarkStatementsParallel(b *testing.B) {
	srv := fuzzServer(b)
	reply := resultWith([][]byte{rowPacket(11, 'h')}, eofPacket)
	texts := make([][]byte, 64) // texts vary like an application's literals
	for i := range texts {
		texts[i] = append([]byte{mysql.COM_QUERY}, fmt.Sprintf("SELECT c FROM t WHERE id = %d", i)...)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		s := benchSessionOn(srv, reply)
		i := 0
		for pb.Next() {
			s.client.pc.Sequence = 1
			if s.answer(texts[i%len(texts)]) {
				b.Fatal("the session ended")
			}
			s.relay.returnBuffers()
			_ = s.client.flush()
			i++
		}
	})
}
