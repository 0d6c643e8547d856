package proxy

import (
	"sync/atomic"
	"time"
)

// sessionInfo is what other goroutines may read of a session (SHOW
// SESSIONS, KILL, Shutdown), published by the session's goroutine through
// atomics.
type sessionInfo struct {
	started     time.Time
	user        atomic.Pointer[string]
	idle        atomic.Bool // waiting for the next command
	inTx        atomic.Bool
	lastStmt    atomic.Pointer[string] // digest of the last statement
	lastBackend atomic.Pointer[string]
	db          atomic.Pointer[string]
	cluster     atomic.Pointer[string] // the session's home cluster
	heldConns   atomic.Int32
	heldBecause atomic.Pointer[string]
	// killed: the session was killed (KILL CONNECTION, a shutdown) and ends.
	killed atomic.Bool
	// threads lists the backend threads the session holds, for SHOW
	// SESSIONS ("master:31 replica1:57").
	threads atomic.Pointer[string]
}

// setUser publishes the session's user (login, COM_CHANGE_USER).
func (in *sessionInfo) setUser(name string) { in.user.Store(&name) }

// userName is the session's user as last published.
func (in *sessionInfo) userName() string { return loadString(&in.user) }

// noteStatement records the digest of the session's last statement for
// SHOW SESSIONS: literals are folded, so no data values reach the admin.
func (in *sessionInfo) noteStatement(digest string) {
	if digest == "" {
		digest = otherDigest
	}
	if len(digest) > 200 {
		digest = digest[:200]
	}
	storeIfChanged(&in.lastStmt, digest)
}

// storeIfChanged publishes v unless it is already there (no allocation
// in the common case).
func storeIfChanged(p *atomic.Pointer[string], v string) {
	if cur := p.Load(); cur == nil || *cur != v {
		stored := v // on the heap only when it changed
		p.Store(&stored)
	}
}

func loadString(p *atomic.Pointer[string]) string {
	if v := p.Load(); v != nil {
		return *v
	}
	return ""
}
