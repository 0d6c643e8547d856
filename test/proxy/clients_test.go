package proxy_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// writeSelfSignedCert creates a throwaway certificate for 127.0.0.1.
func writeSelfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchyard-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLSAndRequireTLS(t *testing.T) {
	cert, key := writeSelfSignedCert(t)
	o := proxyWithUsers()
	o.Extra = fmt.Sprintf("tls:\n  cert: %s\n  key: %s\n", cert, key)
	p := env.StartProxy(t, o)

	tests := []struct {
		user, pass, params string
		wantCode           uint16 // 0: success
	}{
		{"app", "app", "tls=skip-verify", 0},
		{"app", "app", "tls=false", 0},
		{"secure", "securepw", "tls=skip-verify", 0},
		{"secure", "securepw", "tls=false", 1045},
		{"sha", "shapw", "tls=skip-verify", 0}, // caching_sha2 full auth in clear text over TLS
	}
	for _, tt := range tests {
		t.Run(tt.user+"/"+tt.params, func(t *testing.T) {
			db, _ := sql.Open("mysql", p.DSN(tt.user, tt.pass, "", tt.params))
			defer db.Close()
			var n int64
			err := db.QueryRow("SELECT COUNT(*) FROM (SELECT 1 FROM information_schema.COLUMNS LIMIT 500) x").Scan(&n)
			if tt.wantCode == 0 {
				if err != nil || n == 0 {
					t.Fatalf("query over %s: %v", tt.params, err)
				}
				return
			}
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != tt.wantCode {
				t.Fatalf("want %d, got %v", tt.wantCode, err)
			}
		})
	}
}

// The mariadb command-line client through the proxy: USE (COM_INIT_DB),
// multiple result sets, emoji, errors printed as the server would.
func TestMariadbCLI(t *testing.T) {
	cli, err := exec.LookPath("mariadb")
	if err != nil {
		t.Fatal("mariadb client not installed: run 'make deps'")
	}
	host, port, _ := net.SplitHostPort(proxy.Addr)
	run := func(sql string) (string, error) {
		cmd := exec.Command(cli, "-h", host, "-P", port, "-uapp", "-papp", "--default-character-set=utf8mb4",
			"--batch", "--skip-column-names")
		cmd.Stdin = strings.NewReader(sql)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	out, err := run(`CREATE DATABASE IF NOT EXISTS cli_db;
use cli_db
SELECT DATABASE();
CREATE TABLE IF NOT EXISTS e (s VARCHAR(10)) DEFAULT CHARSET=utf8mb4;
DELETE FROM e;
INSERT INTO e VALUES ('🐘ok');
SELECT s, HEX(s) FROM e;
DROP PROCEDURE IF EXISTS two;
delimiter //
CREATE PROCEDURE two() BEGIN SELECT 'first'; SELECT 'second'; END//
delimiter ;
CALL two();
`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"cli_db\n", "🐘ok\tF09F9098", "first\n", "second\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = run("CREATE VIEW cli_db.v AS SELECT 1 AS a, 2 AS a;\n")
	if err == nil || !strings.Contains(out, "ERROR 1060 (42S21)") || !strings.Contains(out, "Duplicate column name 'a'") {
		t.Fatalf("error not passed through: %v\n%s", err, out)
	}
}

// Long data: go-sql-driver sends large parameters in chunks with
// COM_STMT_SEND_LONG_DATA when they exceed its packet budget.
func TestSendLongData(t *testing.T) {
	db := proxy.Open(t, "", "maxAllowedPacket=65536")
	blob := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640 kB
	var n int
	var md5 string
	if err := db.QueryRow("SELECT LENGTH(?), MD5(?)", blob, blob).Scan(&n, &md5); err != nil {
		t.Fatal(err)
	}
	var want string
	if err := env.Direct(t, "", "").QueryRow("SELECT MD5(?)", blob).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if n != len(blob) || md5 != want {
		t.Fatalf("length %d md5 %s, want %d %s", n, md5, len(blob), want)
	}
}

// A read-only cursor: COM_STMT_EXECUTE with CURSOR_TYPE_READ_ONLY, then
// COM_STMT_FETCH in batches, then COM_STMT_RESET and COM_STMT_CLOSE.
func TestCursorFetchResetClose(t *testing.T) {
	mustExec(t, proxy.Open(t, "", ""), "CREATE DATABASE IF NOT EXISTS cur_db")
	c := connectClient(t, proxy.Addr)
	reply := sendCommand(t, c, append([]byte{gomysql.COM_STMT_PREPARE}, "SELECT seq FROM cur_db.seq_1_to_7"...))
	if reply[0] != 0 {
		t.Fatalf("prepare: %x", reply)
	}
	id := binary.LittleEndian.Uint32(reply[1:])
	for i := 0; i < 2; i++ { // one column definition + EOF
		if _, err := c.ReadPacket(); err != nil {
			t.Fatal(err)
		}
	}
	exec := []byte{gomysql.COM_STMT_EXECUTE, 0, 0, 0, 0, 0x01 /* read-only cursor */, 1, 0, 0, 0}
	binary.LittleEndian.PutUint32(exec[1:], id)
	if p := sendCommand(t, c, exec); p[0] != 1 {
		t.Fatalf("column count %x", p)
	}
	if _, err := c.ReadPacket(); err != nil { // column definition
		t.Fatal(err)
	}
	eof, _ := c.ReadPacket()
	if eof[0] != 0xfe || binary.LittleEndian.Uint16(eof[3:])&gomysql.SERVER_STATUS_CURSOR_EXISTS == 0 {
		t.Fatalf("no cursor opened: %x", eof)
	}
	fetch := []byte{gomysql.COM_STMT_FETCH, 0, 0, 0, 0, 3, 0, 0, 0}
	binary.LittleEndian.PutUint32(fetch[1:], id)
	total := 0
	for batch := 0; batch < 5; batch++ {
		p := sendCommand(t, c, fetch)
		rows := 0
		for p[0] == 0 { // binary row
			rows++
			var err error
			if p, err = c.ReadPacket(); err != nil {
				t.Fatal(err)
			}
		}
		if p[0] != 0xfe {
			t.Fatalf("fetch ended with %x", p)
		}
		total += rows
		if binary.LittleEndian.Uint16(p[3:])&gomysql.SERVER_STATUS_LAST_ROW_SEND != 0 {
			break
		}
	}
	if total != 7 {
		t.Fatalf("fetched %d rows, want 7", total)
	}
	reset := []byte{gomysql.COM_STMT_RESET, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(reset[1:], id)
	if p := sendCommand(t, c, reset); p[0] != 0 {
		t.Fatalf("reset: %x", p)
	}
	closeCmd := []byte{gomysql.COM_STMT_CLOSE, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(closeCmd[1:], id)
	c.ResetSequence()
	_ = c.WritePacket(append(make([]byte, 4), closeCmd...))
	if p := sendCommand(t, c, exec); errCode(p) != gomysql.ER_UNKNOWN_STMT_HANDLER {
		t.Fatalf("execute after close: %x", p)
	}
}

// TLS on the backend side: the proxy talks TLS to the servers
// (pool.tls); the server itself reports the cipher of that connection.
func TestBackendTLS(t *testing.T) {
	p := env.StartProxy(t, harnessProxyOptions{Extra: "pool:\n  tls:\n    enabled: true\n    insecure_skip_verify: true\n"})
	db := p.Open(t, "", "")
	var name, cipher string
	// SHOW SESSION STATUS is server-specific: it runs on the master, on
	// the proxy's own backend connection.
	if err := db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		t.Fatal(err)
	}
	if cipher == "" {
		t.Fatal("the proxy's connection to the master is not encrypted")
	}
	plain := proxy.Open(t, "", "")
	if err := plain.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher != "" {
		t.Fatalf("without pool.tls the backend connection uses %q (%v)", cipher, err)
	}
}

func TestTooManyConnections(t *testing.T) {
	p := env.StartProxy(t, harnessProxyOptions{Extra: "max_client_connections: 2\n"})
	var held []*sql.DB
	for i := 0; i < 2; i++ {
		db, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
		db.SetMaxOpenConns(1)
		if err := db.Ping(); err != nil {
			t.Fatal(err)
		}
		held = append(held, db)
	}
	third, _ := sql.Open("mysql", p.DSN("app", "app", "", ""))
	defer third.Close()
	var me *mysql.MySQLError
	if err := third.Ping(); !errors.As(err, &me) || me.Number != 1040 {
		t.Fatalf("third connection: %v, want 1040", err)
	}
	held[0].Close()
	harnessWaitFor(t, "a slot to free up", 5*time.Second, func() bool { return third.Ping() == nil })
	held[1].Close()
}
