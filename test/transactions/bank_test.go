package transactions_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/test/harness"
)

// The bank test: accounts, and writers moving money between them in
// explicit transactions (SELECT … FOR UPDATE, two UPDATEs, a ledger
// INSERT, a pause inside), while the master is switched over, killed
// with SIGKILL (then restarted and rejoined), and has its connections cut
// by the monitor (SIGSTOP long enough for the monitor to give up on it,
// not long enough for a failover). Invariants:
//
//   - the sum of balances never changes;
//   - every transfer whose COMMIT returned OK is in the ledger;
//   - no transfer whose client saw an error before sending COMMIT is;
//   - every balance is what the ledger says.
//
// make test runs a short version (bankChanges per kind); make
// test-faults runs 20 of each kind (bank_long_test.go).
func TestBank(t *testing.T) {
	p, adm := txProxy(t)
	b := &bank{accounts: 20, initial: 1000, errs: map[string]int{}}
	b.setup(t, conn(t, p, ""))
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 8 {
		c := conn(t, p, "bank")
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for seq := int64(1); !stop.Load(); seq++ {
				b.transfer(c, int64(w+1)<<32|seq, rnd)
			}
		}()
	}
	b.waitMore(t, 100)
	counts := map[string]int{}
	for round := 0; round < bankChanges; round++ {
		for _, change := range []string{"switchover", "kill", "cut"} {
			switch change {
			case "switchover":
				harness.AdminRows(t, adm, "SWITCHOVER")
			case "kill":
				old, _, _ := env.KillMaster(t, adm)
				env.RestartAsReplica(t, adm, old)
			case "cut":
				cutByMonitor(t, adm)
			}
			counts[change]++
			b.waitMore(t, 50)
			time.Sleep(1100 * time.Millisecond) // past the 1s cooldown: a time, not a condition
		}
	}
	stop.Store(true)
	wg.Wait()
	master := harness.MasterOf(t, adm)
	st := func(name string) int { return status(t, adm, name) }
	t.Logf("%d switchovers, %d kill -9 failovers, %d monitor cuts; transfers committed %d, failed before COMMIT %d, "+
		"COMMIT outcome unknown %d; transactions replayed %d, replay failed %d, aborted %d, drained %d",
		counts["switchover"], counts["kill"], counts["cut"], len(b.committed), len(b.failed), len(b.unknown),
		st("transactions_replayed"), st("transactions_replay_failed"), st("transactions_aborted"), st("transactions_drained"))
	t.Logf("errors clients saw: %v", b.errs)
	b.check(t, env.InstanceDB(t, master))
}

// cutByMonitor stops the master long enough for the monitor to give up
// on it and cut the statements running there (failcount × interval),
// while the replicas still receive from it (so no failover), then lets it
// go on.
func cutByMonitor(t *testing.T, adm *sql.DB) {
	t.Helper()
	m := harness.MasterOf(t, adm)
	if err := env.Sandbox.Kill(m, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the monitor to see "+m+" down", 10*time.Second, func() bool {
		return harness.Backend(t, adm, m)["state"] != "up"
	})
	time.Sleep(500 * time.Millisecond) // past the cut (failcount reached): the fault lasts this long
	if err := env.Sandbox.Kill(m, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the monitor to see "+m+" up", 10*time.Second, func() bool {
		return harness.Backend(t, adm, m)["state"] == "up"
	})
	if now := harness.MasterOf(t, adm); now != m {
		t.Fatalf("a 2 s pause of %s caused a failover to %s", m, now)
	}
}

type bank struct {
	accounts, initial int

	mu        sync.Mutex
	committed []int64 // COMMIT returned OK
	failed    []int64 // an error before COMMIT was sent (then ROLLBACK)
	unknown   []int64 // COMMIT returned an error
	errs      map[string]int
}

func (b *bank) setup(t *testing.T, c *sql.Conn) {
	exec(t, c, "CREATE DATABASE IF NOT EXISTS bank")
	exec(t, c, "DROP TABLE IF EXISTS bank.acct, bank.ledger")
	exec(t, c, "CREATE TABLE bank.acct (id INT PRIMARY KEY, balance BIGINT NOT NULL)")
	exec(t, c, "CREATE TABLE bank.ledger (id BIGINT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount INT NOT NULL)")
	for i := 1; i <= b.accounts; i++ {
		exec(t, c, "INSERT INTO bank.acct VALUES (?, ?)", i, b.initial)
	}
}

// transfer moves money in one explicit transaction and records what the
// client was told.
func (b *bank) transfer(c *sql.Conn, id int64, rnd *rand.Rand) {
	ctx := context.Background()
	src := 1 + rnd.IntN(b.accounts)
	dst := 1 + (src+rnd.IntN(b.accounts-1))%b.accounts
	amount := 1 + rnd.IntN(50)
	lo, hi := min(src, dst), max(src, dst)
	stmts := []string{
		"BEGIN",
		fmt.Sprintf("SELECT id, balance FROM acct WHERE id IN (%d, %d) ORDER BY id FOR UPDATE", lo, hi),
		"", // the pause
		fmt.Sprintf("UPDATE acct SET balance = balance - %d WHERE id = %d", amount, src),
		fmt.Sprintf("UPDATE acct SET balance = balance + %d WHERE id = %d", amount, dst),
		fmt.Sprintf("INSERT INTO ledger VALUES (%d, %d, %d, %d)", id, src, dst, amount),
	}
	for _, q := range stmts {
		var err error
		switch {
		case q == "":
			time.Sleep(time.Duration(rnd.IntN(5)) * time.Millisecond)
		case q[0] == 'S':
			var rows *sql.Rows
			if rows, err = c.QueryContext(ctx, q); err == nil {
				for rows.Next() {
				}
				err = rows.Err()
				rows.Close()
			}
		default:
			_, err = c.ExecContext(ctx, q)
		}
		if err != nil {
			_, _ = c.ExecContext(ctx, "ROLLBACK")
			b.note(&b.failed, id, err)
			return
		}
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = c.ExecContext(ctx, "ROLLBACK")
		b.note(&b.unknown, id, err)
		return
	}
	b.note(&b.committed, id, nil)
}

func (b *bank) note(list *[]int64, id int64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*list = append(*list, id)
	if err != nil {
		msg := err.Error()
		if len(msg) > 400 {
			msg = msg[:400]
		}
		b.errs[msg]++
	}
}

// waitMore waits for n more committed transfers.
func (b *bank) waitMore(t *testing.T, n int) {
	t.Helper()
	count := func() int { b.mu.Lock(); defer b.mu.Unlock(); return len(b.committed) }
	target := count() + n
	harness.WaitFor(t, fmt.Sprintf("%d more committed transfers", n), 60*time.Second, func() bool { return count() >= target })
}

// check verifies the invariants on the master.
func (b *bank) check(t *testing.T, db *sql.DB) {
	t.Helper()
	var sum int64
	if err := db.QueryRow("SELECT SUM(balance) FROM bank.acct").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	ledger := map[int64][3]int{}
	rows, err := db.Query("SELECT id, src, dst, amount FROM bank.ledger")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var src, dst, amount int
		_ = rows.Scan(&id, &src, &dst, &amount)
		ledger[id] = [3]int{src, dst, amount}
	}
	rows.Close()
	want := map[int]int64{}
	for i := 1; i <= b.accounts; i++ {
		want[i] = int64(b.initial)
	}
	for _, l := range ledger {
		want[l[0]] -= int64(l[2])
		want[l[1]] += int64(l[2])
	}
	var wrong []string
	rows, err = db.Query("SELECT id, balance FROM bank.acct")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		var bal int64
		_ = rows.Scan(&id, &bal)
		if bal != want[id] {
			wrong = append(wrong, fmt.Sprintf("account %d holds %d, the ledger says %d", id, bal, want[id]))
		}
	}
	rows.Close()
	missing, phantom := 0, 0
	for _, id := range b.committed {
		if _, ok := ledger[id]; !ok {
			missing++
		}
	}
	for _, id := range b.failed {
		if _, ok := ledger[id]; ok {
			phantom++
		}
	}
	sort.Strings(wrong)
	t.Logf("sum of balances %d (started at %d); ledger %d rows; acknowledged transfers missing %d; transfers the client saw fail but that committed %d",
		sum, b.accounts*b.initial, len(ledger), missing, phantom)
	if sum != int64(b.accounts*b.initial) {
		t.Errorf("money created or destroyed: the balances sum to %d, not %d", sum, b.accounts*b.initial)
	}
	if missing != 0 {
		t.Errorf("%d transfers whose COMMIT returned OK are not in the ledger", missing)
	}
	if phantom != 0 {
		t.Errorf("%d transfers whose client saw an error before COMMIT are in the ledger", phantom)
	}
	if len(wrong) > 0 {
		t.Errorf("balances disagree with the ledger: %v", wrong)
	}
}
