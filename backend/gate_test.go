package backend

import (
	"context"
	"testing"
	"time"
)

// TestWriteGate: a hold stops new statements but lets open transactions
// finish; HoldTransactions stops those too; a new master lets all through.
func TestWriteGate(t *testing.T) {
	c := NewCluster("default", []Server{{Name: "m"}, {Name: "r"}}, "m", PoolOptions{}, nil)
	g := c.Gate
	enters := func(inTx bool) bool {
		_, _, err := g.Enter(time.Now().Add(20*time.Millisecond), inTx)
		if err == nil {
			g.Leave()
		}
		return err == nil
	}
	if !enters(false) || !enters(true) {
		t.Fatal("no hold, yet a statement waited")
	}
	if err := g.Hold(context.Background()); err != nil {
		t.Fatal(err)
	}
	if enters(false) {
		t.Error("a new statement passed a hold")
	}
	if !enters(true) {
		t.Error("a transaction's statement was held before HoldTransactions")
	}
	g.TxOpened()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	if open := g.DrainTransactions(ctx); open != 1 {
		t.Errorf("drain left %d open, want 1", open)
	}
	cancel()
	if err := g.HoldTransactions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if enters(true) {
		t.Error("a transaction's statement passed HoldTransactions")
	}
	g.TxClosed()
	if open := g.DrainTransactions(context.Background()); open != 0 {
		t.Errorf("drain left %d open after the last one closed", open)
	}
	c.Topo.SetMaster("r")
	if !enters(false) || !enters(true) {
		t.Error("statements still held after the new master was set")
	}
}
