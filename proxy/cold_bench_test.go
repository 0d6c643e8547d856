package proxy

import (
	"fmt"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// BenchmarkRelayInTransactionSessions is
// BenchmarkRelaySmallResultInTransaction spread round-robin over many
// sessions of one proxy, as live traffic is: with thousands, every
// statement finds its session's memory out of the CPU caches, which is
// what a statement costs between wake-ups on a busy machine.
func BenchmarkRelayInTransactionSessions(b *testing.B) {
	inTx := []byte{mysql.EOF_HEADER, 0, 0, byte(mysql.SERVER_STATUS_AUTOCOMMIT | mysql.SERVER_STATUS_IN_TRANS), 0}
	reply := resultWith([][]byte{rowPacket(11, 'h')}, inTx)
	cmd := append([]byte{mysql.COM_QUERY}, "SELECT c FROM t WHERE id = 42"...)
	begin := append([]byte{mysql.COM_QUERY}, "BEGIN"...)
	for _, n := range []int{1, 64, 4096} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			srv := fuzzServer(b)
			sessions := make([]*session, n)
			for i := range sessions {
				sessions[i] = benchSessionOn(srv, reply)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := sessions[i%n]
				k := i / n // this session's statement count
				s.client.pc.Sequence = 1
				next := cmd
				if k%20 == 0 {
					next = begin
				}
				if s.answer(next) {
					b.Fatal("the session ended")
				}
				s.relay.returnBuffers()
				_ = s.client.flush()
				if k%20 == 19 {
					s.tx.end()
				}
			}
		})
	}
}
