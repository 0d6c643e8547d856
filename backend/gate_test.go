package backend

import (
	"context"
	"testing"
	"time"
)

// TestWriteGate: a hold stops new statements but lets open transactions
// finish; HoldTransactions stops those too; a new master lets all through.
func TestWriteGate(t *testing.T) {
	c := NewCluster([]Server{{Name: "m"}, {Name: "r"}}, "m", PoolOptions{}, nil)
	enters := func(inTx bool) bool {
		_, _, err := c.EnterMaster(20*time.Millisecond, inTx)
		if err == nil {
			c.LeaveMaster()
		}
		return err == nil
	}
	if !enters(false) || !enters(true) {
		t.Fatal("no hold, yet a statement waited")
	}
	if err := c.Hold(context.Background()); err != nil {
		t.Fatal(err)
	}
	if enters(false) {
		t.Error("a new statement passed a hold")
	}
	if !enters(true) {
		t.Error("a transaction's statement was held before HoldTransactions")
	}
	c.TxOpened()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	if open := c.DrainTransactions(ctx); open != 1 {
		t.Errorf("drain left %d open, want 1", open)
	}
	cancel()
	if err := c.HoldTransactions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if enters(true) {
		t.Error("a transaction's statement passed HoldTransactions")
	}
	c.TxClosed()
	if open := c.DrainTransactions(context.Background()); open != 0 {
		t.Errorf("drain left %d open after the last one closed", open)
	}
	c.SetMaster("r")
	if !enters(false) || !enters(true) {
		t.Error("statements still held after the new master was set")
	}
}
