package proxy

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// okBytes builds an OK payload in backend framing (session tracking on).
func okBytes(affected, id uint64, status uint16, info string, state []byte) []byte {
	b := []byte{mysql.OK_HEADER}
	b = mysql.AppendLengthEncodedInteger(b, affected)
	b = mysql.AppendLengthEncodedInteger(b, id)
	b = binary.LittleEndian.AppendUint16(b, status)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = mysql.AppendLengthEncodedInteger(b, uint64(len(info)))
	b = append(b, info...)
	if status&mysql.SERVER_SESSION_STATE_CHANGED != 0 {
		b = mysql.AppendLengthEncodedInteger(b, uint64(len(state)))
		b = append(b, state...)
	}
	return b
}

func trackEntry(kind byte, parts ...string) []byte {
	var data []byte
	for _, p := range parts {
		data = mysql.AppendLengthEncodedInteger(data, uint64(len(p)))
		data = append(data, p...)
	}
	out := []byte{kind}
	out = mysql.AppendLengthEncodedInteger(out, uint64(len(data)))
	return append(out, data...)
}

// TestOKTranslation: OK packets reach each client in the framing it
// negotiated, as the server itself writes them (net_send_ok): the info
// string always length-encoded (what PHP's mysqlnd reads; the bare text
// broke it), the state block only for clients that asked for tracking.
func TestOKTranslation(t *testing.T) {
	state := append(trackEntry(mysql.SESSION_TRACK_SCHEMA, "shop"),
		trackEntry(mysql.SESSION_TRACK_SYSTEM_VARIABLES, "last_gtid", "0-1-42")...)
	lenenc := func(b []byte) []byte { return append(mysql.AppendLengthEncodedInteger(nil, uint64(len(b))), b...) }
	const p41 = mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_TRANSACTIONS
	tests := []struct {
		name      string
		payload   []byte
		caps      uint32
		wantFlag  bool   // SERVER_SESSION_STATE_CHANGED in the status
		wantTail  []byte // what follows the status (and warnings)
		noWarning bool   // no warnings field (pre-4.1 client)
	}{
		{"info, client without tracking: length-encoded", okBytes(3, 7, mysql.SERVER_STATUS_AUTOCOMMIT, "Rows matched: 3", nil), p41, false,
			lenenc([]byte("Rows matched: 3")), false},
		{"info, client with tracking", okBytes(3, 7, mysql.SERVER_STATUS_AUTOCOMMIT, "Rows matched: 3", nil), p41 | mysql.CLIENT_SESSION_TRACK, false,
			lenenc([]byte("Rows matched: 3")), false},
		{"no info, no state: nothing after the warnings", okBytes(1, 0, mysql.SERVER_STATUS_AUTOCOMMIT, "", nil), p41, false, nil, false},
		{"state, client without tracking: stripped", okBytes(1, 0, mysql.SERVER_STATUS_AUTOCOMMIT|mysql.SERVER_SESSION_STATE_CHANGED, "", state), p41, false,
			nil, false},
		{"state, tracking client: kept", okBytes(1, 0, mysql.SERVER_SESSION_STATE_CHANGED, "", state), p41 | mysql.CLIENT_SESSION_TRACK, true,
			append([]byte{0}, lenenc(state)...), false},
		{"pre-4.1 client with transactions: status only", okBytes(1, 0, mysql.SERVER_STATUS_AUTOCOMMIT, "x", nil), mysql.CLIENT_TRANSACTIONS, false,
			lenenc([]byte("x")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, valid := parseOK(tt.payload)
			if !valid {
				t.Fatal("parseOK rejected a valid packet")
			}
			out := encodeOKForClient(nil, ok, tt.caps)[4:]
			if out[0] != mysql.OK_HEADER {
				t.Fatalf("header %x", out[0])
			}
			aff, _, n := mysql.LengthEncodedInt(out[1:])
			id, _, m := mysql.LengthEncodedInt(out[1+n:])
			if aff != ok.affectedRows || id != ok.lastInsertID {
				t.Errorf("affected/id %d/%d", aff, id)
			}
			pos := 1 + n + m
			status := binary.LittleEndian.Uint16(out[pos:])
			if got := status&mysql.SERVER_SESSION_STATE_CHANGED != 0; got != tt.wantFlag {
				t.Errorf("state-changed flag %v, want %v", got, tt.wantFlag)
			}
			pos += 2
			if !tt.noWarning {
				if w := binary.LittleEndian.Uint16(out[pos:]); w != 2 {
					t.Errorf("warnings %d", w)
				}
				pos += 2
			}
			if got := out[pos:]; !bytes.Equal(got, tt.wantTail) {
				t.Errorf("tail %q want %q", got, tt.wantTail)
			}
		})
	}
}

// TestFilterSessionState: a tracking client sees only the changes its own
// session_track_* settings ask for, never the proxy's tracking of
// everything.
func TestFilterSessionState(t *testing.T) {
	block := append(append(append(trackEntry(mysql.SESSION_TRACK_SCHEMA, "shop"),
		trackEntry(mysql.SESSION_TRACK_SYSTEM_VARIABLES, "last_gtid", "0-1-42")...),
		trackEntry(mysql.SESSION_TRACK_SYSTEM_VARIABLES, "autocommit", "OFF")...),
		trackEntry(mysql.SESSION_TRACK_STATE_CHANGE, "1")...)
	tests := []struct {
		name, vars, schema string
		want               []sessionChange
		wantStateChange    bool
	}{
		{"server defaults", "autocommit,character_set_client,time_zone", "ON",
			[]sessionChange{{kind: mysql.SESSION_TRACK_SCHEMA, value: "shop"}, {kind: mysql.SESSION_TRACK_SYSTEM_VARIABLES, name: "autocommit", value: "OFF"}}, true},
		{"everything", "*", "ON", []sessionChange{{kind: mysql.SESSION_TRACK_SCHEMA, value: "shop"},
			{kind: mysql.SESSION_TRACK_SYSTEM_VARIABLES, name: "last_gtid", value: "0-1-42"},
			{kind: mysql.SESSION_TRACK_SYSTEM_VARIABLES, name: "autocommit", value: "OFF"}}, true},
		{"nothing", "", "OFF", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newClientTracking(tt.vars, tt.schema)
			out := filterSessionState(nil, block, &tr)
			if got := parseSessionState(out); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("kept %+v, want %+v", got, tt.want)
			}
			if has := bytes.Contains(out, trackEntry(mysql.SESSION_TRACK_STATE_CHANGE, "1")); has != tt.wantStateChange {
				t.Errorf("state-change entry kept: %v", has)
			}
		})
	}
}

func TestParseSessionState(t *testing.T) {
	state := append(trackEntry(mysql.SESSION_TRACK_SCHEMA, "shop"),
		append(trackEntry(mysql.SESSION_TRACK_STATE_CHANGE, "1"),
			trackEntry(mysql.SESSION_TRACK_SYSTEM_VARIABLES, "sql_mode", "ANSI_QUOTES")...)...)
	got := parseSessionState(state)
	if len(got) != 2 || got[0].value != "shop" || got[1].name != "sql_mode" || got[1].value != "ANSI_QUOTES" {
		t.Fatalf("got %+v", got)
	}
	// Truncated input must not panic.
	for i := range state {
		parseSessionState(state[:i])
	}
}

func TestIsEOF(t *testing.T) {
	tests := []struct {
		p    []byte
		want bool
	}{
		{[]byte{0xfe, 0, 0, 2, 0}, true},
		{[]byte{0xfe}, true},
		{append([]byte{0xfe}, make([]byte, 8)...), false}, // a row whose first value is huge
		{[]byte{0x00, 1}, false},
	}
	for _, tt := range tests {
		if got := isEOF(tt.p); got != tt.want {
			t.Errorf("isEOF(%x) = %v", tt.p, got)
		}
	}
}

// TestBindPacketTypesPerConnection runs executes of one statement on two
// backend connections: the types the client bound once reach each server
// statement once (inserted into an execute that sends none), not again
// while that statement has them, and again after the client binds others.
func TestBindPacketTypesPerConnection(t *testing.T) {
	st := &preparedStmt{numParams: 2}
	connA, connB := &stmtOnConn{id: 77}, &stmtOnConn{id: 78}
	typesLS := []byte{mysql.MYSQL_TYPE_LONGLONG, 0, mysql.MYSQL_TYPE_VAR_STRING, 0}
	typesSS := []byte{mysql.MYSQL_TYPE_VAR_STRING, 0, mysql.MYSQL_TYPE_VAR_STRING, 0}
	header := []byte{mysql.COM_STMT_EXECUTE, 9, 0, 0, 0, 0, 1, 0, 0, 0, 0b00}
	typed := func(types []byte) []byte { // flag 1, the types, then values
		p := append(append(append([]byte(nil), header...), 1), types...)
		return append(p, 5, 0, 0, 0, 0, 0, 0, 0, 1, 'x')
	}
	untyped := append(append(append([]byte(nil), header...), 0), 6, 0, 0, 0, 0, 0, 0, 0, 1, 'y')
	withTypes := func(id byte, types []byte) []byte { // untyped, with the types inserted
		p := append([]byte{mysql.COM_STMT_EXECUTE, id, 0, 0, 0}, header[5:]...)
		return append(append(append(p, 1), types...), untyped[12:]...)
	}
	asSent := func(p []byte, id byte) []byte {
		out := append([]byte(nil), p...)
		out[1] = id
		return out
	}
	steps := []struct {
		name string
		on   *stmtOnConn
		in   []byte
		want []byte
	}{
		{"nothing bound yet: as sent", connA, untyped, asSent(untyped, 77)},
		{"first bind on A: as sent", connA, typed(typesLS), asSent(typed(typesLS), 77)},
		{"A has the types: as sent", connA, untyped, asSent(untyped, 77)},
		{"B never had them: inserted", connB, untyped, withTypes(78, typesLS)},
		{"B has them now: as sent", connB, untyped, asSent(untyped, 78)},
		{"the same types again on B: as sent", connB, typed(typesLS), asSent(typed(typesLS), 78)},
		{"A still has them: as sent", connA, untyped, asSent(untyped, 77)},
		{"other types bound on B: as sent", connB, typed(typesSS), asSent(typed(typesSS), 78)},
		{"A has the old ones: the new inserted", connA, untyped, withTypes(77, typesSS)},
		{"A has the new ones: as sent", connA, untyped, asSent(untyped, 77)},
	}
	for _, step := range steps {
		out, err := st.bindPacket(nil, step.in, step.on)
		if err != nil || !bytes.Equal(out, step.want) {
			t.Fatalf("%s: got %x (%v)\nwant %x", step.name, out, err, step.want)
		}
	}
	if _, err := st.bindPacket(nil, untyped[:10], connA); err == nil {
		t.Error("truncated packet accepted")
	}
}

// TestExecuteKey: an execute that resends its types and one that relies
// on the types sent before are the same execute for the result cache;
// other values are not.
func TestExecuteKey(t *testing.T) {
	st := &preparedStmt{numParams: 1}
	typed := []byte{mysql.COM_STMT_EXECUTE, 9, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, mysql.MYSQL_TYPE_LONGLONG, 0, 42, 0, 0, 0, 0, 0, 0, 0}
	untyped := []byte{mysql.COM_STMT_EXECUTE, 5, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0}
	other := []byte{mysql.COM_STMT_EXECUTE, 5, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 43, 0, 0, 0, 0, 0, 0, 0}
	if _, err := st.rememberTypes(typed); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.executeKey(typed), st.executeKey(untyped)) {
		t.Errorf("typed %x, untyped %x", st.executeKey(typed), st.executeKey(untyped))
	}
	if bytes.Equal(st.executeKey(untyped), st.executeKey(other)) {
		t.Error("another value has the same key")
	}
	// The types are remembered even when the execute never reaches a
	// backend (a cache hit): a later untyped one gets them.
	fresh := &preparedStmt{numParams: 1}
	if typed, err := fresh.rememberTypes(typed); err != nil || !typed || len(fresh.paramTypes) != 2 {
		t.Fatalf("rememberTypes: %v %v %x", typed, err, fresh.paramTypes)
	}
	out, err := fresh.bindPacket(nil, untyped, &stmtOnConn{id: 7})
	if err != nil || out[11] != 1 || out[12] != mysql.MYSQL_TYPE_LONGLONG {
		t.Fatalf("an untyped execute after a cached typed one: %x %v", out, err)
	}
}

func TestParseChangeUser(t *testing.T) {
	pkt := []byte{mysql.COM_CHANGE_USER}
	pkt = append(pkt, "bob\x00"...)
	pkt = append(pkt, 3, 'a', 'b', 'c')
	pkt = append(pkt, "shop\x00"...)
	pkt = append(pkt, 45, 0)
	pkt = append(pkt, "mysql_native_password\x00"...)
	r, err := parseChangeUser(pkt, mysql.CLIENT_SECURE_CONNECTION)
	if err != nil || r.user != "bob" || r.db != "shop" || r.collation != 45 {
		t.Fatalf("%+v %v", r, err)
	}
	for i := 1; i < len(pkt)-30; i++ {
		_, _ = parseChangeUser(pkt[:i], mysql.CLIENT_SECURE_CONNECTION) // must not panic
	}
}

func TestLimitWriter(t *testing.T) {
	lw := limitWriter{max: 10}
	if _, err := lw.Write(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := lw.Write([]byte{1}); err != errPacketTooLarge {
		t.Fatalf("err = %v", err)
	}
}

func TestLenencRejectsTruncated(t *testing.T) {
	tests := []struct {
		in   []byte
		v    uint64
		n    int
		good bool
	}{
		{[]byte{5}, 5, 1, true},
		{[]byte{0xfc, 1, 2}, 0x201, 3, true},
		{[]byte{0xfc, 1}, 0, 0, false}, // found by FuzzWirePackets
		{[]byte{0xfd, 1, 2}, 0, 0, false},
		{[]byte{0xfe, 1, 2, 3, 4, 5, 6, 7}, 0, 0, false},
		{[]byte{}, 0, 0, false},
		{[]byte{0xff}, 0, 0, false},
	}
	for _, tt := range tests {
		v, n, ok := lenencInt(tt.in)
		if v != tt.v || n != tt.n || ok != tt.good {
			t.Errorf("lenencInt(%x) = %d,%d,%v", tt.in, v, n, ok)
		}
	}
	if _, _, ok := lenencStr([]byte{5, 'a', 'b'}); ok {
		t.Error("string longer than its packet accepted")
	}
}
