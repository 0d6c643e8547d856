package proxy

import (
	"testing"
	"time"
)

// What statements read from the session's variables is worked out once
// per change: every change must show in the next reading.
func TestVarFactsFollowChanges(t *testing.T) {
	var st sessionState
	steps := []struct {
		name                string
		change              func()
		ansi, autocommitOff bool
		readsOnMaster       string
		idle                time.Duration
	}{
		{"defaults", func() {}, false, false, "", time.Hour},
		{"sql_mode with ANSI_QUOTES", func() { st.setVar("sql_mode", "ansi_quotes,strict_trans_tables") }, true, false, "", time.Hour},
		{"autocommit off", func() { st.setVar("autocommit", "OFF") }, true, true, "", time.Hour},
		{"sql_mode set again without it", func() { st.moveVarLast("sql_mode", "STRICT_TRANS_TABLES") }, false, true, "", time.Hour},
		{"sql_auto_is_null on", func() { st.setVar("sql_auto_is_null", "1") }, false, true, "sql_auto_is_null", time.Hour},
		{"wait_timeout", func() { st.setVar("wait_timeout", "30") }, false, true, "sql_auto_is_null", 30 * time.Second},
		{"autocommit dropped", func() { st.dropVar("autocommit") }, false, false, "sql_auto_is_null", 30 * time.Second},
		{"autocommit back on", func() { st.setVar("autocommit", "ON") }, false, false, "sql_auto_is_null", 30 * time.Second},
		{"a new session state", func() { st = sessionState{} }, false, false, "", time.Hour},
	}
	for _, s := range steps {
		s.change()
		if got := st.ansiQuotes(); got != s.ansi {
			t.Errorf("%s: ansiQuotes %v, want %v", s.name, got, s.ansi)
		}
		if got := st.autocommitOff(); got != s.autocommitOff {
			t.Errorf("%s: autocommitOff %v, want %v", s.name, got, s.autocommitOff)
		}
		if got := st.readsOnMaster(); got != s.readsOnMaster {
			t.Errorf("%s: readsOnMaster %q, want %q", s.name, got, s.readsOnMaster)
		}
		if got := st.idleTimeout(time.Hour); got != s.idle {
			t.Errorf("%s: idleTimeout %v, want %v", s.name, got, s.idle)
		}
	}
}
