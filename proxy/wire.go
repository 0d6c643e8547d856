package proxy

import (
	"encoding/binary"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// lenencInt reads a length-encoded integer; ok is false when b is too
// short (go-mysql's own reader panics on truncated input).
func lenencInt(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch b[0] {
	case 0xfb: // NULL
		return 0, 1, true
	case 0xfc:
		if len(b) < 3 {
			return 0, 0, false
		}
		return uint64(binary.LittleEndian.Uint16(b[1:])), 3, true
	case 0xfd:
		if len(b) < 4 {
			return 0, 0, false
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4, true
	case 0xfe:
		if len(b) < 9 {
			return 0, 0, false
		}
		return binary.LittleEndian.Uint64(b[1:]), 9, true
	case 0xff:
		return 0, 0, false
	}
	return uint64(b[0]), 1, true
}

// lenencStr reads a length-encoded string.
func lenencStr(b []byte) (s []byte, n int, ok bool) {
	l, m, ok := lenencInt(b)
	if !ok || uint64(len(b)-m) < l {
		return nil, 0, false
	}
	return b[m : m+int(l)], m + int(l), true
}

// okPacket is the parsed form of an OK packet in backend framing
// (CLIENT_PROTOCOL_41 and CLIENT_SESSION_TRACK negotiated).
type okPacket struct {
	affectedRows, lastInsertID uint64
	status, warnings           uint16
	info                       []byte
	sessionState               []byte // raw session-state-change block
}

func parseOK(p []byte) (okPacket, bool) {
	var ok okPacket
	if len(p) < 1 {
		return ok, false
	}
	pos := 1
	var n int
	var good bool
	if ok.affectedRows, n, good = lenencInt(p[pos:]); !good {
		return ok, false
	}
	pos += n
	if ok.lastInsertID, n, good = lenencInt(p[pos:]); !good {
		return ok, false
	}
	pos += n
	if pos+4 > len(p) {
		return ok, false
	}
	ok.status = binary.LittleEndian.Uint16(p[pos:])
	ok.warnings = binary.LittleEndian.Uint16(p[pos+2:])
	pos += 4
	if pos >= len(p) {
		return ok, true
	}
	info, n, good := lenencStr(p[pos:])
	if !good {
		return ok, false
	}
	ok.info = info
	pos += n
	if ok.status&mysql.SERVER_SESSION_STATE_CHANGED != 0 && pos < len(p) {
		st, _, good := lenencStr(p[pos:])
		if !good {
			return ok, false
		}
		ok.sessionState = st
	}
	return ok, true
}

// encodeOKForClient writes an OK packet (with a 4-byte header gap) in the
// framing the client negotiated, as the server itself writes it
// (net_send_ok): status and warnings with CLIENT_PROTOCOL_41 (only the
// status with CLIENT_TRANSACTIONS alone); the info string length-encoded
// whenever there is one — with or without CLIENT_SESSION_TRACK, which is
// what libmysqlclient and mysqlnd read; the session-state block only for a
// client that negotiated CLIENT_SESSION_TRACK (ok.sessionState already
// holds only what it asked for, see filterSessionState).
func encodeOKForClient(dst []byte, ok okPacket, caps uint32) []byte {
	clientTracks := caps&mysql.CLIENT_SESSION_TRACK != 0
	dst = append(dst[:0], 0, 0, 0, 0, mysql.OK_HEADER)
	dst = mysql.AppendLengthEncodedInteger(dst, ok.affectedRows)
	dst = mysql.AppendLengthEncodedInteger(dst, ok.lastInsertID)
	status := ok.status
	if !clientTracks || len(ok.sessionState) == 0 {
		status &^= mysql.SERVER_SESSION_STATE_CHANGED
	}
	switch {
	case caps&mysql.CLIENT_PROTOCOL_41 != 0:
		dst = binary.LittleEndian.AppendUint16(dst, status)
		dst = binary.LittleEndian.AppendUint16(dst, ok.warnings)
	case caps&mysql.CLIENT_TRANSACTIONS != 0:
		dst = binary.LittleEndian.AppendUint16(dst, status)
	}
	if len(ok.info) > 0 || status&mysql.SERVER_SESSION_STATE_CHANGED != 0 {
		dst = mysql.AppendLengthEncodedInteger(dst, uint64(len(ok.info)))
		dst = append(dst, ok.info...)
	}
	if status&mysql.SERVER_SESSION_STATE_CHANGED != 0 {
		dst = mysql.AppendLengthEncodedInteger(dst, uint64(len(ok.sessionState)))
		dst = append(dst, ok.sessionState...)
	}
	return dst
}

// clientTracking is what session-state changes a client asked for with
// its own session_track_* settings (the server's defaults until it sets
// them). The proxy tracks every variable on its backend connections; a
// client sees only what it would see from the server itself.
type clientTracking struct {
	allVars bool            // session_track_system_variables='*'
	vars    map[string]bool // the variables listed otherwise
	schema  bool            // session_track_schema
}

// newClientTracking reads session_track_system_variables and
// session_track_schema values.
func newClientTracking(vars, schema string) clientTracking {
	t := clientTracking{schema: strings.EqualFold(schema, "ON") || schema == "1", vars: map[string]bool{}}
	for _, v := range strings.Split(vars, ",") {
		switch v = strings.ToLower(strings.TrimSpace(v)); v {
		case "":
		case "*":
			t.allVars = true
		default:
			t.vars[v] = true
		}
	}
	return t
}

// filterSessionState keeps, of a session-state block, the entries the
// client asked for, appended to dst. Entries of other kinds (state
// change, transaction characteristics) are only sent when the client
// enabled them itself, and pass.
func filterSessionState(dst, block []byte, t *clientTracking) []byte {
	for len(block) > 0 {
		data, n, ok := lenencStr(block[1:])
		if !ok {
			return dst
		}
		entry := block[:1+n]
		block = block[1+n:]
		switch entry[0] {
		case mysql.SESSION_TRACK_SCHEMA:
			if !t.schema {
				continue
			}
		case mysql.SESSION_TRACK_SYSTEM_VARIABLES:
			name, _, ok := lenencStr(data)
			if !ok || !(t.allVars || t.vars[strings.ToLower(string(name))]) {
				continue
			}
		}
		dst = append(dst, entry...)
	}
	return dst
}

// parseSessionState decodes the schema and system-variable entries of a
// session-state block; other kinds are skipped.
func parseSessionState(b []byte) []sessionChange {
	var out []sessionChange
	for len(b) > 0 {
		kind := b[0]
		data, n, ok := lenencStr(b[1:])
		if !ok {
			return out
		}
		b = b[1+n:]
		switch kind {
		case mysql.SESSION_TRACK_SCHEMA:
			if name, _, ok := lenencStr(data); ok {
				out = append(out, sessionChange{kind: kind, value: string(name)})
			}
		case mysql.SESSION_TRACK_GTIDS:
			// MySQL's OWN_GTID: an encoding byte, then the GTIDs committed.
			if len(data) > 1 {
				if set, _, ok := lenencStr(data[1:]); ok && len(set) > 0 {
					out = append(out, sessionChange{kind: kind, value: string(set)})
				}
			}
		case mysql.SESSION_TRACK_SYSTEM_VARIABLES:
			name, n1, ok := lenencStr(data)
			if !ok {
				continue
			}
			if val, _, ok := lenencStr(data[n1:]); ok {
				out = append(out, sessionChange{kind: kind, name: string(name), value: string(val)})
			}
		}
	}
	return out
}

// isEOF tells an EOF packet from a row that starts with 0xFE (a row's
// first value would need a length of at least 2^24 to start so).
func isEOF(p []byte) bool { return len(p) > 0 && p[0] == mysql.EOF_HEADER && len(p) < 9 }

// eofStatus returns the status flags of an EOF packet.
func eofStatus(p []byte) uint16 {
	if len(p) >= 5 {
		return binary.LittleEndian.Uint16(p[3:])
	}
	return 0
}

// eofWarnings reads the warning count of an EOF packet (header byte first).
func eofWarnings(p []byte) uint16 {
	if len(p) >= 5 {
		return binary.LittleEndian.Uint16(p[1:])
	}
	return 0
}

// parseErrPacket decodes an ERR packet payload (for logging and errors).
func parseErrPacket(p []byte) *mysql.MyError {
	e := &mysql.MyError{State: mysql.DEFAULT_MYSQL_STATE}
	if len(p) < 3 {
		return e
	}
	e.Code = binary.LittleEndian.Uint16(p[1:])
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State = string(rest[1:6])
		rest = rest[6:]
	}
	e.Message = string(rest)
	return e
}

// sessionChange is one entry of an OK packet's session-state block.
type sessionChange struct {
	kind  byte // mysql.SESSION_TRACK_*
	name  string
	value string
}

// noteSessionState reads an OK packet's session-state block into r:
// schema and variable changes, and the GTID of a commit.
func (r *reply) noteSessionState(block []byte) {
	for _, ch := range parseSessionState(block) {
		switch {
		case ch.kind == mysql.SESSION_TRACK_SCHEMA:
			r.changes = append(r.changes, ch)
		case ch.name == "last_gtid", ch.kind == mysql.SESSION_TRACK_GTIDS:
			r.gtid = ch.value
		case ch.kind == mysql.SESSION_TRACK_SYSTEM_VARIABLES:
			if strings.HasPrefix(ch.name, "character_set_") {
				r.charsetChanged = true
			}
			r.changes = append(r.changes, ch)
		}
	}
}
