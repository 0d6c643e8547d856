package backend

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// packetBytes frames payload as one packet with sequence seq.
func packetBytes(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// TestReadPacket reads scripted streams through both framings (the
// buffer's, and go-mysql's for packets larger than the buffer): payloads
// come back whole after the caller's prefix, the sequence advances, and a
// wrong sequence or a cut stream is an error.
func TestReadPacket(t *testing.T) {
	small := bytes.Repeat([]byte("s"), 300)
	large := bytes.Repeat([]byte("L"), readBufferSize+1000) // over the read buffer: go-mysql's path
	tests := []struct {
		name    string
		stream  []byte
		want    [][]byte
		wantErr string // of the read after the wanted packets
	}{
		{"packets in one buffer", concat(packetBytes(0, small), packetBytes(1, []byte{0xfe, 0, 0, 2, 0})),
			[][]byte{small, {0xfe, 0, 0, 2, 0}}, "EOF"},
		{"larger than the buffer, then small", concat(packetBytes(0, large), packetBytes(1, small)),
			[][]byte{large, small}, "EOF"},
		{"empty payload", packetBytes(0, nil), [][]byte{{}}, "EOF"},
		{"wrong sequence", concat(packetBytes(0, small), packetBytes(5, small)),
			[][]byte{small}, "invalid sequence 5 != 1"},
		{"cut in the payload", packetBytes(0, small)[:100], nil, "unexpected EOF"},
		{"cut in the header", []byte{10, 0}, nil, "unexpected EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			server, client := net.Pipe()
			defer client.Close()
			go func() {
				_, _ = server.Write(tc.stream)
				server.Close()
			}()
			c := Wrap(client)
			for i, want := range tc.want {
				p, err := c.ReadPacket([]byte{9, 9, 9, 9})
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if !bytes.Equal(p[:4], []byte{9, 9, 9, 9}) || !bytes.Equal(p[4:], want) {
					t.Fatalf("packet %d: got %d bytes (prefix %v), want the prefix and %d bytes", i, len(p)-4, p[:4], len(want))
				}
				if got := c.Packets().Sequence; got != byte(i+1) {
					t.Fatalf("sequence after packet %d = %d, want %d", i, got, i+1)
				}
			}
			_, err := c.ReadPacket(nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("last read: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
