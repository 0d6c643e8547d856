package proxy

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/packet"

	"github.com/switchyard/switchyard/backend"
)

// captureClient records what the proxy writes to its client.
type captureClient struct {
	net.Conn
	out *bytes.Buffer
}

func (c captureClient) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c captureClient) SetDeadline(time.Time) error      { return nil }
func (c captureClient) SetWriteDeadline(time.Time) error { return nil }

// dribbleServer answers with reply, at most chunk bytes per read, so
// packets arrive split at every possible place.
type dribbleServer struct {
	scriptedServer
	chunk int
}

func (c *dribbleServer) Read(p []byte) (int, error) {
	if len(p) > c.chunk {
		p = p[:c.chunk]
	}
	return c.r.Read(p)
}

func rowPacket(n int, fill byte) []byte {
	body := bytes.Repeat([]byte{fill}, n)
	switch {
	case n < 251:
		return append([]byte{byte(n)}, body...)
	case n < 1<<16:
		return append([]byte{0xfc, byte(n), byte(n >> 8)}, body...)
	default:
		return append([]byte{0xfd, byte(n), byte(n >> 8), byte(n >> 16)}, body...)
	}
}

// resultWith frames a one-column result set: the given rows, then end
// (an EOF or ERR payload). Payloads of 16 MiB or more are split as the
// protocol requires.
func resultWith(rows [][]byte, end []byte) []byte {
	col := (&mysql.Field{Name: []byte("c"), Charset: 33, Type: mysql.MYSQL_TYPE_VAR_STRING}).Dump()
	payloads := [][]byte{{1}, col, eofPacket}
	for _, r := range rows {
		for len(r) >= 0xffffff {
			payloads = append(payloads, r[:0xffffff])
			r = r[0xffffff:]
		}
		payloads = append(payloads, r)
	}
	return frame(1, append(payloads, end)...)
}

// TestRelayForwardsResultsUnchanged: whatever way rows arrive, the client
// receives exactly the server's packets (same bytes, same numbering),
// bulk-copied or not, and the session's counters are right.
func TestRelayForwardsResultsUnchanged(t *testing.T) {
	eof := eofPacket
	errEnd := []byte{mysql.ERR_HEADER, 0x51, 0x04, '#', '7', '0', '1', '0', '0', 'k', 'i', 'l', 'l', 'e', 'd'}
	many := make([][]byte, 2000)
	for i := range many {
		many[i] = rowPacket(i%300, byte('a'+i%26))
	}
	cases := []struct {
		name   string
		rows   [][]byte
		end    []byte
		chunk  int // 0: all at once
		wantOK bool
	}{
		{"three rows", [][]byte{rowPacket(1, 'a'), rowPacket(2, 'b'), rowPacket(3, 'c')}, eof, 0, true},
		{"no rows", nil, eof, 0, true},
		{"rows across buffer refills", many, eof, 0, true},
		{"rows dribbled 7 bytes at a time", many[:300], eof, 7, true},
		{"row of 16 MiB and more", [][]byte{rowPacket(10, 'x'), rowPacket(0xffffff+100, 'y'), rowPacket(10, 'z')}, eof, 0, true},
		{"row starting with 0xfe is not an EOF", [][]byte{append([]byte{0xfe}, rowPacket(20, 'q')...)}, eof, 0, true},
		{"error after rows", [][]byte{rowPacket(5, 'a'), rowPacket(5, 'b')}, errEnd, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply := resultWith(tc.rows, tc.end)
			var srv = &dribbleServer{scriptedServer: scriptedServer{reply: reply}, chunk: tc.chunk}
			if tc.chunk == 0 {
				srv.chunk = len(reply)
			}
			s := benchSession(t, nil)
			h := s.conns.get("m")
			h.bc = wrapFor(srv)
			var got bytes.Buffer
			s.client.adopt(packet.NewConn(captureClient{out: &got}))
			s.client.pc.Sequence = 1 // as after reading the command
			if s.answer(append([]byte{mysql.COM_QUERY}, "SELECT c FROM t"...)) {
				t.Fatal("the session ended")
			}
			_ = s.client.flush()
			if !bytes.Equal(got.Bytes(), reply) {
				t.Fatalf("client got %d bytes, server sent %d; first difference at %d", got.Len(), len(reply), firstDiff(got.Bytes(), reply))
			}
			if r := s.relay.scratch; r.ok != tc.wantOK {
				t.Errorf("reply ok = %v, want %v", r.ok, tc.wantOK)
			} else if tc.wantOK && r.rows != uint64(len(tc.rows)) {
				t.Errorf("rows counted %d, want %d", r.rows, len(tc.rows))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A statement with 65,535 parameters, the protocol's maximum: the relay of
// its definitions ends (a 16-bit loop counter never passed 65,535).
func TestPrepareWithMostParameters(t *testing.T) {
	const n = 65535
	def := (&mysql.Field{Name: []byte("?"), Type: mysql.MYSQL_TYPE_VAR_STRING}).Dump()
	payloads := [][]byte{{mysql.OK_HEADER, 7, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0}} // id 7, 0 columns, 65535 params
	for range n {
		payloads = append(payloads, def)
	}
	payloads = append(payloads, eofPacket)
	s := benchSession(t, nil)
	s.conns.get("m").bc = wrapFor(&scriptedServer{reply: frame(1, payloads...)})
	var got bytes.Buffer
	s.client.adopt(packet.NewConn(captureClient{out: &got}))
	s.client.pc.Sequence = 1
	done := make(chan bool)
	go func() { done <- s.answer(append([]byte{mysql.COM_STMT_PREPARE}, "SELECT ?"...)) }()
	select {
	case ended := <-done:
		if ended {
			t.Fatal("the session ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PREPARE with 65,535 parameters hangs")
	}
	st := s.stmts.stmts[1]
	if st == nil || st.numParams != n {
		t.Fatalf("statement not registered with %d parameters: %+v", n, st)
	}
}

// A compound statement with a cursor of its own reports
// SERVER_STATUS_CURSOR_EXISTS on a COM_QUERY result: its rows still
// follow at once, and the relay reads them (it hung waiting otherwise).
func TestCursorFlagOnQueryResult(t *testing.T) {
	cursorEOF := []byte{mysql.EOF_HEADER, 0, 0, byte(mysql.SERVER_STATUS_AUTOCOMMIT | mysql.SERVER_STATUS_CURSOR_EXISTS), 0}
	col := (&mysql.Field{Name: []byte("c"), Charset: 33, Type: mysql.MYSQL_TYPE_VAR_STRING}).Dump()
	reply := frame(1, []byte{1}, col, cursorEOF, rowPacket(3, 'a'), eofPacket)
	s := benchSession(t, nil)
	s.conns.get("m").bc = wrapFor(&scriptedServer{reply: reply})
	var got bytes.Buffer
	s.client.adopt(packet.NewConn(captureClient{out: &got}))
	s.client.pc.Sequence = 1
	if s.answer(append([]byte{mysql.COM_QUERY}, "BEGIN NOT ATOMIC SELECT 1; END"...)) {
		t.Fatal("the session ended")
	}
	_ = s.client.flush()
	if !bytes.Equal(got.Bytes(), reply) || s.relay.scratch.rows != 1 {
		t.Fatalf("client got %d of the server's %d bytes, %d rows", got.Len(), len(reply), s.relay.scratch.rows)
	}
}

// TestPrepareOnShortReply: a server answering a re-prepare (a statement
// moving to a new backend connection) with a reply too short to be a
// COM_STMT_PREPARE answer is an error, not a panic of the session.
func TestPrepareOnShortReply(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply []byte
	}{
		{"empty payload", frame(1, []byte{})},
		{"OK without the statement id", frame(1, []byte{mysql.OK_HEADER, 1, 0})},
		{"not an OK", frame(1, []byte{0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := benchSession(t, nil)
			bc := wrapFor(&scriptedServer{reply: tc.reply})
			st := &preparedStmt{query: []byte("SELECT ?"), onConn: map[*backend.Conn]*stmtOnConn{}}
			_, err := s.relay.prepareOn(bc, st, time.Second)
			if err == nil {
				t.Fatal("a malformed reply was taken as a prepared statement")
			}
		})
	}
}
