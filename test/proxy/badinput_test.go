package proxy_test

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// rawPacket frames a payload with a given sequence id.
func rawPacket(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// connectClient logs in with go-mysql's client so a test can then write
// arbitrary packets on the authenticated connection.
func connectClient(t *testing.T, addr string) *client.Conn {
	t.Helper()
	return connectAs(t, addr, "app", "app")
}

func sendCommand(t *testing.T, c *client.Conn, payload []byte) []byte {
	t.Helper()
	c.ResetSequence()
	if err := c.WritePacket(append(make([]byte, 4), payload...)); err != nil {
		t.Fatal(err)
	}
	reply, err := c.ReadPacket()
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	return reply
}

func errCode(p []byte) uint16 {
	if len(p) < 3 || p[0] != 0xff {
		return 0
	}
	return binary.LittleEndian.Uint16(p[1:])
}

func TestUnknownAndEmptyCommandsKeepConnection(t *testing.T) {
	c := connectClient(t, proxy.Addr)
	for _, payload := range [][]byte{{0x99}, {0x40, 1, 2, 3}, {}, {gomysql.COM_PROCESS_KILL, 1, 0, 0, 0}, {gomysql.COM_BINLOG_DUMP}} {
		reply := sendCommand(t, c, payload)
		if errCode(reply) == 0 {
			t.Errorf("command %x: want an error packet, got %x", payload, reply)
		}
		if err := c.Ping(); err != nil {
			t.Fatalf("after command %x the connection is unusable: %v", payload, err)
		}
	}
	if reply := sendCommand(t, c, []byte{0x99}); errCode(reply) != gomysql.ER_UNKNOWN_COM_ERROR {
		t.Errorf("unknown command code %d, want 1047", errCode(reply))
	}
	r, err := c.Execute("SELECT 1")
	if err != nil || r.Values[0][0].AsInt64() != 1 {
		t.Fatal(err)
	}
}

func TestUnknownPreparedStatementId(t *testing.T) {
	c := connectClient(t, proxy.Addr)
	exec := []byte{gomysql.COM_STMT_EXECUTE, 0x39, 0x30, 0, 0, 0, 1, 0, 0, 0}
	if reply := sendCommand(t, c, exec); errCode(reply) != gomysql.ER_UNKNOWN_STMT_HANDLER {
		t.Fatalf("got %x", reply)
	}
	// COM_STMT_CLOSE of an unknown id has no reply; the next command works.
	c.ResetSequence()
	_ = c.WritePacket(append(make([]byte, 4), gomysql.COM_STMT_CLOSE, 9, 9, 9, 9))
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
}

func TestWrongSequenceIdGetsErrorAndClose(t *testing.T) {
	c := connectClient(t, proxy.Addr)
	raw := c.Conn.Conn
	if _, err := raw.Write(rawPacket(7, []byte{gomysql.COM_QUERY, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1'})); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, _ := io.ReadAll(raw)
	if len(reply) < 7 || errCode(reply[4:]) != gomysql.ER_NET_PACKETS_OUT_OF_ORDER {
		t.Fatalf("want 1156 then close, got %x", reply)
	}
	assertProxyServes(t)
}

func TestOversizedPacketRefused(t *testing.T) {
	c := connectClient(t, proxy.Addr)
	// The shared proxy runs with max_allowed_packet 32MiB: send 33 MiB.
	big := make([]byte, 4+1+33<<20)
	big[4] = gomysql.COM_QUERY
	copy(big[5:], "SELECT '")
	c.ResetSequence()
	werr := c.WritePacket(big)
	// Read the reply raw: its sequence id depends on how far the proxy read.
	raw := c.Conn.Conn
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, rerr := io.ReadAll(raw)
	if len(reply) < 7 {
		t.Fatalf("no error packet (write err %v, read err %v)", werr, rerr)
	}
	if errCode(reply[4:]) != gomysql.ER_NET_PACKET_TOO_LARGE {
		t.Fatalf("want 1153, got %x", reply[:min(len(reply), 64)])
	}
	assertProxyServes(t)
}

// A statement over 16 MiB spans several protocol packets each way.
func TestMultiPacketStatementAndResult(t *testing.T) {
	db := proxy.Open(t, "", "")
	payload := strings.Repeat("a", 17<<20+123)
	var back string
	if err := db.QueryRow("SELECT '" + payload + "'").Scan(&back); err != nil {
		t.Fatal(err)
	}
	if back != payload {
		t.Fatalf("echo of %d bytes came back as %d bytes", len(payload), len(back))
	}
	// Binary protocol, as a parameter.
	var m int
	if err := db.QueryRow("SELECT LENGTH(?)", []byte(payload)).Scan(&m); err != nil || m != len(payload) {
		t.Fatalf("param length %d: %v", m, err)
	}
}

func TestStalledHandshakeTimesOut(t *testing.T) {
	c, err := net.Dial("tcp", proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.ReadAll(c) // greeting, then EOF when the proxy gives up
	if took := time.Since(start); took > 6*time.Second {
		t.Fatalf("stalled client kept for %s (handshake_timeout is 1s)", took)
	}
	assertProxyServes(t)
}

func TestMalformedHandshakes(t *testing.T) {
	cases := map[string][]byte{
		"truncated header":       {0x20, 0, 0},
		"short body":             rawPacket(1, []byte{0x0d, 0xa6}),
		"length beyond data":     append([]byte{0x40, 0, 0, 1}, bytes.Repeat([]byte{0xff}, 20)...),
		"no protocol 41":         rawPacket(1, append([]byte{0, 0, 0, 0}, make([]byte, 40)...)),
		"user without nul":       rawPacket(1, append(append([]byte{0x8d, 0xa6, 0x0f, 0, 0, 0, 0, 1, 33}, make([]byte, 23)...), "app"...)),
		"auth length past end":   rawPacket(1, append(append(append([]byte{0x8d, 0xa2, 0x0f, 0, 0, 0, 0, 1, 33}, make([]byte, 23)...), "app\x00"...), 200, 1, 2)),
		"lenenc auth past end":   rawPacket(1, append(append(append([]byte{0x8d, 0xa6, 0x2f, 0, 0, 0, 0, 1, 33}, make([]byte, 23)...), "app\x00"...), 0xfc, 0xff, 0xff)),
		"garbage":                bytes.Repeat([]byte{0xde, 0xad}, 100),
		"wrong sequence in auth": rawPacket(9, append([]byte{0x8d, 0xa6, 0x0f, 0}, make([]byte, 40)...)),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", proxy.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			greeting := make([]byte, 4096)
			if _, err := c.Read(greeting); err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write(payload)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			_, _ = io.ReadAll(c) // an error packet or a close, never a hang
		})
	}
	assertProxyServes(t)
}

func TestManyFailedLoginsStayResponsiveAndLogNoSecrets(t *testing.T) {
	const secret = "Sup3rS3cretGuess"
	done := make(chan struct{})
	for w := 0; w < 8; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 125; i++ { // 8 × 125 = 1,000 failed logins
				db, _ := sql.Open("mysql", proxy.DSN("app", secret, "", ""))
				err := db.Ping()
				db.Close()
				var me *mysql.MySQLError
				if !errors.As(err, &me) || me.Number != 1045 {
					t.Errorf("want 1045, got %v", err)
					return
				}
			}
		}()
	}
	for w := 0; w < 8; w++ {
		<-done
	}
	assertProxyServes(t)
	if strings.Contains(proxy.Log(), secret) {
		t.Fatal("a password appears in the proxy log")
	}
}

// assertProxyServes checks that a fresh client can still log in and query.
func assertProxyServes(t *testing.T) {
	t.Helper()
	db, _ := sql.Open("mysql", proxy.DSN("app", "app", "", "timeout=5s"))
	defer db.Close()
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("proxy no longer serves: %v", err)
	}
}
